/**
 * The IPAM: address pools and the addresses in them, with every change one
 * compare-and-swap transaction on the KV, so any number of processes (CNI
 * calls, the daemon, the CLI) or hosts (Redis) share it without ever handing
 * one address out twice. Mirrors libnetwork's default IPAM:
 *
 * - Address spaces `local` and `global`, pools requested by subnet or carved
 *   from the default pools, overlap-checked within a space.
 * - Serial allocation (libnetwork bitseq): the next dynamic address is the
 *   first free one after the last handed out, wrapping at the end of the
 *   range, so a released address is not reused until the range has gone
 *   round — peers' ARP caches and conntrack entries for it have time to die.
 * - Static requests anywhere in the subnet (--ip-range limits only dynamic
 *   ones), the gateway, aux addresses reserved for the pool's lifetime.
 * - Every address records its owner (an endpoint id, a CNI container id +
 *   ifname) with an index by owner, so a CNI DEL without the address, or a
 *   garbage collector that finds the owner gone, can release it.
 *
 * Cost per allocation is flat: the pool's state record (cursor + counters),
 * one bitmap block of 1,024 addresses, the address record and the owner
 * index — whatever the pool's size or fill. Whether a pool is full is known
 * from the counters, without scanning.
 *
 * This file holds the Ipam itself (pools, the retry loop, the pool cache);
 * pool.ts the pool values, addresses.ts the address transactions, blocks.ts
 * the allocation bitmaps as stored, store.ts the keys and records.
 */
import { parseAddress, parseSubnet } from '../address.js';
import { KvConflictError } from '../kv/errors.js';
import type { KvCompare, KvOp, KvStore } from '../kv/store.js';
import {
  type AddressContext,
  type AddressRequest,
  type Allocation,
  type AllocationRecord,
  allocateNext,
  allocateStatic,
  allocation,
  releaseAddress,
  reserveGateway,
  StaleRead,
} from './addresses.js';
import { putBlock, reservedBlocks } from './blocks.js';
import { ContentionError, InvalidRequestError, PoolInUseError, PoolNotFoundError } from './errors.js';
import {
  assertSpace,
  buildPoolRecord,
  choosePoolSubnet,
  DEFAULT_POOLS,
  type DefaultPool,
  type LoadedPool,
  type PoolInfo,
  type PoolRequest,
  parsePoolId,
  poolInfo,
  requestedSubnet,
  viewOfPool,
} from './pool.js';
import {
  GLOBAL_SPACE,
  IpamStore,
  ipamKeys,
  json,
  LOCAL_SPACE,
  type PoolRecord,
  type PoolState,
  type SpaceRecord,
  type Versioned,
} from './store.js';

export type { AddressRequest, Allocation, AllocationRecord } from './addresses.js';
export { type PoolInfo, parsePoolId } from './pool.js';

