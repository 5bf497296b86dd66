/**
 * Addresses in one pool: handing out the next free or a static one,
 * reserving the gateway, giving them back — each a single KV transaction
 * that compares what it read (the pool record, the pool's state record,
 * the block, the address record), so a concurrent writer makes it fail
 * and the Ipam retries it from a fresh read.
 */
import { formatAddress, InvalidAddressError, parseAddress } from '../address.js';
import { type Block, bitOf, blockIndex, blockKey, findFree, putBlock, readBlock } from './blocks.js';
import {
  AddressInUseError,
  AddressOutOfRangeError,
  InvalidRequestError,
  NoAvailableIpError,
  PoolNotFoundError,
} from './errors.js';
import { type LoadedPool, type PoolView, unusableReason, usableBounds } from './pool.js';
import {
  type AddressRecord,
  type IpamStore,
  ipamKeys,
  json,
  type PoolRecord,
  type PoolState,
  type Versioned,
} from './store.js';

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

/** What the address operations need of the Ipam: its store, its clock, and its pool cache. */
export interface AddressContext {
  store: IpamStore;
  now: () => Date;
  /** Drop a pool from the cache: its record was rewritten (a gateway reserved or released). */
  forget(poolId: string): void;
}

/** A read went stale between two steps of one attempt: start the attempt again. */
export class StaleRead extends Error {}

export function allocation(pool: PoolView, offset: bigint, owner: string): Allocation {
  const address = formatAddress(pool.subnet.base + offset, pool.subnet.family);
  return { poolId: pool.record.id, address, cidr: `${address}/${pool.subnet.prefixLength}`, owner };
}

