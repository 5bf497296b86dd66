/**
 * Embedded store on LMDB (the `lmdb` package): the default, shared by the
 * daemon, the CLI and concurrent CNI calls on one host.
 *
 * Why it is safe across processes: LMDB serializes writers with a robust
 * process-shared mutex and gives readers MVCC snapshots. Every write here is
 * one `transactionSync` that re-checks its compares inside the write lock, so
 * CAS holds across processes. (lmdb-js's async `transaction()` is not used:
 * with 3.5 it never resolved on this machine, and sync commits keep each
 * write's outcome in the caller's hands.) lmdb-js keeps one read snapshot
 * per event-loop turn; reads reset it first so a CAS retry loop sees other
 * processes' commits at once.
 *
 * Layout (named databases in one file):
 *   data     key -> "<revision>\n<expiresAt or empty>\n<JSON value>"
 *   meta     'rev' (last revision), 'logStart' (oldest revision kept in log)
 *   log      [revision, i] -> {k, t: 'p'|'d', v?}: the change log watches read
 *   expiry   [expiresAt, key] -> 1: TTL index for the sweeper
 *
 * Watch across processes: LMDB has no change notification, so each store
 * polls `meta.rev` (a ~1 µs read) every `pollMs` while it has watches and
 * replays the log from where it was. The log keeps the last `logKeep`
 * revisions; a watcher that fell further behind resyncs from a full listing.
 * Expired keys read as absent at once; a sweeper in every open store deletes
 * them (and logs the delete) every `sweepMs`.
 */
