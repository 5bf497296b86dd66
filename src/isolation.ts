/**
 * Is this process inside the private namespace scripts/isolate.sh made?
 * Tests, benchmarks and the quickstart create links, rules and netns, so
 * they refuse to run anywhere else. NETCTL_ISOLATED=1 alone could be set by
 * hand in the host namespace; the inode of the namespace isolate.sh made
 * cannot match this process's unless it really is that namespace.
 */
import { statSync } from 'node:fs';

/** Why this process is not isolated, or undefined when it is. */
export function isolationProblem(): string | undefined {
  if (process.env.NETCTL_ISOLATED !== '1') return 'NETCTL_ISOLATED=1 is not set';
  if (process.getuid?.() !== 0) return 'not running as root';
  const made = process.env.NETCTL_ISOLATED_NETNS;
  const here = String(statSync('/proc/self/ns/net').ino);
  if (!made) return 'NETCTL_ISOLATED_NETNS is not set';
  if (made !== here) return `this is not the network namespace isolate.sh made (inode ${here}, not ${made})`;
  return undefined;
}