export interface IpamOptions {
  /** Default pools per address space (Docker's default-address-pools); default DEFAULT_POOLS. */
  defaultPools?: Record<string, readonly DefaultPool[]>;
  /** Give up on an operation after this many conflicting attempts. */
  maxAttempts?: number;
  /** Clock, for records' timestamps. */
  now?: () => Date;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Ipam {
  readonly store: IpamStore;
  private readonly defaultPools: Record<string, readonly DefaultPool[]>;
  private readonly maxAttempts: number;
  private readonly now: () => Date;
  /** Pool records rarely change (only a gateway reservation does); every write compares their version. */
  private readonly pools = new Map<string, LoadedPool>();
  private readonly addresses: AddressContext;

  constructor(kv: KvStore, options: IpamOptions = {}) {
    this.store = new IpamStore(kv);
    this.defaultPools = options.defaultPools ?? { ...DEFAULT_POOLS };
    this.maxAttempts = options.maxAttempts ?? 1000;
    this.now = options.now ?? (() => new Date());
    this.addresses = { store: this.store, now: this.now, forget: (poolId) => this.pools.delete(poolId) };
  }

  /** Docker's IpamDriver.GetDefaultAddressSpaces. */
  defaultAddressSpaces(): { local: string; global: string } {
    return { local: LOCAL_SPACE, global: GLOBAL_SPACE };
  }

  get addressSpaces(): string[] {
    return Object.keys(this.defaultPools);
  }

  /** Run one attempt after another until it commits without a KV conflict. */
  private async retry<T>(
    operation: string,
    poolId: string | undefined,
    attempt: () => Promise<T>,
  ): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof KvConflictError) && !(err instanceof StaleRead)) throw err;
        if (poolId) this.pools.delete(poolId);
        if (n >= this.maxAttempts) throw new ContentionError(operation, n);
        // Back off with jitter once it is clearly contended, so N writers do not collide in lockstep.
        if (n > 2) await sleep(Math.random() * Math.min(n, 25));
      }
    }
  }

  // ---------------------------------------------------------------- pools

  async requestPool(request: PoolRequest = {}): Promise<PoolInfo> {
    const space = request.space ?? LOCAL_SPACE;
    assertSpace(space, this.addressSpaces);
    const requested = requestedSubnet(request);
    // Validate everything that does not depend on the store before the first read.
    if (requested) buildPoolRecord(space, requested, request, this.now());
    return this.retry('request pool', undefined, async () => {
      const spaceEntry = await this.store.space(space);
      const pools = spaceEntry?.value.pools ?? [];
      const defaults = this.defaultPools[space] ?? [];
      const subnet = choosePoolSubnet(space, request, requested, pools, defaults);
      const record = buildPoolRecord(space, subnet, request, this.now());
      await this.createPool(spaceEntry, record);
      return poolInfo(record, 0);
    });
  }

  /** The new pool's record, its state and reserved blocks, and its place in its space: one transaction. */
  private async createPool(
    spaceEntry: Versioned<SpaceRecord> | undefined,
    record: PoolRecord,
  ): Promise<void> {
    const view = viewOfPool(record);
    const state: PoolState = { next: view.lo.toString(), allocated: 0, inRange: 0 };
    const pools: SpaceRecord['pools'] = [
      ...(spaceEntry?.value.pools ?? []),
      { id: record.id, subnet: record.subnet },
    ];
    await this.store.commit(
      [
        { key: ipamKeys.space(record.space), version: spaceEntry?.version ?? 0 },
        { key: ipamKeys.pool(record.id), version: 0 },
      ],
      [
        { type: 'put', key: ipamKeys.space(record.space), value: json({ pools }) },
        { type: 'put', key: ipamKeys.pool(record.id), value: json(record) },
        { type: 'put', key: ipamKeys.state(record.id), value: json(state) },
        ...[...reservedBlocks(view)].map(([index, bitmap]) => putBlock(view, index, bitmap)),
      ],
    );
  }

  private async loadPool(poolId: string, fresh = false): Promise<LoadedPool> {
    const cached = fresh ? undefined : this.pools.get(poolId);
    if (cached) return cached;
    parsePoolId(poolId, this.addressSpaces);
    const entry = await this.store.pool(poolId);
    if (!entry) {
      this.pools.delete(poolId);
      throw new PoolNotFoundError(poolId);
    }
    const loaded = { view: viewOfPool(entry.value), version: entry.version };
    this.pools.set(poolId, loaded);
    return loaded;
  }

  async getPool(poolId: string): Promise<PoolInfo> {
    const { view } = await this.loadPool(poolId, true);
    const state = await this.store.state(poolId);
    return poolInfo(view.record, state?.value.allocated ?? 0);
  }

  async listPools(space?: string): Promise<PoolInfo[]> {
    const spaces = space === undefined ? this.addressSpaces : [space];
    const out: PoolInfo[] = [];
    for (const s of spaces) {
      assertSpace(s, this.addressSpaces);
      for (const { value } of await this.store.pools(s)) {
        const state = await this.store.state(value.id);
        out.push(poolInfo(value, state?.value.allocated ?? 0));
      }
    }
    return out;
  }

  /**
   * Remove a pool. Refused while owners hold addresses in it, unless forced
   * (then their reservations go with it). Releasing a pool that does not
   * exist is not an error (returns false).
   */
  async releasePool(poolId: string, options: { force?: boolean } = {}): Promise<boolean> {
    const { space } = parsePoolId(poolId, this.addressSpaces);
    return this.retry('release pool', poolId, async () => {
      const pool = await this.store.pool(poolId);
      if (!pool) return false;
      const state = await this.store.state(poolId);
      const allocated = state?.value.allocated ?? 0;
      if (allocated > 0 && !options.force) throw new PoolInUseError(poolId, allocated);
      await this.deletePool(space, pool, state);
      this.pools.delete(poolId);
      return true;
    });
  }

  /** The pool's records, blocks and reservations, and its place in its space: one transaction. */
  private async deletePool(
    space: string,
    pool: Versioned<PoolRecord>,
    state: Versioned<PoolState> | undefined,
  ): Promise<void> {
    const poolId = pool.value.id;
    const spaceEntry = await this.store.space(space);
    const blocks = await this.store.blocks(poolId);
    const addresses = (state?.value.allocated ?? 0) > 0 ? await this.store.addresses(poolId) : [];
    const family = parseSubnet(pool.value.subnet).family;
    const compare: KvCompare[] = [
      { key: ipamKeys.pool(poolId), version: pool.version },
      { key: ipamKeys.state(poolId), version: state?.version ?? 0 },
      { key: ipamKeys.space(space), version: spaceEntry?.version ?? 0 },
    ];
    const ops: KvOp[] = [
      {
        type: 'put',
        key: ipamKeys.space(space),
        value: json({ pools: (spaceEntry?.value.pools ?? []).filter((p) => p.id !== poolId) }),
      },
      { type: 'delete', key: ipamKeys.pool(poolId) },
      { type: 'delete', key: ipamKeys.state(poolId) },
      ...[...blocks.keys()].map(
        (index): KvOp => ({ type: 'delete', key: ipamKeys.block(poolId, family, index) }),
      ),
    ];
    for (const { key, address, record } of addresses) {
      ops.push({ type: 'delete', key });
      ops.push({ type: 'delete', key: ipamKeys.ownerAddress(record.value.owner, poolId, address) });
    }
    await this.store.commit(compare, ops);
  }

  // ------------------------------------------------------------ addresses

  async requestAddress(poolId: string, request: AddressRequest): Promise<Allocation> {
    const owner = request.owner;
    if (typeof owner !== 'string' || owner.trim() === '') {
      throw new InvalidRequestError('an address request needs an owner (endpoint or container id)');
    }
    parsePoolId(poolId, this.addressSpaces);
    if (request.address !== undefined) parseAddress(request.address, 'requested address');
    return this.retry('request address', poolId, async () => {
      const pool = await this.loadPool(poolId);
      if (request.role === 'gateway') return reserveGateway(this.addresses, pool, request.address);
      if (request.address !== undefined) return allocateStatic(this.addresses, pool, owner, request.address);
      return allocateNext(this.addresses, pool, owner);
    });
  }

  /**
   * Give an address back. Releasing an address nobody holds is not an error
   * (returns false); an address outside the pool is. Releasing the gateway
   * removes it from the pool; aux addresses live as long as the pool.
   */
  async releaseAddress(poolId: string, address: string): Promise<boolean> {
    parsePoolId(poolId, this.addressSpaces);
    parseAddress(address, 'address');
    return this.retry('release address', poolId, async () =>
      releaseAddress(this.addresses, await this.loadPool(poolId), address),
    );
  }

  /** Release everything `owner` holds, in every pool (a CNI DEL, a GC of a dead endpoint). */
  async releaseOwner(owner: string): Promise<Allocation[]> {
    const released: Allocation[] = [];
    for (const { value } of await this.store.ownerAddresses(owner)) {
      const current = await this.store.address(value.poolId, value.address);
      if (current && current.value.owner !== owner) continue;
      try {
        if (await this.releaseAddress(value.poolId, value.address)) {
          const { view } = await this.loadPool(value.poolId);
          released.push(allocation(view, parseAddress(value.address).value - view.subnet.base, owner));
        }
      } catch (err) {
        // The pool went away with its reservations (a forced release): nothing left to free.
        if (!(err instanceof PoolNotFoundError)) throw err;
      }
    }
    return released;
  }

  /** Every owner's reservation, in one pool or in all (for inspect and garbage collection). */
  async listAllocations(poolId?: string): Promise<AllocationRecord[]> {
    if (poolId !== undefined) parsePoolId(poolId, this.addressSpaces);
    const out: AllocationRecord[] = [];
    for (const { poolId: id, address, record } of await this.store.addresses(poolId)) {
      const prefixLength = parseSubnet(id.slice(id.indexOf('/') + 1)).prefixLength;
      out.push({
        poolId: id,
        address,
        cidr: `${address}/${prefixLength}`,
        owner: record.value.owner,
        allocatedAt: record.value.allocatedAt,
      });
    }
    return out;
  }

  /** Reservations held by one owner. */
  async allocationsOf(owner: string): Promise<{ poolId: string; address: string }[]> {
    return (await this.store.ownerAddresses(owner)).map(({ value }) => value);
  }
}
