/**
 * Is a sandbox's namespace still the one we attached to? A netns path can
 * outlive its namespace's user or be reused; the nsfs inode and the boot id
 * tell (what host-local and Calico IPAM lack, and why they leak addresses).
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

/** True when the sandbox's namespace no longer exists as recorded. */
export function isStale(recorded: { key: string; netnsInode: number; bootId: string }): boolean {
  return recorded.bootId !== bootId() || netnsInode(recorded.key) !== recorded.netnsInode;
}
