/**
 * Watch plumbing shared by the backends: an async-iterator queue, and a
 * tracker that turns a possibly lossy, possibly repeated stream of changes
 * plus occasional full snapshots into a clean event stream (no duplicates,
 * never older than what was already delivered).
 */
import type { KvEntry, KvEvent, KvWatch } from './store.js';

/** Buffers events until the consumer pulls them. */
export class WatchQueue implements KvWatch {
  private buffer: KvEvent[] = [];
  private head = 0;
  private readonly waiters: ((result: IteratorResult<KvEvent>) => void)[] = [];
  private closed = false;

  constructor(private readonly onClose: () => void) {}

  get isClosed(): boolean {
    return this.closed;
  }

  push(event: KvEvent): void {
    if (this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) waiter({ value: event, done: false });
    else this.buffer.push(event);
  }

  next(): Promise<IteratorResult<KvEvent>> {
    if (this.head < this.buffer.length) {
      const value = this.buffer[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.buffer.length) {
        this.buffer = this.buffer.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  return(): Promise<IteratorResult<KvEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer = [];
    this.head = 0;
    for (const waiter of this.waiters.splice(0)) waiter({ value: undefined, done: true });
    this.onClose();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * What one watcher has delivered, so that replays and stale snapshots are
 * dropped. Versions are store revisions, so "newer" is a number compare:
 *
 * - `present`: keys the consumer believes exist, at the version it got.
 * - `tombs`: keys deleted since the last snapshot, at the delete revision.
 * - `floor`: revision of the last complete view (snapshot, or an in-order
 *   stream processed up to there). A key in neither map was absent at
 *   `floor`, so anything at or below it is old news.
 */
export class WatchTracker {
  private readonly present = new Map<string, number>();
  private readonly tombs = new Map<string, number>();
  private floor = 0;

  constructor(
    readonly prefix: string,
    private readonly emit: (event: KvEvent) => void,
  ) {}

  matches(key: string): boolean {
    return key.startsWith(this.prefix);
  }

  private known(key: string): number {
    return this.present.get(key) ?? this.tombs.get(key) ?? this.floor;
  }

  /** One change from the backend's stream (any prefix; others are ignored). */
  apply(event: KvEvent): void {
    if (!this.matches(event.key)) return;
    const known = this.known(event.key);
    if (event.version <= known) return;
    if (event.type === 'put') {
      this.present.set(event.key, event.version);
      this.tombs.delete(event.key);
      this.emit(event);
      return;
    }
    const wasPresent = this.present.delete(event.key);
    this.tombs.set(event.key, event.version);
    if (wasPresent) this.emit(event);
  }

  /**
   * A complete listing of the prefix taken at revision `snapshot`. Reports
   * what changed since the consumer's view (when `report`), or silently
   * seeds the view (the start of a watch without `initial`).
   */
  resync(entries: readonly KvEntry[], snapshot: number, report = true): void {
    if (snapshot < this.floor) {
      this.restart(entries, snapshot, report);
      return;
    }
    const listed = new Set<string>();
    for (const entry of entries) {
      if (!this.matches(entry.key)) continue;
      listed.add(entry.key);
      if (entry.version <= this.known(entry.key)) continue;
      this.present.set(entry.key, entry.version);
      this.tombs.delete(entry.key);
      if (report) this.emit({ type: 'put', key: entry.key, value: entry.value, version: entry.version });
    }
    for (const [key, version] of this.present) {
      // A version above the snapshot came from the stream after the listing was taken.
      if (listed.has(key) || version > snapshot) continue;
      this.present.delete(key);
      if (report) this.emit({ type: 'delete', key, version: snapshot });
    }
    this.advance(snapshot);
  }

  /**
   * Revisions went backwards: the backend lost its history (a Redis
   * restarted without persistence). Versions from before cannot be compared
   * with the new ones, so report the listing as the new truth.
   */
  private restart(entries: readonly KvEntry[], snapshot: number, report: boolean): void {
    const listed = new Set(entries.filter((e) => this.matches(e.key)).map((e) => e.key));
    for (const key of this.present.keys()) {
      if (!listed.has(key) && report) this.emit({ type: 'delete', key, version: snapshot });
    }
    this.present.clear();
    this.tombs.clear();
    this.floor = 0;
    for (const entry of entries) {
      if (!this.matches(entry.key)) continue;
      this.present.set(entry.key, entry.version);
      if (report) this.emit({ type: 'put', key: entry.key, value: entry.value, version: entry.version });
    }
    this.floor = snapshot;
  }

  /** The stream is known complete and applied up to `revision`. */
  advance(revision: number): void {
    if (revision <= this.floor) return;
    this.floor = revision;
    for (const [key, version] of this.tombs) if (version <= revision) this.tombs.delete(key);
  }
}
