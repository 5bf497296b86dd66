/**
 * bench/docker: what netctl costs a Docker user (issue 6).
 *
 * One private dockerd 20.10 (bench/lib/dockerd.ts, the tests' own setup:
 * its own netns, mount namespace, containerd and roots) with a real `netctl
 * daemon` beside it serving the plugin sockets. Two user-defined networks
 * side by side: `-d netctl-bridge --ipam-driver netctl` (ours) and Docker's
 * built-in `-d bridge` with its default IPAM (the reference). Timed with
 * the docker client, as a user sees it:
 *   - `docker run -d --network NET busybox sleep` (the container is
 *     created, its network joined, and started), N of each (default 20),
 *     ours and the reference alternating so drift hits both alike; each
 *     container is removed (untimed) before the next, so every run meets
 *     the same state. A few untimed runs of each first (image and plugin
 *     first-use). Median and p95; target ours ≤ 1.1 × the reference;
 *   - `docker network create` and `docker network rm`, CREATES of each,
 *     alternating.
 * The figures include the docker client's own start (≈ 40 ms), the same
 * for both.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { withCleanup } from './lib/cleanup.js';
import { startDaemon } from './lib/daemon.js';
import { type Dockerd, startDockerd } from './lib/dockerd.js';
import { type Figures, round } from './lib/figures.js';
import { fixed, printTable, times } from './lib/table.js';
import { iterations, Samples } from './lib/timing.js';

export const description =
  'docker run -d and docker network create: netctl-bridge vs Docker’s built-in bridge';

const DEFAULT_RUNS = 20;
const WARMUP = 3;
const CREATES = 10;
/** DESIGN.md "Budgets": `docker run` with a netctl network ≤ 1.1 × Docker's bridge. */
const RUN_TARGET = 1.1;

interface Way {
  key: 'ours' | 'ref';
  label: string;
  /** `docker network create` arguments before the subnet and name. */
  create: string[];
}

const WAYS: Way[] = [
  {
    key: 'ours',
    label: 'netctl-bridge + netctl IPAM',
    create: ['-d', 'netctl-bridge', '--ipam-driver', 'netctl'],
  },
  { key: 'ref', label: 'Docker bridge (built-in)', create: ['-d', 'bridge'] },
];

async function runOnce(
  d: Dockerd,
  network: string,
  samples: Samples | undefined,
  name: string,
): Promise<void> {
  const run = () => d.docker(['run', '-d', '--network', network, 'busybox', 'sleep', '3600'], 60_000);
  const { stdout } = samples ? await samples.time(name, run) : await run();
  await d.docker(['rm', '-f', stdout.trim()], 60_000);
}

export default async function run(): Promise<Figures> {
  const n = iterations(DEFAULT_RUNS);
  return withCleanup(async (cleanup) => {
    const d = await startDockerd('netctl-bench-docker');
    cleanup.defer('dockerd', () => d.stop());
    const netctl = await startDaemon(mkdtempSync(join(d.dir, 'netctl-')), {
      nsenter: d.nsenter,
      args: ['--docker-plugins', '/run/docker/plugins'],
    });
    cleanup.defer('netctl daemon', () => netctl.stop());
    const samples = new Samples();

    // Networks: created and removed in turns, each on a subnet of its own.
    for (let i = 0; i < CREATES; i++) {
      for (const [w, way] of WAYS.entries()) {
        const name = `bench-${way.key}-${i}`;
        const subnet = `10.${70 + w}.${i}.0/24`;
        await samples.time(`${way.key}_create`, () =>
          d.docker(['network', 'create', ...way.create, '--subnet', subnet, name], 60_000),
        );
        await samples.time(`${way.key}_network_rm`, () => d.docker(['network', 'rm', name], 60_000));
      }
    }

    // The networks the containers run on.
    for (const [w, way] of WAYS.entries()) {
      await d.docker([
        'network',
        'create',
        ...way.create,
        '--subnet',
        `10.${80 + w}.0.0/16`,
        `bench-${way.key}`,
      ]);
      cleanup.defer(`network bench-${way.key}`, () => d.docker(['network', 'rm', `bench-${way.key}`]));
    }
    for (let i = 0; i < WARMUP; i++) {
      for (const way of WAYS) await runOnce(d, `bench-${way.key}`, undefined, '');
    }
    for (let i = 0; i < n; i++) {
      // Alternate which goes first, so neither always follows the other's rm.
      const order = i % 2 === 0 ? WAYS : [...WAYS].reverse();
      for (const way of order) await runOnce(d, `bench-${way.key}`, samples, `${way.key}_run`);
    }

    const s = (name: string) => samples.summary(name);
    const ratio = (what: string, stat: 'median' | 'p95') => s(`ours_${what}`)[stat] / s(`ref_${what}`)[stat];
    const rows = (what: string) =>
      WAYS.map((way) => {
        const m = s(`${way.key}_${what}`);
        return [way.label, m.n, fixed(m.median, 1), fixed(m.p95, 1), fixed(m.min, 1), fixed(m.max, 1)];
      });
    const head = ['', 'n', 'median ms', 'p95 ms', 'min ms', 'max ms'];
    printTable({
      title: 'docker run -d --network NET busybox sleep 3600',
      head,
      rows: rows('run'),
      notes: [
        `ours/ref: median ${times(ratio('run', 'median'))}, p95 ${times(ratio('run', 'p95'))} (target ≤ ${RUN_TARGET}× median)`,
      ],
    });
    printTable({
      title: 'docker network create --subnet S NET',
      head,
      rows: rows('create'),
      notes: [`ours/ref: median ${times(ratio('create', 'median'))}`],
    });
    printTable({
      title: 'docker network rm NET',
      head,
      rows: rows('network_rm'),
      notes: [`ours/ref: median ${times(ratio('network_rm', 'median'))}`],
    });

    const figures: Figures = { runs: n, creates: CREATES };
    for (const way of WAYS) {
      figures[`${way.key}_run_ms`] = round(s(`${way.key}_run`).median);
      figures[`${way.key}_run_p95_ms`] = round(s(`${way.key}_run`).p95);
    }
    figures.run_ratio = round(ratio('run', 'median'));
    figures.run_p95_ratio = round(ratio('run', 'p95'));
    figures.run_target = RUN_TARGET;
    for (const way of WAYS) figures[`${way.key}_create_ms`] = round(s(`${way.key}_create`).median);
    figures.create_ratio = round(ratio('create', 'median'));
    for (const way of WAYS) figures[`${way.key}_network_rm_ms`] = round(s(`${way.key}_network_rm`).median);
    figures.network_rm_ratio = round(ratio('network_rm', 'median'));
    return figures;
  });
}
