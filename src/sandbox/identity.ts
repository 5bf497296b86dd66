/**
 * Is a sandbox's namespace still the one we attached to? A netns path can
 * outlive its namespace's user or be reused; the nsfs inode and the boot id
 * tell (what host-local and Calico IPAM lack, and why they leak addresses);
 * a pid, its start time.
 */
import { readFileSync, statSync } from 'node:fs';
import { hasErrorCode } from '../kernel/index.js';

let cachedBootId: string | undefined;

export function bootId(): string {
  cachedBootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return cachedBootId;
}

/** The nsfs inode behind a netns path, or undefined when the path is gone. */
export function netnsInode(key: string): number | undefined {
  try {
    return statSync(key).ino;
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT') || hasErrorCode(err, 'ESRCH')) return undefined;
    throw err;
  }
}

/**
 * Start time of process pid (clock ticks since boot, field 22 of
 * /proc/PID/stat), or undefined when it is gone: with the boot id, it tells
 * a process from a later one that got the same pid.
 */
export function processStart(pid: number): number | undefined {
  try {
    // The command name (field 2) may contain spaces, so split after its ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

type Recorded = { key: string; netnsInode: number; bootId: string };

/** Why the sandbox's namespace no longer exists as recorded, or undefined while it does. */
export function staleReason(recorded: Recorded): string | undefined {
  if (recorded.bootId !== bootId()) return 'made before the last boot';
  // Made before its netns (Docker's): its runtime says when it goes.
  if (recorded.netnsInode === 0) return undefined;
  const inode = netnsInode(recorded.key);
  if (inode === undefined) return `netns ${recorded.key} is gone`;
  if (inode !== recorded.netnsInode) return `netns ${recorded.key} is another namespace now`;
  return undefined;
}

/** True when the sandbox's namespace no longer exists as recorded. */
export function isStale(recorded: Recorded): boolean {
  return staleReason(recorded) !== undefined;
}
