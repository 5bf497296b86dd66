/**
 * The state store contract. Everything netctl knows lives behind this
 * interface; backends are LMDB (embedded, the default), Redis, and an
 * in-memory fake for unit tests (testing/memory.ts). One contract test suite
 * (test/unit/kv/contract.ts) runs against all of them.
 *
 * Semantics, shared by every backend:
 *
 * - Values are JSON values; a read returns a fresh copy.
 * - Every write is stamped with a store-wide revision: a positive integer
 *   that only grows (etcd's mod_revision, libnetwork's datastore index). A
 *   key's `version` is the revision of its last write, so two reads of one
 *   key return the same version iff nothing wrote it in between.
 * - `cas` / `txn` compares are on versions; version 0 means "absent", so a
 *   compare on 0 is create-only (libnetwork PutObjectAtomic with a nil index).
 *   A failed compare throws KvConflictError and writes nothing.
 * - A transaction's writes are atomic and share one revision.
 * - TTL: a key written with `ttlMs` disappears after that long (a lease, as
 *   host liveness records need); rewriting it renews the TTL, writing it
 *   without one makes it permanent. Expired keys are absent for every read
 *   and compare at once; watchers get their delete event within the
 *   backend's sweep/resync interval.
 * - `watch(prefix)` resolves once the watch is live: every change committed
 *   after that is delivered, in revision order per key, with no duplicates.
 *   A backend that can miss notifications (Redis pub/sub) heals by resyncing
 *   and then reports the net change (possibly skipping intermediate values).
 */
import { KvInvalidKeyError, KvInvalidUrlError } from './errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface KvEntry<T extends JsonValue = JsonValue> {
  key: string;
  value: T;
  /** Revision of the last write of this key (> 0). */
  version: number;
}

export interface PutOptions {
  /** Time to live in milliseconds; absent = no expiry. */
  ttlMs?: number;
}

export interface ListOptions {
  /** Return at most this many entries (the first in key order). */
  limit?: number;
}

/** A transaction's precondition: `key` is at `version` (0 = does not exist). */
export interface KvCompare {
  key: string;
  version: number;
}

export type KvOp =
  | { type: 'put'; key: string; value: JsonValue; ttlMs?: number }
  | { type: 'delete'; key: string };

export interface KvTxnResult {
  /** Revision the writes were stamped with; 0 when the transaction wrote nothing. */
  revision: number;
  /** How many of the delete ops removed an existing key. */
  deleted: number;
}

export type KvEvent =
  | { type: 'put'; key: string; value: JsonValue; version: number }
  | { type: 'delete'; key: string; version: number };

export interface WatchOptions {
  /** First deliver every existing entry under the prefix as a put. */
  initial?: boolean;
}

/** A live watch: iterate it with `for await`; `close()` (or `break`) ends it. */
export interface KvWatch extends AsyncIterableIterator<KvEvent> {
  close(): void;
}

export type KvBackend = 'memory' | 'lmdb' | 'redis';

export interface KvStore {
  readonly backend: KvBackend;
  get(key: string): Promise<KvEntry | undefined>;
  /** Entries whose key starts with prefix, in key order. */
  list(prefix: string, options?: ListOptions): Promise<KvEntry[]>;
  /** Unconditional write; returns the new version. */
  put(key: string, value: JsonValue, options?: PutOptions): Promise<number>;
  /** Write iff the key is at `version` (0 = create-only); returns the new version. */
  cas(key: string, version: number, value: JsonValue, options?: PutOptions): Promise<number>;
  /**
   * Remove the key; true if it existed. With `version`, only if the key is at
   * that version (else KvConflictError). Deleting a missing key is not an error.
   */
  delete(key: string, options?: { version?: number }): Promise<boolean>;
  /** All compares hold → all ops applied atomically; else KvConflictError and nothing written. */
  txn(compare: KvCompare[], ops: KvOp[]): Promise<KvTxnResult>;
  watch(prefix: string, options?: WatchOptions): Promise<KvWatch>;
  /** Ends watches and releases the connection/environment; later calls fail with kv.unavailable. */
  close(): Promise<void>;
}

