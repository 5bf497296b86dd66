/**
 * The owner tag of a netns netctl makes for a sandbox. A link carries its
 * owner in its alias and a rule in its comment, but a named netns is a bind
 * mount of an nsfs inode, which has neither an alias nor xattrs: so the
 * sandbox's run dir (/run/netctl/sandboxes/<id>, named after its owner)
 * records the netns path, written *before* the netns is made. A crash
 * between the two, or before the sandbox record is written, leaves a run
 * dir that names its owner, and gc finds the netns by it. Both live under
 * /run, so neither outlives a reboot.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasErrorCode } from '../kernel/index.js';
import { SANDBOX_RUN_DIR, sandboxRunDir } from '../paths.js';

const NETNS_FILE = 'netns';
const SANDBOX_ID = /^[0-9a-f]{64}$/;

/** Record that sandboxId is about to make the netns at path (call before making it). */
export function claimNetns(sandboxId: string, path: string): void {
  const dir = sandboxRunDir(sandboxId);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(join(dir, NETNS_FILE), `${path}\n`);
}

export interface SandboxRunDir {
  /** The sandbox id the dir is named after (its owner is `sb:<id>`). */
  id: string;
  /** The netns path the sandbox made (or was about to make), if it made one. */
  netns?: string;
}

/** Every sandbox run dir, with the netns it claims. */
export function listSandboxRunDirs(): SandboxRunDir[] {
  let names: string[];
  try {
    names = readdirSync(SANDBOX_RUN_DIR);
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return [];
    throw err;
  }
  return names
    .filter((id) => SANDBOX_ID.test(id))
    .sort()
    .map((id) => {
      try {
        const netns = readFileSync(join(SANDBOX_RUN_DIR, id, NETNS_FILE), 'utf8').trim();
        return netns ? { id, netns } : { id };
      } catch (err) {
        if (hasErrorCode(err, 'ENOENT')) return { id };
        throw err;
      }
    });
}
