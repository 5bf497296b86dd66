import { defineConfig } from 'vitest/config';

// Files that share the run's namespace (its links and rules are checked for
// leaks after each file) run one at a time.
const oneAtATime = { pool: 'forks' as const, poolOptions: { forks: { singleFork: true } } };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'privileged',
          include: ['test/privileged/**/*.test.ts'],
          setupFiles: ['test/privileged/setup.ts'],
          ...oneAtATime,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Hostile input, races, faults and random sequences at every entry
        // point (issue 11); privileged like the above, same leak checks.
        test: {
          name: 'hostile',
          include: ['test/hostile/**/*.test.ts'],
          setupFiles: ['test/privileged/setup.ts'],
          globalSetup: ['test/hostile/figures-setup.ts'],
          ...oneAtATime,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
