/**
 * Which store this host's netctl runs on. The daemon records its `--kv` in
 * the state dir (root-only: a URL may hold a password), and every fallback
 * that runs the controller without it — the CLI with no daemon answering,
 * the CNI plugin standalone — uses that store or refuses. Else a daemon on
 * Redis, stopped for a minute, and a CLI or a container start in that
 * minute would hand out addresses from the embedded store that the shared
 * one never hears of (split brain).
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvStoreMismatchError } from './errors.js';
import { DEFAULT_STATE_DIR, type OpenStoreOptions, parseStoreUrl } from './open.js';

const RECORD = 'daemon-store.json';

interface StoreRecord {
  /** The daemon's --kv; absent: the embedded store in this state dir. */
  kv?: string;
  recorded: string;
}

function stateDirOf(options: OpenStoreOptions): string {
  return options.stateDir ?? process.env.NETCTL_STATE_DIR ?? DEFAULT_STATE_DIR;
}

/** Record the store the daemon runs on (atomically, mode 0600). */
export function recordDaemonStore(kv: string | undefined, options: OpenStoreOptions = {}): void {
  const dir = stateDirOf(options);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const record: StoreRecord = { ...(kv ? { kv } : {}), recorded: new Date().toISOString() };
  const tmp = join(dir, `.${RECORD}.${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, join(dir, RECORD));
}

/** The store the daemon recorded: its URL, null for the embedded one, undefined when no daemon ever ran here. */
export function recordedDaemonStore(options: OpenStoreOptions = {}): string | null | undefined {
  let text: string;
  try {
    text = readFileSync(join(stateDirOf(options), RECORD), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const record = JSON.parse(text) as StoreRecord;
  return record.kv ?? null;
}

/** A store URL fit for messages and logs: no credentials. */
export function describeStoreUrl(url: string | null | undefined): string {
  if (!url) return 'the embedded store';
  try {
    const parsed = new URL(url);
    parsed.password = '';
    parsed.username = '';
    return parsed.toString();
  } catch {
    return 'a store URL that does not parse';
  }
}

/**
 * The store a fallback (no daemon answering) must use: the one asked for,
 * which must be the daemon's when a daemon recorded one; else the daemon's.
 */
export function fallbackStoreUrl(
  asked: string | undefined,
  options: OpenStoreOptions = {},
): string | undefined {
  const recorded = recordedDaemonStore(options);
  if (recorded === undefined) return asked;
  if (asked === undefined || asked === '') return recorded ?? undefined;
  // The same store however it is spelled (the embedded one by its lmdb:// path too).
  const where = (url: string | null) => JSON.stringify(parseStoreUrl(url ?? undefined, options));
  if (where(asked) !== where(recorded))
    throw new KvStoreMismatchError(describeStoreUrl(recorded), describeStoreUrl(asked));
  return asked;
}
