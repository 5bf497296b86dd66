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
 */
import {
  type Family,
  formatAddress,
  InvalidAddressError,
  overlaps,
  parseAddress,
  parseSubnet,
  type Subnet,
} from '../address.js';
import { KvConflictError } from '../kv/errors.js';
import type { KvCompare, KvOp, KvStore } from '../kv/store.js';
import { Bitmap, BLOCK_SIZE } from './bitmap.js';
import {
  AddressInUseError,
  AddressOutOfRangeError,
  ContentionError,
  InvalidRequestError,
  NoAvailableIpError,
  NoAvailablePoolError,
  PoolInUseError,
  PoolNotFoundError,
  PoolOverlapError,
} from './errors.js';
import {
  assertSpace,
  buildPoolRecord,
  DEFAULT_POOLS,
  type DefaultPool,
  GLOBAL_SPACE,
  LOCAL_SPACE,
  type PoolRequest,
  type PoolView,
  pickDefaultSubnet,
  poolIdOf,
  unusableReason,
  usableBounds,
  viewOfPool,
} from './pool.js';
import {
  type AddressRecord,
  type BlockRecord,
  IpamStore,
  ipamKeys,
  json,
  type PoolRecord,
  type PoolState,
  type SpaceRecord,
  type Versioned,
} from './store.js';

export interface IpamOptions {
  /** Default pools per address space (Docker's default-address-pools); default DEFAULT_POOLS. */
  defaultPools?: Record<string, readonly DefaultPool[]>;
  /** Give up on an operation after this many conflicting attempts. */
  maxAttempts?: number;
  /** Clock, for records' timestamps. */
  now?: () => Date;
}

export interface PoolInfo {
  poolId: string;
  space: string;
  subnet: string;
  family: Family;
  ipRange?: string;
  gateway?: string;
  auxAddresses: Record<string, string>;
  owner?: string;
  /** Addresses held by owners (gateway and aux not counted). */
  allocated: number;
}

export interface AddressRequest {
  /** Who will hold the address: an endpoint id, `cni/<containerId>/<ifname>`, ... Required. */
  owner: string;
  /** A static address; without it, the next free one in the pool's dynamic range. */
  address?: string;
  /**
   * 'gateway': reserve the pool's gateway (Docker's RequestAddressType
   * com.docker.network.gateway). Returns the pool's gateway if it has one.
   */
  role?: 'gateway';
}

export interface Allocation {
  poolId: string;
  /** "10.0.0.2" */
  address: string;
  /** "10.0.0.2/24": the address with its subnet's prefix length. */
  cidr: string;
  owner: string;
}

export interface AllocationRecord extends Allocation {
  allocatedAt: string;
}

/** A read went stale between two steps of one attempt: start the attempt again. */
class StaleRead extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Candidate {
  offset: bigint;
  blockIndex: bigint;
  bitmap: Bitmap;
  blockVersion: number;
}

export class Ipam {
  readonly store: IpamStore;
  private readonly defaultPools: Record<string, readonly DefaultPool[]>;
  private readonly maxAttempts: number;
  private readonly now: () => Date;
  /** Pool records rarely change (only a gateway reservation does); every write compares their version. */
  private readonly pools = new Map<string, { view: PoolView; version: number }>();

