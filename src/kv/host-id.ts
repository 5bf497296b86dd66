/**
 * This host's id in a shared store: made once (random) and kept in the
 * state dir, which the daemon, the CLI's and the CNI plugin's fallbacks
 * share, so all of them see the same host's keys (scoped.ts). A host that
 * keeps its state dir keeps its id across restarts and reboots; its boot
 * id tells a reboot apart.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STATE_DIR, type OpenStoreOptions } from './open.js';

const FILE = 'host-id';
const HOST_ID = /^[0-9a-f]{16}$/;

function stateDirOf(options: OpenStoreOptions): string {
  return options.stateDir ?? process.env.NETCTL_STATE_DIR ?? DEFAULT_STATE_DIR;
}

function readHostId(path: string): string | undefined {
  try {
    const id = readFileSync(path, 'utf8').trim();
    return HOST_ID.test(id) ? id : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The host's id, made on first use: written whole then linked into place, so two first users agree. */
export function hostId(options: OpenStoreOptions = {}): string {
  const dir = stateDirOf(options);
  const path = join(dir, FILE);
  const found = readHostId(path);
  if (found) return found;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  writeFileSync(tmp, `${randomBytes(8).toString('hex')}\n`, { mode: 0o644 });
  try {
    linkSync(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') throw err;
    // A file that is not an id (a crash before this scheme): replace it.
    if (!readHostId(path)) {
      rmSync(path, { force: true });
      linkSync(tmp, path);
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  const id = readHostId(path);
  if (!id) throw new Error(`${path} holds no host id`);
  return id;
}
