/**
 * For fixtures run by runConcurrently (children.ts): announce readiness on
 * stdout, then resolve when the parent writes "go" on stdin.
 */
import { createInterface } from 'node:readline';

export function readyThenGo(): Promise<void> {
  return new Promise((resolveGo) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() === 'go') {
        lines.close();
        resolveGo();
      }
    });
    process.stdout.write('ready\n');
  });
}