  constructor(kv: KvStore, options: IpamOptions = {}) {
    this.store = new IpamStore(kv);
    this.defaultPools = options.defaultPools ?? { ...DEFAULT_POOLS };
    this.maxAttempts = options.maxAttempts ?? 1000;
    this.now = options.now ?? (() => new Date());
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
    const requested = request.subnet === undefined ? undefined : parseSubnet(request.subnet);
    if (requested && request.v6 !== undefined && request.v6 !== (requested.family === 6)) {
      throw new InvalidRequestError(
        `subnet ${requested.cidr} is IPv${requested.family} but IPv${request.v6 ? 6 : 4} was asked for`,
      );
    }
    if (!requested) {
      for (const option of ['ipRange', 'gateway', 'auxAddresses'] as const) {
        if (request[option] !== undefined && request[option] !== false) {
          throw new InvalidRequestError(`${option} needs an explicit subnet`);
        }
      }
    }
    // Validate everything that does not depend on the store before the first read.
    if (requested) buildPoolRecord(space, requested, request, this.now());
    return this.retry('request pool', undefined, async () => {
      const spaceEntry = await this.store.space(space);
      const existing = (spaceEntry?.value.pools ?? []).map((p) => ({ ...p, parsed: parseSubnet(p.subnet) }));
      let subnet: Subnet;
      if (requested) {
        const clash = existing.find(
          (p) => p.parsed.family === requested.family && overlaps(p.parsed, requested),
        );
        if (clash) throw new PoolOverlapError(requested.cidr, clash.subnet, space);
        subnet = requested;
      } else {
        const family: Family = request.v6 ? 6 : 4;
        const defaults = this.defaultPools[space] ?? [];
        const picked = pickDefaultSubnet(defaults, family, [
          ...existing.map((p) => p.parsed),
          ...(request.avoid ?? []).map((cidr) => parseSubnet(cidr, 'subnet to avoid')),
        ]);
        if (!picked) {
          throw new NoAvailablePoolError(
            space,
            family,
            defaults.some((d) => parseSubnet(d.base).family === family)
              ? 'every default pool overlaps an existing pool'
              : `no IPv${family} default pools configured; give a subnet`,
          );
        }
        subnet = picked;
      }
      const record = buildPoolRecord(space, subnet, request, this.now());
      const view = viewOfPool(record);
      const blocks = new Map<bigint, Bitmap>();
      for (const offset of view.reserved.keys()) {
        const index = offset / BigInt(BLOCK_SIZE);
        const bitmap = blocks.get(index) ?? Bitmap.empty();
        bitmap.set(Number(offset % BigInt(BLOCK_SIZE)));
        blocks.set(index, bitmap);
      }
      const state: PoolState = { next: view.lo.toString(), allocated: 0, inRange: 0 };
      const pools: SpaceRecord['pools'] = [
        ...(spaceEntry?.value.pools ?? []),
        { id: record.id, subnet: record.subnet },
      ];
      await this.store.commit(
        [
          { key: ipamKeys.space(space), version: spaceEntry?.version ?? 0 },
          { key: ipamKeys.pool(record.id), version: 0 },
        ],
        [
          { type: 'put', key: ipamKeys.space(space), value: json({ pools }) },
          { type: 'put', key: ipamKeys.pool(record.id), value: json(record) },
          { type: 'put', key: ipamKeys.state(record.id), value: json(state) },
          ...[...blocks].map(
            ([index, bitmap]): KvOp => ({
              type: 'put',
              key: ipamKeys.block(record.id, subnet.family, index),
              value: json(blockRecord(bitmap)),
            }),
          ),
        ],
      );
      return poolInfo(record, 0);
    });
  }

