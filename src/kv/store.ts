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
import { KvInvalidKeyError } from './errors.js';

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

/** Where a store is, as open.ts's parseStoreUrl reads a `--kv` URL. */
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

/**
 * put, cas and delete as the one-op transactions they are, for every
 * backend: a write has one path (txn) to be atomic and watched in.
 */
export abstract class TxnWrites {
  abstract txn(compare: KvCompare[], ops: KvOp[]): Promise<KvTxnResult>;

  async put(key: string, value: JsonValue, options: PutOptions = {}): Promise<number> {
    return (await this.txn([], [{ type: 'put', key, value, ...options }])).revision;
  }

  async cas(key: string, version: number, value: JsonValue, options: PutOptions = {}): Promise<number> {
    return (await this.txn([{ key, version }], [{ type: 'put', key, value, ...options }])).revision;
  }

  async delete(key: string, options: { version?: number } = {}): Promise<boolean> {
    const compare = options.version === undefined ? [] : [{ key, version: options.version }];
    return (await this.txn(compare, [{ type: 'delete', key }])).deleted > 0;
  }
}
