/**
 * In-memory KvStore for unit tests (host-local's backend/testing/fake_store.go
 * in spirit). Same semantics as the real backends — revisions, CAS, atomic
 * transactions, TTL, watch — and it passes the same contract suite. Values are
 * stored serialized, so callers can never mutate the store through an object
 * they read or wrote. Every call yields to the event loop once, so code
 * under test sees the interleavings a real async store produces.
 *
 * Several MemoryStore instances may share one MemoryState: they behave like
 * several processes on one backend (a watch on one sees writes by another).
 */
import { KvBackendError, KvConflictError, KvUnavailableError } from '../errors.js';
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
} from '../store.js';
import { WatchQueue, WatchTracker } from '../watch.js';

interface Row {
  json: string;
  version: number;
  expiresAt?: number;
  timer?: NodeJS.Timeout;
}

/** The "server": data shared by every MemoryStore opened on it. */
export class MemoryState {
  readonly rows = new Map<string, Row>();
  revision = 0;
  readonly trackers = new Set<WatchTracker>();
  /** Count of store calls by name, for tests that assert cost (e.g. O(1) keys per allocation). */
  readonly calls = new Map<string, number>();
  /**
   * Fault injection: when it returns true for a transaction's writes, the
   * transaction commits and its caller gets a lost reply (KvUnavailableError,
   * outcome unknown) — as when Redis's answer is lost after the commit.
   */
  loseReplyAfter?: (ops: readonly KvOp[]) => boolean;
  /** Fault injection: while set, every call fails as if the store were down (outcome unknown for writes). */
  down = false;
  /**
   * Fault injection: when it returns true for a transaction's writes, the
   * transaction is refused before it commits — nothing is written and the
   * caller knows it (KvBackendError, as when a backend answers an error) —
   * so the caller's undo runs, not its re-read of a lost reply.
   */
  refuseTxn?: (ops: readonly KvOp[]) => boolean;

  live(key: string, now = Date.now()): Row | undefined {
    const row = this.rows.get(key);
    if (row?.expiresAt !== undefined && row.expiresAt <= now) {
      this.expire(key, row);
      return undefined;
    }
    return row;
  }

  expire(key: string, row: Row): void {
    if (this.rows.get(key) !== row) return;
    clearTimeout(row.timer);
    this.rows.delete(key);
    this.publish({ type: 'delete', key, version: ++this.revision });
  }

  /** One commit's events (they share its revision): the floor moves once all are applied, or a second key would read as old news. */
  publish(...events: KvEvent[]): void {
    for (const tracker of this.trackers) {
      for (const event of events) tracker.apply(event);
      tracker.advance(this.revision);
    }
  }
}

export class MemoryStore extends TxnWrites implements KvStore {
  readonly backend = 'memory';
  private closed = false;
  private readonly watches = new Set<WatchQueue>();

  constructor(readonly state: MemoryState = new MemoryState()) {
    super();
  }

  private async enter(call: string): Promise<void> {
    await Promise.resolve();
    if (this.closed) throw new KvUnavailableError('memory', 'store is closed', { outcomeUnknown: false });
    if (this.state.down) throw new KvUnavailableError('memory', 'store is down (injected)');
    this.state.calls.set(call, (this.state.calls.get(call) ?? 0) + 1);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    assertKey(key);
    await this.enter('get');
    const row = this.state.live(key);
    return row && { key, value: JSON.parse(row.json) as JsonValue, version: row.version };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<KvEntry[]> {
    assertPrefix(prefix);
    await this.enter('list');
    const now = Date.now();
    const keys = [...this.state.rows.keys()].filter((key) => key.startsWith(prefix)).sort(compareKeys);
    const out: KvEntry[] = [];
    for (const key of keys) {
      if (options.limit !== undefined && out.length >= options.limit) break;
      const row = this.state.live(key, now);
      if (row) out.push({ key, value: JSON.parse(row.json) as JsonValue, version: row.version });
    }
    return out;
  }

  async txn(compare: KvCompare[], ops: KvOp[]): Promise<KvTxnResult> {
    validateTxn(compare, ops);
    const encoded = ops.map((op) => ({ op, json: op.type === 'put' ? encodeValue(op.value) : '' }));
    await this.enter('txn');
    const state = this.state;
    const now = Date.now();
    for (const c of compare) {
      const actual = state.live(c.key, now)?.version ?? 0;
      if (actual !== c.version) throw new KvConflictError(c.key, c.version, actual);
    }
    if (ops.length === 0) return { revision: 0, deleted: 0 };
    if (state.refuseTxn?.(ops)) throw new KvBackendError('memory', 'transaction refused (injected)');
    const revision = ++state.revision;
    const events: KvEvent[] = [];
    let deleted = 0;
    for (const { op, json } of encoded) {
      const old = state.live(op.key, now);
      clearTimeout(old?.timer);
      if (op.type === 'delete') {
        if (!old) continue;
        state.rows.delete(op.key);
        deleted++;
        events.push({ type: 'delete', key: op.key, version: revision });
        continue;
      }
      const row: Row = { json, version: revision };
      if (op.ttlMs !== undefined) {
        row.expiresAt = now + op.ttlMs;
        row.timer = setTimeout(() => state.expire(op.key, row), op.ttlMs).unref();
      }
      state.rows.set(op.key, row);
      events.push({ type: 'put', key: op.key, value: JSON.parse(json) as JsonValue, version: revision });
    }
    state.publish(...events);
    if (state.loseReplyAfter?.(ops))
      throw new KvUnavailableError('memory', 'reply lost after commit (injected)');
    return { revision, deleted };
  }

  async watch(prefix: string, options: WatchOptions = {}): Promise<KvWatch> {
    assertPrefix(prefix);
    await this.enter('watch');
    const state = this.state;
    const queue: WatchQueue = new WatchQueue(() => {
      state.trackers.delete(tracker);
      this.watches.delete(queue);
    });
    const tracker = new WatchTracker(prefix, (event) => queue.push(event));
    const now = Date.now();
    const entries: KvEntry[] = [];
    for (const [key, row] of [...state.rows].sort(([a], [b]) => compareKeys(a, b))) {
      if (key.startsWith(prefix) && state.live(key, now)) {
        entries.push({ key, value: JSON.parse(row.json) as JsonValue, version: row.version });
      }
    }
    tracker.resync(entries, state.revision, options.initial ?? false);
    state.trackers.add(tracker);
    this.watches.add(queue);
    return queue;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const queue of [...this.watches]) queue.close();
  }
}

/** Key order of every backend: by UTF-8 bytes (LMDB and Redis compare bytes). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function createMemoryStore(state?: MemoryState): MemoryStore {
  return new MemoryStore(state) satisfies KvStore;
}