  private async loadPool(poolId: string, fresh = false): Promise<{ view: PoolView; version: number }> {
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
      const spaceEntry = await this.store.space(space);
      const blocks = await this.store.blocks(poolId);
      const addresses = allocated > 0 ? await this.store.addresses(poolId) : [];
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
      this.pools.delete(poolId);
      return true;
    });
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
      if (request.role === 'gateway') return this.reserveGateway(pool, request.address);
      if (request.address !== undefined) return this.allocateStatic(pool, owner, request.address);
      return this.allocateNext(pool, owner);
    });
  }

  private async readState(poolId: string): Promise<Versioned<PoolState>> {
    const state = await this.store.state(poolId);
    // The pool record was there a moment ago: it is being released right now.
    if (!state) throw new PoolNotFoundError(poolId);
    return state;
  }

  private async readBlock(pool: PoolView, index: bigint): Promise<{ bitmap: Bitmap; version: number }> {
    const entry = await this.store.block(pool.record.id, pool.subnet.family, index);
    return entry
      ? { bitmap: Bitmap.decode(entry.value.bits), version: entry.version }
      : { bitmap: Bitmap.empty(), version: 0 };
  }

  private allocation(pool: PoolView, offset: bigint, owner: string): Allocation {
    const address = formatAddress(pool.subnet.base + offset, pool.subnet.family);
    return { poolId: pool.record.id, address, cidr: `${address}/${pool.subnet.prefixLength}`, owner };
  }

  /** The writes that give `offset` to `owner`, as one transaction. */
  private async commitAllocation(
    pool: { view: PoolView; version: number },
    state: Versioned<PoolState>,
    candidate: Candidate,
    owner: string,
    dynamic: boolean,
  ): Promise<Allocation> {
    const { view } = pool;
    const id = view.record.id;
    const result = this.allocation(view, candidate.offset, owner);
    candidate.bitmap.set(Number(candidate.offset % BigInt(BLOCK_SIZE)));
    const inRange = candidate.offset >= view.lo && candidate.offset <= view.hi;
    const next = dynamic
      ? candidate.offset + 1n > view.hi
        ? view.lo
        : candidate.offset + 1n
      : BigInt(state.value.next);
    const newState: PoolState = {
      next: next.toString(),
      allocated: state.value.allocated + 1,
      inRange: state.value.inRange + (inRange ? 1 : 0),
    };
    const addressRecord: AddressRecord = { owner, allocatedAt: this.now().toISOString() };
    const blockKey = ipamKeys.block(id, view.subnet.family, candidate.blockIndex);
    await this.store.commit(
      [
        { key: ipamKeys.pool(id), version: pool.version },
        { key: ipamKeys.state(id), version: state.version },
        { key: blockKey, version: candidate.blockVersion },
        { key: ipamKeys.address(id, result.address), version: 0 },
      ],
      [
        { type: 'put', key: blockKey, value: json(blockRecord(candidate.bitmap)) },
        { type: 'put', key: ipamKeys.state(id), value: json(newState) },
        { type: 'put', key: ipamKeys.address(id, result.address), value: json(addressRecord) },
        {
          type: 'put',
          key: ipamKeys.ownerAddress(owner, id, result.address),
          value: json({ poolId: id, address: result.address }),
        },
      ],
    );
    return result;
  }

  private async allocateNext(pool: { view: PoolView; version: number }, owner: string): Promise<Allocation> {
    const { view } = pool;
    const state = await this.readState(view.record.id);
    const rangeSize = view.hi - view.lo + 1n;
    const free = rangeSize - BigInt(state.value.inRange) - BigInt(view.reservedInRange);
    if (free <= 0n) throw new NoAvailableIpError(view.record.id, view.rangeText);
    const candidate = await this.findFree(view, BigInt(state.value.next));
    if (!candidate) {
      // The counters said there is room but the blocks (read later) disagree:
      // someone allocated in between. Start over from a fresh state.
      throw new StaleRead();
    }
    return this.commitAllocation(pool, state, candidate, owner, true);
  }

  /**
   * First free offset at or after `next` in [lo, hi], wrapping round to lo.
   * Reads one block at a time; after a run of full blocks (a range that has
   * wrapped and is nearly full) it lists all written blocks in one call.
   */
  private async findFree(view: PoolView, next: bigint): Promise<Candidate | undefined> {
    const B = BigInt(BLOCK_SIZE);
    const start = next >= view.lo && next <= view.hi ? next : view.lo;
    let listed: Map<bigint, Versioned<BlockRecord>> | undefined;
    let fullRun = 0;
    const segments: [bigint, bigint][] = [[start, view.hi]];
    if (start > view.lo) segments.push([view.lo, start - 1n]);
    for (const [from, to] of segments) {
      let pos = from;
      while (pos <= to) {
        const blockIndex = pos / B;
        const blockStart = blockIndex * B;
        let block: { bitmap: Bitmap; version: number };
        if (listed) {
          const entry = listed.get(blockIndex);
          block = entry
            ? { bitmap: Bitmap.decode(entry.value.bits), version: entry.version }
            : { bitmap: Bitmap.empty(), version: 0 };
        } else {
          block = await this.readBlock(view, blockIndex);
        }
        const last = blockStart + B - 1n < to ? blockStart + B - 1n : to;
        const bit = block.bitmap.findClear(Number(pos - blockStart), Number(last - blockStart));
        if (bit >= 0) {
          return {
            offset: blockStart + BigInt(bit),
            blockIndex,
            bitmap: block.bitmap,
            blockVersion: block.version,
          };
        }
        pos = blockStart + B;
        if (!listed && ++fullRun >= 4) listed = await this.store.blocks(view.record.id);
      }
    }
    return undefined;
  }

  /** Offset of a requested address in the pool, after checking it may be assigned at all. */
  private offsetOf(view: PoolView, text: string, what: string): bigint {
    const address = parseAddress(text, what);
    if (address.family !== view.subnet.family) {
      throw new InvalidAddressError(
        text,
        `${what} is IPv${address.family} but pool ${view.record.id} is IPv${view.subnet.family}`,
      );
    }
    const offset = address.value - view.subnet.base;
    if (offset < 0n || offset >= view.subnet.size)
      throw new AddressOutOfRangeError(address.text, view.subnet.cidr, what);
    const reason = unusableReason(view.subnet, offset);
    if (reason) throw new InvalidAddressError(text, `${what} cannot be assigned: ${reason}`);
    return offset;
  }

  private async allocateStatic(
    pool: { view: PoolView; version: number },
    owner: string,
    text: string,
  ): Promise<Allocation> {
    const { view } = pool;
    const offset = this.offsetOf(view, text, 'requested address');
    const wanted = this.allocation(view, offset, owner);
    const holder = view.reserved.get(offset);
    if (holder) throw new AddressInUseError(wanted.address, view.record.id, holder);
    const state = await this.readState(view.record.id);
    const blockIndex = offset / BigInt(BLOCK_SIZE);
    const block = await this.readBlock(view, blockIndex);
    if (block.bitmap.has(Number(offset % BigInt(BLOCK_SIZE)))) {
      const current = await this.store.address(view.record.id, wanted.address);
      // The same owner asking again (a retried CNI ADD) gets what it has.
      if (current?.value.owner === owner) return wanted;
      throw new AddressInUseError(wanted.address, view.record.id, current?.value.owner);
    }
    return this.commitAllocation(
      pool,
      state,
      { offset, blockIndex, ...block, blockVersion: block.version },
      owner,
      false,
    );
  }

  private async reserveGateway(
    pool: { view: PoolView; version: number },
    text: string | undefined,
  ): Promise<Allocation> {
    const { view } = pool;
    const id = view.record.id;
    const current = view.record.gateway;
    if (current !== undefined) {
      if (text === undefined || parseAddress(text).text === current)
        return this.allocation(view, parseAddress(current).value - view.subnet.base, 'gateway');
      throw new InvalidRequestError(
        `pool ${id} already has gateway ${current}; cannot make ${text} its gateway`,
      );
    }
    const offset =
      text === undefined ? usableBounds(view.subnet).first : this.offsetOf(view, text, 'gateway');
    const result = this.allocation(view, offset, 'gateway');
    const holder = view.reserved.get(offset);
    if (holder) throw new AddressInUseError(result.address, id, holder);
    const blockIndex = offset / BigInt(BLOCK_SIZE);
    const block = await this.readBlock(view, blockIndex);
    if (block.bitmap.has(Number(offset % BigInt(BLOCK_SIZE)))) {
      const owner = await this.store.address(id, result.address);
      throw new AddressInUseError(result.address, id, owner?.value.owner);
    }
    block.bitmap.set(Number(offset % BigInt(BLOCK_SIZE)));
    const blockKey = ipamKeys.block(id, view.subnet.family, blockIndex);
    const record: PoolRecord = { ...view.record, gateway: result.address };
    await this.store.commit(
      [
        { key: ipamKeys.pool(id), version: pool.version },
        { key: blockKey, version: block.version },
      ],
      [
        { type: 'put', key: ipamKeys.pool(id), value: json(record) },
        { type: 'put', key: blockKey, value: json(blockRecord(block.bitmap)) },
      ],
    );
    this.pools.delete(id);
    return result;
  }

  /**
   * Give an address back. Releasing an address nobody holds is not an error
   * (returns false); an address outside the pool is. Releasing the gateway
   * removes it from the pool; aux addresses live as long as the pool.
   */
  async releaseAddress(poolId: string, address: string): Promise<boolean> {
    parsePoolId(poolId, this.addressSpaces);
    parseAddress(address, 'address');
    return this.retry('release address', poolId, async () => {
      const pool = await this.loadPool(poolId);
      const { view } = pool;
      const offset = this.offsetOf(view, address, 'released address');
      const text = formatAddress(view.subnet.base + offset, view.subnet.family);
      const holder = view.reserved.get(offset);
      if (holder === 'gateway') return this.releaseGateway(pool, offset);
      if (holder)
        throw new InvalidRequestError(
          `${text} is ${holder} of pool ${poolId}, reserved for the pool's lifetime`,
        );
      const record = await this.store.address(poolId, text);
      if (!record) return false;
      const state = await this.readState(poolId);
      const blockIndex = offset / BigInt(BLOCK_SIZE);
      const block = await this.readBlock(view, blockIndex);
      block.bitmap.clear(Number(offset % BigInt(BLOCK_SIZE)));
      const inRange = offset >= view.lo && offset <= view.hi;
      const newState: PoolState = {
        next: state.value.next,
        allocated: state.value.allocated - 1,
        inRange: state.value.inRange - (inRange ? 1 : 0),
      };
      const blockKey = ipamKeys.block(poolId, view.subnet.family, blockIndex);
      await this.store.commit(
        [
          // The counters were computed from this pool's view (its range): it must still be current.
          { key: ipamKeys.pool(poolId), version: pool.version },
          { key: ipamKeys.state(poolId), version: state.version },
          { key: blockKey, version: block.version },
          { key: ipamKeys.address(poolId, text), version: record.version },
        ],
        [
          { type: 'put', key: blockKey, value: json(blockRecord(block.bitmap)) },
          { type: 'put', key: ipamKeys.state(poolId), value: json(newState) },
          { type: 'delete', key: ipamKeys.address(poolId, text) },
          { type: 'delete', key: ipamKeys.ownerAddress(record.value.owner, poolId, text) },
        ],
      );
      return true;
    });
  }

  private async releaseGateway(pool: { view: PoolView; version: number }, offset: bigint): Promise<boolean> {
    const { view } = pool;
    const id = view.record.id;
    const blockIndex = offset / BigInt(BLOCK_SIZE);
    const block = await this.readBlock(view, blockIndex);
    block.bitmap.clear(Number(offset % BigInt(BLOCK_SIZE)));
    const { gateway: _, ...record } = view.record;
    const blockKey = ipamKeys.block(id, view.subnet.family, blockIndex);
    await this.store.commit(
      [
        { key: ipamKeys.pool(id), version: pool.version },
        { key: blockKey, version: block.version },
      ],
      [
        { type: 'put', key: ipamKeys.pool(id), value: json(record) },
        { type: 'put', key: blockKey, value: json(blockRecord(block.bitmap)) },
      ],
    );
    this.pools.delete(id);
    return true;
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
          released.push({
            ...this.allocation(view, parseAddress(value.address).value - view.subnet.base, owner),
          });
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

function blockRecord(bitmap: Bitmap): BlockRecord {
  return { bits: bitmap.encode(), used: bitmap.used };
}

function poolInfo(record: PoolRecord, allocated: number): PoolInfo {
  return {
    poolId: record.id,
    space: record.space,
    subnet: record.subnet,
    family: parseSubnet(record.subnet).family,
    ...(record.ipRange ? { ipRange: record.ipRange } : {}),
    ...(record.gateway ? { gateway: record.gateway } : {}),
    auxAddresses: { ...record.auxAddresses },
    ...(record.owner !== undefined ? { owner: record.owner } : {}),
    allocated,
  };
}

/** "local/10.0.0.0/24" -> its space and subnet; a pool id names its own key. */
export function parsePoolId(poolId: string, spaces: readonly string[]): { space: string; subnet: Subnet } {
  const slash = typeof poolId === 'string' ? poolId.indexOf('/') : -1;
  if (slash <= 0)
    throw new InvalidRequestError(`invalid pool id ${JSON.stringify(poolId)}: expected <space>/<subnet>`);
  const space = poolId.slice(0, slash);
  assertSpace(space, spaces);
  const subnet = parseSubnet(poolId.slice(slash + 1), 'pool id subnet');
  if (poolIdOf(space, subnet) !== poolId) {
    throw new InvalidRequestError(
      `invalid pool id ${JSON.stringify(poolId)}: expected ${poolIdOf(space, subnet)}`,
    );
  }
  return { space, subnet };
}