/** Offset of a requested address in the pool, after checking it may be assigned at all. */
export function offsetOf(view: PoolView, text: string, what: string): bigint {
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

async function readState(store: IpamStore, poolId: string): Promise<Versioned<PoolState>> {
  const state = await store.state(poolId);
  // The pool record was there a moment ago: it is being released right now.
  if (!state) throw new PoolNotFoundError(poolId);
  return state;
}

/** The state after one more address is held (dynamic: the cursor moves past it) or one fewer. */
function nextState(
  view: PoolView,
  state: PoolState,
  offset: bigint,
  change: 1 | -1,
  dynamic = false,
): PoolState {
  const inRange = offset >= view.lo && offset <= view.hi;
  const next = dynamic ? (offset + 1n > view.hi ? view.lo : offset + 1n).toString() : state.next;
  return {
    next,
    allocated: state.allocated + change,
    inRange: state.inRange + (inRange ? change : 0),
  };
}

/** The writes that give `offset` (free in `block`) to `owner`, as one transaction. */
async function commitAllocation(
  ctx: AddressContext,
  pool: LoadedPool,
  state: Versioned<PoolState>,
  offset: bigint,
  block: Block,
  owner: string,
  dynamic: boolean,
): Promise<Allocation> {
  const { view } = pool;
  const id = view.record.id;
  const result = allocation(view, offset, owner);
  const index = blockIndex(offset);
  block.bitmap.set(bitOf(offset));
  const addressRecord: AddressRecord = { owner, allocatedAt: ctx.now().toISOString() };
  await ctx.store.commit(
    [
      { key: ipamKeys.pool(id), version: pool.version },
      { key: ipamKeys.state(id), version: state.version },
      { key: blockKey(view, index), version: block.version },
      { key: ipamKeys.address(id, result.address), version: 0 },
    ],
    [
      putBlock(view, index, block.bitmap),
      { type: 'put', key: ipamKeys.state(id), value: json(nextState(view, state.value, offset, 1, dynamic)) },
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

/** The next free address of the dynamic range, after the last one handed out (serial allocation). */
export async function allocateNext(
  ctx: AddressContext,
  pool: LoadedPool,
  owner: string,
): Promise<Allocation> {
  const { view } = pool;
  const state = await readState(ctx.store, view.record.id);
  const rangeSize = view.hi - view.lo + 1n;
  const free = rangeSize - BigInt(state.value.inRange) - BigInt(view.reservedInRange);
  if (free <= 0n) throw new NoAvailableIpError(view.record.id, view.rangeText);
  const candidate = await findFree(ctx.store, view, BigInt(state.value.next));
  if (!candidate) {
    // The counters said there is room but the blocks (read later) disagree:
    // someone allocated in between. Start over from a fresh state.
    throw new StaleRead();
  }
  return commitAllocation(ctx, pool, state, candidate.offset, candidate.block, owner, true);
}

/** A static address anywhere in the subnet; the same owner asking again gets what it has. */
export async function allocateStatic(
  ctx: AddressContext,
  pool: LoadedPool,
  owner: string,
  text: string,
): Promise<Allocation> {
  const { view } = pool;
  const offset = offsetOf(view, text, 'requested address');
  const wanted = allocation(view, offset, owner);
  const holder = view.reserved.get(offset);
  if (holder) throw new AddressInUseError(wanted.address, view.record.id, holder);
  const state = await readState(ctx.store, view.record.id);
  const block = await readBlock(ctx.store, view, blockIndex(offset));
  if (block.bitmap.has(bitOf(offset))) {
    const current = await ctx.store.address(view.record.id, wanted.address);
    // The same owner asking again (a retried CNI ADD) gets what it has.
    if (current?.value.owner === owner) return wanted;
    throw new AddressInUseError(wanted.address, view.record.id, current?.value.owner);
  }
  return commitAllocation(ctx, pool, state, offset, block, owner, false);
}

/** Rewrite the pool's record and one of its blocks together (the gateway lives in both). */
async function commitPoolRecord(
  ctx: AddressContext,
  pool: LoadedPool,
  record: PoolRecord,
  offset: bigint,
  block: Block,
): Promise<void> {
  const { view } = pool;
  const id = view.record.id;
  const index = blockIndex(offset);
  await ctx.store.commit(
    [
      { key: ipamKeys.pool(id), version: pool.version },
      { key: blockKey(view, index), version: block.version },
    ],
    [{ type: 'put', key: ipamKeys.pool(id), value: json(record) }, putBlock(view, index, block.bitmap)],
  );
  ctx.forget(id);
}

/** Make `text` (default: the first usable address) the pool's gateway, or return the one it has. */
export async function reserveGateway(
  ctx: AddressContext,
  pool: LoadedPool,
  text: string | undefined,
): Promise<Allocation> {
  const { view } = pool;
  const id = view.record.id;
  const current = view.record.gateway;
  if (current !== undefined) {
    if (text === undefined || parseAddress(text).text === current)
      return allocation(view, parseAddress(current).value - view.subnet.base, 'gateway');
    throw new InvalidRequestError(
      `pool ${id} already has gateway ${current}; cannot make ${text} its gateway`,
    );
  }
  const offset = text === undefined ? usableBounds(view.subnet).first : offsetOf(view, text, 'gateway');
  const result = allocation(view, offset, 'gateway');
  const holder = view.reserved.get(offset);
  if (holder) throw new AddressInUseError(result.address, id, holder);
  const block = await readBlock(ctx.store, view, blockIndex(offset));
  if (block.bitmap.has(bitOf(offset))) {
    const owner = await ctx.store.address(id, result.address);
    throw new AddressInUseError(result.address, id, owner?.value.owner);
  }
  block.bitmap.set(bitOf(offset));
  await commitPoolRecord(ctx, pool, { ...view.record, gateway: result.address }, offset, block);
  return result;
}

async function releaseGateway(ctx: AddressContext, pool: LoadedPool, offset: bigint): Promise<boolean> {
  const block = await readBlock(ctx.store, pool.view, blockIndex(offset));
  block.bitmap.clear(bitOf(offset));
  const { gateway: _, ...record } = pool.view.record;
  await commitPoolRecord(ctx, pool, record, offset, block);
  return true;
}

/**
 * Give an address back: false when nobody holds it. The gateway goes from
 * the pool's record; aux addresses live as long as the pool.
 */
export async function releaseAddress(
  ctx: AddressContext,
  pool: LoadedPool,
  address: string,
): Promise<boolean> {
  const { view } = pool;
  const poolId = view.record.id;
  const offset = offsetOf(view, address, 'released address');
  const text = formatAddress(view.subnet.base + offset, view.subnet.family);
  const holder = view.reserved.get(offset);
  if (holder === 'gateway') return releaseGateway(ctx, pool, offset);
  if (holder)
    throw new InvalidRequestError(`${text} is ${holder} of pool ${poolId}, reserved for the pool's lifetime`);
  const record = await ctx.store.address(poolId, text);
  if (!record) return false;
  const state = await readState(ctx.store, poolId);
  const index = blockIndex(offset);
  const block = await readBlock(ctx.store, view, index);
  block.bitmap.clear(bitOf(offset));
  await ctx.store.commit(
    [
      // The counters were computed from this pool's view (its range): it must still be current.
      { key: ipamKeys.pool(poolId), version: pool.version },
      { key: ipamKeys.state(poolId), version: state.version },
      { key: blockKey(view, index), version: block.version },
      { key: ipamKeys.address(poolId, text), version: record.version },
    ],
    [
      putBlock(view, index, block.bitmap),
      { type: 'put', key: ipamKeys.state(poolId), value: json(nextState(view, state.value, offset, -1)) },
      { type: 'delete', key: ipamKeys.address(poolId, text) },
      { type: 'delete', key: ipamKeys.ownerAddress(record.value.owner, poolId, text) },
    ],
  );
  return true;
}