/** Root of every key netctl writes. */
export const KEY_ROOT = 'netctl/v1';

export type KeySpace = 'networks' | 'endpoints' | 'sandboxes' | 'ipam' | 'vni' | 'hosts' | 'peers' | 'test';

/**
 * `netctl/v1/<space>/<part>/<part>...`. Parts are used verbatim, so callers
 * must make sure a part holds no '/' unless it is meant as a separator (see
 * keyPart).
 */
export function storeKey(space: KeySpace, ...parts: string[]): string {
  return [KEY_ROOT, space, ...parts].join('/');
}

/** Escape a free-form id (a CNI container id + ifname, a pool subnet) for use as one key part. */
export function keyPart(id: string): string {
  return encodeURIComponent(id);
}

// Control characters would break the line-based event encoding of the Redis
// backend, and 0xff bytes (never valid in UTF-8) bound prefix ranges there.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const BAD_KEY_CHARS = /[\u0000-\u001f\u007f]/;
// In a u-mode regex a surrogate pair is one code point, so only lone halves match.
const LONE_SURROGATE = /\p{Cs}/u;
const MAX_KEY_BYTES = 1024;

export function assertKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0)
    throw new KvInvalidKeyError(key, 'must be a non-empty string');
  if (BAD_KEY_CHARS.test(key)) throw new KvInvalidKeyError(key, 'must not contain control characters');
  if (LONE_SURROGATE.test(key))
    throw new KvInvalidKeyError(key, 'must be valid Unicode (no lone surrogates)');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES)
    throw new KvInvalidKeyError(key, `longer than ${MAX_KEY_BYTES} bytes`);
}

export function assertPrefix(prefix: unknown): asserts prefix is string {
  if (prefix === '') return;
  assertKey(prefix);
}

export function assertTtl(ttlMs: number | undefined): void {
  if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)) {
    throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
  }
}

export function assertVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new RangeError(`version must be a non-negative integer, got ${version}`);
  }
}