import { existsSync, linkSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { KvBackendError, KvConflictError, KvError, KvUnavailableError } from './errors.js';
import {
  assertKey,
  assertPrefix,
  encodeValue,
  type JsonValue,
  type KvCompare,
  type KvEntry,
  type KvEvent,
  type KvOp,
  type KvStore,
  type KvTxnResult,
  type KvWatch,
  type ListOptions,
  TxnWrites,
  validateTxn,
  type WatchOptions,
} from './store.js';
import { WatchQueue, WatchTracker } from './watch.js';

/** Address space reserved for the store file: far more than netctl's state needs. */
const MAP_SIZE = 256 * 1024 * 1024;

export interface LmdbStoreOptions {
  /** fsync every commit (default). false: a process crash loses nothing, a host crash may lose recent commits. */
  durable?: boolean;
  /** How often watches look for other processes' commits. */
  pollMs?: number;
  /** How often expired keys are deleted (and reported to watches). */
  sweepMs?: number;
  /** Revisions kept in the change log. */
  logKeep?: number;
}

interface Row {
  revision: number;
  expiresAt: number | undefined;
  json: string;
}

interface LogRecord {
  k: string;
  t: 'p' | 'd';
  v?: JsonValue;
}

type LogKey = [number, number];

function encodeRow(revision: number, expiresAt: number | undefined, json: string): string {
  return `${revision}\n${expiresAt ?? ''}\n${json}`;
}

function decodeRow(raw: string): Row {
  const a = raw.indexOf('\n');
  const b = raw.indexOf('\n', a + 1);
  const x = raw.slice(a + 1, b);
  return {
    revision: Number(raw.slice(0, a)),
    expiresAt: x === '' ? undefined : Number(x),
    json: raw.slice(b + 1),
  };
}

function openRoot(path: string, durable: boolean): RootDatabase {
  // Not noMetaSync: with several processes writing, lmdb-js's LMDB then
  // failed a commit (MDB_PROBLEM "mdb_page_touch no parent") under load.
  // A map that never has to grow (address space only; the file grows
  // as pages are written): lmdb-js keeps every outgrown mapping alive
  // for buffers that may point into it, and their pages count as the
  // daemon's memory (~5 MiB at 1,000 endpoints).
  return open({ path, noSubdir: true, maxDbs: 8, mapSize: MAP_SIZE, noSync: !durable });
}

function openDatabases(
  root: RootDatabase,
): [
  Database<string, string>,
  Database<number, string>,
  Database<LogRecord, LogKey>,
  Database<number, [number, string]>,
] {
  return [
    root.openDB<string, string>({ name: 'data', encoding: 'string' }),
    root.openDB<number, string>({ name: 'meta', encoding: 'json' }),
    root.openDB<LogRecord, LogKey>({ name: 'log', encoding: 'json' }),
    root.openDB<number, [number, string]>({ name: 'expiry', encoding: 'json' }),
  ];
}

/**
 * Build a new store file aside and link it into place: processes that
 * create one file at once (the first CNI ADDs on a fresh host) made lmdb-js
 * fail the open (MDB_PROBLEM "mdb_page_touch no parent", 1 round in ~20 of
 * 50 processes). Opening an existing file concurrently is safe. A loser of
 * the link uses the winner's file; files of creators that died are removed.
 */
function createStoreFile(path: string): void {
  const dir = dirname(path);
  const prefix = `${basename(path)}.new-`;
  for (const name of readdirSync(dir)) {
    const pid = Number(
      name.startsWith(prefix) ? name.slice(prefix.length).replace(/-lock$/, '') : Number.NaN,
    );
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid))
      rmSync(join(dir, name), { force: true });
  }
  const draft = join(dir, `${prefix}${process.pid}`);
  try {
    const root = openRoot(draft, true);
    openDatabases(root);
    root.close();
    linkSync(draft, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(draft, { force: true });
    rmSync(`${draft}-lock`, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Watcher {
  tracker: WatchTracker;
  queue: WatchQueue;
}

export class LmdbStore extends TxnWrites implements KvStore {
  readonly backend = 'lmdb';
  private closed = false;
  private readonly watchers = new Set<Watcher>();
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly sweepTimer: NodeJS.Timeout;
  /** Revision up to which watches have been fed. */
  private polled = 0;

  private constructor(
    readonly path: string,
    private readonly root: RootDatabase,
    private readonly data: Database<string, string>,
    private readonly meta: Database<number, string>,
    private readonly log: Database<LogRecord, LogKey>,
    private readonly expiry: Database<number, [number, string]>,
    private readonly options: Required<Omit<LmdbStoreOptions, 'durable'>>,
  ) {
    super();
    this.sweepTimer = setInterval(() => this.background(() => this.sweep()), options.sweepMs).unref();
  }

  /** Open (creating it and its directory if needed) the store file at path. */
  static open(path: string, options: LmdbStoreOptions = {}): LmdbStore {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
      if (!existsSync(path)) createStoreFile(path);
      const root = openRoot(path, options.durable !== false);
      return new LmdbStore(path, root, ...openDatabases(root), {
        pollMs: options.pollMs ?? 20,
        sweepMs: options.sweepMs ?? 500,
        logKeep: options.logKeep ?? 1_000,
      });
    } catch (err) {
      throw new KvUnavailableError('lmdb', `cannot open ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  private check(): void {
    if (this.closed)
      throw new KvUnavailableError('lmdb', `store ${this.path} is closed`, { outcomeUnknown: false });
  }

  /** Run an LMDB call, turning its failures into KV errors. */
  private guard<T>(fn: () => T): T {
    this.check();
    try {
      return fn();
    } catch (err) {
      if (err instanceof KvError || err instanceof RangeError || err instanceof TypeError) throw err;
      throw new KvBackendError('lmdb', `${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  private row(key: string, now: number): Row | undefined {
    const raw = this.data.get(key);
    if (raw === undefined) return undefined;
    const row = decodeRow(raw);
    return row.expiresAt !== undefined && row.expiresAt <= now ? undefined : row;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    assertKey(key);
    return this.guard(() => {
      this.root.resetReadTxn();
      const row = this.row(key, Date.now());
      return row && { key, value: JSON.parse(row.json) as JsonValue, version: row.revision };
    });
  }

  /** Listing from the current read snapshot (the caller resets it when it must be fresh). */
  private listSnapshot(prefix: string, limit = Number.POSITIVE_INFINITY): KvEntry[] {
    const now = Date.now();
    const out: KvEntry[] = [];
    if (limit <= 0) return out;
    const range = prefix === '' ? this.data.getRange({}) : this.data.getRange({ start: prefix });
    for (const { key, value } of range) {
      if (!key.startsWith(prefix)) break;
      const row = decodeRow(value);
      if (row.expiresAt !== undefined && row.expiresAt <= now) continue;
      out.push({ key, value: JSON.parse(row.json) as JsonValue, version: row.revision });
      if (out.length >= limit) break;
    }
    return out;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<KvEntry[]> {
    assertPrefix(prefix);
    return this.guard(() => {
      this.root.resetReadTxn();
      return this.listSnapshot(prefix, options.limit);
    });
  }

  async txn(compare: KvCompare[], ops: KvOp[]): Promise<KvTxnResult> {
    validateTxn(compare, ops);
    const encoded = ops.map((op) => (op.type === 'put' ? encodeValue(op.value) : ''));
    return this.guard(() =>
      // Throwing inside the callback aborts the LMDB transaction: a failed
      // compare writes nothing.
      this.root.transactionSync(() => {
        const now = Date.now();
        for (const c of compare) {
          const actual = this.row(c.key, now)?.revision ?? 0;
          if (actual !== c.version) throw new KvConflictError(c.key, c.version, actual);
        }
        if (ops.length === 0) return { revision: 0, deleted: 0 };
        const revision = (this.meta.get('rev') ?? 0) + 1;
        const changes: LogRecord[] = [];
        let deleted = 0;
        ops.forEach((op, i) => {
          const raw = this.data.get(op.key);
          const old = raw === undefined ? undefined : decodeRow(raw);
          if (old?.expiresAt !== undefined) this.expiry.removeSync([old.expiresAt, op.key]);
          if (op.type === 'delete') {
            if (!old) return;
            this.data.removeSync(op.key);
            // An expired row is still news to watchers that have not seen it swept.
            if (old.expiresAt === undefined || old.expiresAt > now) deleted++;
            changes.push({ k: op.key, t: 'd' });
            return;
          }
          const expiresAt = op.ttlMs === undefined ? undefined : now + op.ttlMs;
          this.data.putSync(op.key, encodeRow(revision, expiresAt, encoded[i]!));
          if (expiresAt !== undefined) this.expiry.putSync([expiresAt, op.key], 1);
          changes.push({ k: op.key, t: 'p', v: op.value });
        });
        if (changes.length === 0) return { revision: 0, deleted: 0 };
        this.appendLog(revision, changes);
        return { revision, deleted };
      }),
    );
  }

  /** Inside a write transaction: record the changes of `revision` and trim the log. */
  private appendLog(revision: number, changes: LogRecord[]): void {
    for (const [i, change] of changes.entries()) this.log.putSync([revision, i], change);
    this.meta.putSync('rev', revision);
    const start = this.meta.get('logStart') ?? 1;
    const keepFrom = revision - this.options.logKeep + 1;
    if (keepFrom > start) {
      for (const key of [...this.log.getKeys({ start: [start, 0], end: [keepFrom, 0] })])
        this.log.removeSync(key);
      this.meta.putSync('logStart', keepFrom);
    }
  }

  /** Delete expired rows (any process may do it; the transaction re-checks). */
  private sweep(): void {
    this.root.resetReadTxn();
    const now = Date.now();
    let first: [number, string] | undefined;
    for (const key of this.expiry.getKeys({ limit: 1 })) first = key;
    if (first === undefined || first[0] > now) return;
    this.root.transactionSync(() => {
      const due: [number, string][] = [];
      for (const key of this.expiry.getKeys({ limit: 1000 })) {
        if (key[0] > now) break;
        due.push(key);
      }
      const changes: LogRecord[] = [];
      for (const [expiresAt, key] of due) {
        this.expiry.removeSync([expiresAt, key]);
        const raw = this.data.get(key);
        if (raw === undefined || decodeRow(raw).expiresAt !== expiresAt) continue;
        this.data.removeSync(key);
        changes.push({ k: key, t: 'd' });
      }
      if (changes.length) this.appendLog((this.meta.get('rev') ?? 0) + 1, changes);
    });
  }

  async watch(prefix: string, options: WatchOptions = {}): Promise<KvWatch> {
    assertPrefix(prefix);
    return this.guard(() => {
      const watcher: Watcher = {
        queue: new WatchQueue(() => {
          this.watchers.delete(watcher);
          if (this.watchers.size === 0) this.stopPolling();
        }),
        tracker: new WatchTracker(prefix, (event) => watcher.queue.push(event)),
      };
      // Revision and listing from one snapshot: the watch starts exactly there.
      this.root.resetReadTxn();
      const revision = this.meta.get('rev') ?? 0;
      watcher.tracker.resync(this.listSnapshot(prefix), revision, options.initial ?? false);
      if (this.watchers.size === 0) this.polled = revision;
      this.watchers.add(watcher);
      this.pollTimer ??= setInterval(() => this.background(() => this.poll()), this.options.pollMs);
      return watcher.queue;
    });
  }

  private stopPolling(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** Feed watches the commits since the last poll (by any process). */
  private poll(): void {
    if (this.watchers.size === 0) return;
    this.root.resetReadTxn();
    const revision = this.meta.get('rev') ?? 0;
    if (revision === this.polled) return;
    const logStart = this.meta.get('logStart') ?? 1;
    if (logStart > this.polled + 1) {
      // The entries we needed were trimmed: fall back to a full listing.
      for (const { tracker } of this.watchers) tracker.resync(this.listSnapshot(tracker.prefix), revision);
    } else {
      for (const { key, value } of this.log.getRange({ start: [this.polled + 1, 0] })) {
        const [rev] = key;
        if (rev > revision) break;
        const event: KvEvent =
          value.t === 'p'
            ? { type: 'put', key: value.k, value: value.v ?? null, version: rev }
            : { type: 'delete', key: value.k, version: rev };
        for (const { tracker } of this.watchers) tracker.apply(event);
      }
      for (const { tracker } of this.watchers) tracker.advance(revision);
    }
    this.polled = revision;
  }

  /** Timer work: a failure must not crash the process, and must not pass silently. */
  private background(fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      process.emitWarning(`netctl lmdb store ${this.path}: ${(err as Error).message}`, 'NetctlKvWarning');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const { queue } of [...this.watchers]) queue.close();
    this.stopPolling();
    clearInterval(this.sweepTimer);
    this.closed = true;
    await this.root.close();
  }
}
