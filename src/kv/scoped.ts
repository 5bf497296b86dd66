/**
 * One host's view of a store that several hosts share (Redis, etcd): what
 * is this host's alone — its sandboxes, intents, local networks and their
 * IPAM space, host-port claims — lives under `netctl/v1/local/<host id>/`,
 * and what the cluster shares — global networks, their pools and members,
 * VNIs, hosts, peers — under `netctl/v1/cluster/`, the same key for every
 * host (libnetwork's local and global stores, in one store so that one
 * transaction can span both).
 *
 * Code above writes `netctl/v1/...` for its own things and
 * `netctl/v1/cluster/...` for shared ones; this view moves the former under
 * the host's root on the way in and back on the way out (results, watch
 * events, conflict keys), so two hosts' `bridge` networks, port claims or
 * gc never meet. On the embedded store (one host) no view is needed.
 */
import { KvConflictError } from './errors.js';
import {
  KEY_ROOT,
  type KvCompare,
  type KvEntry,
  type KvEvent,
  type KvOp,
  type KvStore,
  type KvTxnResult,
  type KvWatch,
  type ListOptions,
  TxnWrites,
  type WatchOptions,
} from './store.js';

/** Root of what every host of a shared store shares. */
export const CLUSTER_ROOT = `${KEY_ROOT}/cluster`;

const HOST_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Where one host's own keys live in a shared store. */
export function hostRoot(hostId: string): string {
  if (!HOST_ID.test(hostId)) throw new RangeError(`host id ${JSON.stringify(hostId)} is not a host id`);
  return `${KEY_ROOT}/local/${hostId}`;
}

export class HostScopedStore extends TxnWrites implements KvStore {
  private readonly local: string;
  private readonly own = `${KEY_ROOT}/`;

  constructor(
    private readonly inner: KvStore,
    readonly hostId: string,
  ) {
    super();
    this.local = `${hostRoot(hostId)}/`;
  }

  get backend() {
    return this.inner.backend;
  }

  /** netctl/v1/X → netctl/v1/local/<host>/X, but cluster keys (and foreign ones) stay. */
  private in(key: string): string {
    if (!key.startsWith(this.own) || key.startsWith(`${CLUSTER_ROOT}/`) || key === CLUSTER_ROOT) return key;
    return this.local + key.slice(this.own.length);
  }

  private out(key: string): string {
    return key.startsWith(this.local) ? this.own + key.slice(this.local.length) : key;
  }

  private entry(e: KvEntry): KvEntry {
    return { ...e, key: this.out(e.key) };
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const e = await this.inner.get(this.in(key));
    return e && this.entry(e);
  }

  async list(prefix: string, options?: ListOptions): Promise<KvEntry[]> {
    // The whole tree would cross roots; every caller lists one space.
    return (await this.inner.list(this.in(prefix), options)).map((e) => this.entry(e));
  }

  override async txn(compare: KvCompare[], ops: KvOp[]): Promise<KvTxnResult> {
    try {
      return await this.inner.txn(
        compare.map((c) => ({ ...c, key: this.in(c.key) })),
        ops.map((op) => ({ ...op, key: this.in(op.key) })),
      );
    } catch (err) {
      if (err instanceof KvConflictError)
        throw new KvConflictError(this.out(err.key), err.expected, err.actual);
      throw err;
    }
  }

  async watch(prefix: string, options?: WatchOptions): Promise<KvWatch> {
    const inner = await this.inner.watch(this.in(prefix), options);
    const out = (key: string) => this.out(key);
    const view: KvWatch = {
      async next(): Promise<IteratorResult<KvEvent>> {
        const r = await inner.next();
        return r.done ? r : { done: false, value: { ...r.value, key: out(r.value.key) } };
      },
      async return(): Promise<IteratorResult<KvEvent>> {
        inner.close();
        return { done: true, value: undefined };
      },
      close: () => inner.close(),
      [Symbol.asyncIterator]() {
        return view;
      },
    };
    return view;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