/** JSON text of a value; refuses what JSON cannot carry (undefined, functions, bigints, NaN). */
export function encodeValue(value: JsonValue): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError(`${v} is not a JSON number`);
      return v;
    });
  } catch (err) {
    throw new TypeError(`value is not JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw new TypeError(`value is not JSON: ${typeof value}`);
  return json;
}

/**
 * Check a transaction before it reaches a backend. One key may appear in at
 * most one op (as etcd requires): the events of a transaction share one
 * revision, so two writes of one key in it would be ambiguous.
 */
export function validateTxn(compare: readonly KvCompare[], ops: readonly KvOp[]): void {
  for (const c of compare) {
    assertKey(c.key);
    assertVersion(c.version);
  }
  const seen = new Set<string>();
  for (const op of ops) {
    assertKey(op.key);
    if (op.type === 'put') assertTtl(op.ttlMs);
    if (seen.has(op.key))
      throw new RangeError(`transaction writes key ${JSON.stringify(op.key)} more than once`);
    seen.add(op.key);
  }
}

/** Default directory of the embedded store (the daemon, the CLI and CNI calls share it). */
export const DEFAULT_STATE_DIR = '/var/lib/netctl';
export const STATE_FILE = 'state.lmdb';

export interface OpenStoreOptions {
  /** Directory of the LMDB file when no URL is given; else $NETCTL_STATE_DIR, else /var/lib/netctl. */
  stateDir?: string;
}

export type StoreLocation =
  | { backend: 'lmdb'; path: string; durable: boolean }
  | {
      backend: 'redis';
      /** TCP endpoint, or a unix socket path. */
      host?: string;
      port?: number;
      path?: string;
      db: number;
      username?: string;
      password?: string;
      tls: boolean;
      /** Per-command timeout: an operation never waits longer than this. */
      timeoutMs: number;
      /** Full resync period of watches (heals a lost pub/sub message). */
      resyncMs: number;
    };

function intParam(url: string, params: URLSearchParams, name: string, fallback: number, min: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min)
    throw new KvInvalidUrlError(url, `${name} must be an integer >= ${min}`);
  return n;
}

/**
 * Where `--kv URL` points. Accepted forms:
 *   (none)                                  LMDB in the state dir
 *   lmdb:///path/to/state.lmdb[?sync=false] LMDB at that file
 *   redis://[user:pass@]host[:port][/db]    Redis over TCP (rediss:// for TLS)
 *   redis+unix:///path/redis.sock[?db=N]    Redis on a unix socket (also unix://)
 * Redis URLs take `timeout=MS` and `resync=MS`.
 */
export function parseStoreUrl(url: string | undefined, options: OpenStoreOptions = {}): StoreLocation {
  if (url === undefined || url === '') {
    const dir = options.stateDir ?? process.env.NETCTL_STATE_DIR ?? DEFAULT_STATE_DIR;
    return { backend: 'lmdb', path: `${dir.replace(/\/+$/, '')}/${STATE_FILE}`, durable: true };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KvInvalidUrlError(
      url,
      'not a URL (expected lmdb://, redis://, rediss://, redis+unix:// or unix://)',
    );
  }
  const params = u.searchParams;
  switch (u.protocol) {
    case 'lmdb:': {
      if (u.host !== '') throw new KvInvalidUrlError(url, 'an lmdb URL has no host: lmdb:///absolute/path');
      const path = decodeURIComponent(u.pathname);
      if (path === '/' || path === '') throw new KvInvalidUrlError(url, 'missing file path');
      const sync = params.get('sync');
      if (sync !== null && sync !== 'true' && sync !== 'false')
        throw new KvInvalidUrlError(url, 'sync must be true or false');
      return { backend: 'lmdb', path, durable: sync !== 'false' };
    }
    case 'redis:':
    case 'rediss:':
    case 'redis+unix:':
    case 'unix:': {
      const unix = u.protocol === 'redis+unix:' || u.protocol === 'unix:';
      const common = {
        backend: 'redis' as const,
        tls: u.protocol === 'rediss:',
        timeoutMs: intParam(url, params, 'timeout', 2000, 1),
        resyncMs: intParam(url, params, 'resync', 5000, 10),
        ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
        ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      };
      if (unix) {
        const path = decodeURIComponent(u.pathname);
        if (u.host !== '' || path === '' || path === '/') {
          throw new KvInvalidUrlError(url, 'expected redis+unix:///absolute/path/to/redis.sock');
        }
        return { ...common, path, db: intParam(url, params, 'db', 0, 0) };
      }
      if (!u.hostname) throw new KvInvalidUrlError(url, 'missing host');
      const dbPath = u.pathname.replace(/^\//, '');
      let db = 0;
      if (dbPath !== '') {
        db = Number(dbPath);
        if (!Number.isSafeInteger(db) || db < 0)
          throw new KvInvalidUrlError(url, `database ${JSON.stringify(dbPath)} is not a number`);
      }
      return {
        ...common,
        // WHATWG URL keeps IPv6 brackets in hostname.
        host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port ? Number(u.port) : 6379,
        db,
      };
    }
    default:
      throw new KvInvalidUrlError(url, `unsupported scheme ${u.protocol.replace(/:$/, '')}`);
  }
}

/**
 * Open the store `--kv URL` names (see parseStoreUrl). Backends are loaded on
 * demand so a CNI call on LMDB never loads the Redis client, and vice versa.
 */
export async function openStore(url?: string, options: OpenStoreOptions = {}): Promise<KvStore> {
  const location = parseStoreUrl(url, options);
  if (location.backend === 'lmdb') {
    const { LmdbStore } = await import('./lmdb.js');
    return LmdbStore.open(location.path, { durable: location.durable });
  }
  const { RedisStore } = await import('./redis.js');
  return RedisStore.connect(location);
}
