/**
 * Pools as values: validating a pool request, pool ids, the derived view the
 * allocator works from (usable and dynamic bounds, reservations), and picking
 * a subnet from the default pools. Pure: no store, no I/O.
 */
import {
  type Address,
  containsAddress,
  containsSubnet,
  type Family,
  formatAddress,
  InvalidAddressError,
  InvalidCidrError,
  lastAddress,
  overlaps,
  parseAddress,
  parseSubnet,
  type Subnet,
  subnetAt,
} from '../address.js';
import {
  AddressOutOfRangeError,
  InvalidRequestError,
  NoAvailablePoolError,
  PoolOverlapError,
  UnknownAddressSpaceError,
} from './errors.js';
import type { PoolRecord, SpaceRecord } from './store.js';

/** Docker's daemon.json `default-address-pools` entry: carve `base` into subnets of /`size`. */
export interface DefaultPool {
  base: string;
  size: number;
}

/**
 * Docker's defaults (moby libnetwork/ipamutils): local networks get
 * 172.17-31.0.0/16, then 192.168.0.0/16 in /20s; global (swarm/overlay)
 * networks get 10.0.0.0/8 in /24s. No IPv6 defaults: IPv6 pools need a subnet
 * unless configured.
 */
export const DEFAULT_POOLS: Readonly<Record<string, readonly DefaultPool[]>> = {
  local: [
    ...Array.from({ length: 15 }, (_, i) => ({ base: `172.${17 + i}.0.0/16`, size: 16 })),
    { base: '192.168.0.0/16', size: 20 },
  ],
  global: [{ base: '10.0.0.0/8', size: 24 }],
};

export interface PoolRequest {
  /** Address space: 'local' (default) or 'global'. */
  space?: string;
  /** CIDR; without it a subnet is carved from the space's default pools. */
  subnet?: string;
  /** Sub-range (CIDR) that dynamic allocation is limited to. Static requests may use the whole subnet. */
  ipRange?: string;
  /** Gateway address; default the subnet's first usable address; false: none now (Docker requests it later). */
  gateway?: string | false;
  /** name -> address, reserved for the pool's lifetime. */
  auxAddresses?: Record<string, string>;
  /** Family when no subnet is given. */
  v6?: boolean;
  /** Who holds the pool (`net:<id>`), for reconcile to find pools whose network is gone. */
  owner?: string;
  /** Subnets a default pool must not overlap (the host's routes): skipped, as pools in use are. */
  avoid?: readonly string[];
}

/** What the allocator needs to know about a pool, derived once from its record. */
export interface PoolView {
  record: PoolRecord;
  subnet: Subnet;
  /** Dynamic allocation bounds, as offsets from the subnet base, inclusive (lo > hi: empty). */
  lo: bigint;
  hi: bigint;
  /** Text of the dynamic range, for messages. */
  rangeText: string;
  /** Offsets held by the pool itself -> "gateway" | "aux:<name>". */
  reserved: Map<bigint, string>;
  /** How many reserved offsets lie in [lo, hi]. */
  reservedInRange: number;
}

/** A pool as read from the store: its view and the version of its record, which every write compares. */
export interface LoadedPool {
  view: PoolView;
  version: number;
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

export function poolInfo(record: PoolRecord, allocated: number): PoolInfo {
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

export function poolIdOf(space: string, subnet: Subnet): string {
  return `${space}/${subnet.cidr}`;
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

/** Offsets that may be assigned at all: IPv4 never the network or broadcast address, IPv6 never the subnet-router anycast (RFC 4291 2.6.1); /31, /32 (RFC 3021) and /127, /128 (RFC 6164) use every address. */
export function usableBounds(subnet: Subnet): { first: bigint; last: bigint } {
  const pointToPoint = subnet.prefixLength >= (subnet.family === 4 ? 31 : 127);
  if (pointToPoint) return { first: 0n, last: subnet.size - 1n };
  return { first: 1n, last: subnet.family === 4 ? subnet.size - 2n : subnet.size - 1n };
}

/** Why `offset` can never be assigned, or undefined if it can. */
export function unusableReason(subnet: Subnet, offset: bigint): string | undefined {
  const { first, last } = usableBounds(subnet);
  if (offset >= first && offset <= last) return undefined;
  if (offset === 0n)
    return `it is the ${subnet.family === 4 ? 'network' : 'subnet-router anycast'} address of ${subnet.cidr}`;
  return `it is the broadcast address of ${subnet.cidr}`;
}

function checkedAddress(text: string, subnet: Subnet, what: string): Address {
  const address = parseAddress(text, what);
  if (address.family !== subnet.family) {
    throw new InvalidAddressError(
      text,
      `${what} is IPv${address.family} but subnet ${subnet.cidr} is IPv${subnet.family}`,
    );
  }
  if (!containsAddress(subnet, address.value))
    throw new AddressOutOfRangeError(address.text, subnet.cidr, what);
  const reason = unusableReason(subnet, address.value - subnet.base);
  if (reason) throw new InvalidAddressError(text, `${what} cannot be used: ${reason}`);
  return address;
}

export function assertSpace(space: string, spaces: readonly string[]): void {
  if (!spaces.includes(space)) throw new UnknownAddressSpaceError(space, spaces);
}

/** The subnet a pool request names, checked against the rest of the request; undefined: pick one. */
export function requestedSubnet(request: PoolRequest): Subnet | undefined {
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
  return requested;
}

/**
 * The subnet of a new pool in `space` beside its `pools`: the requested
 * one if it overlaps none of them, else the first free one of `defaults`.
 */
export function choosePoolSubnet(
  space: string,
  request: PoolRequest,
  requested: Subnet | undefined,
  pools: SpaceRecord['pools'],
  defaults: readonly DefaultPool[],
): Subnet {
  const existing = pools.map((p) => ({ ...p, parsed: parseSubnet(p.subnet) }));
  if (requested) {
    const clash = existing.find((p) => p.parsed.family === requested.family && overlaps(p.parsed, requested));
    if (clash) throw new PoolOverlapError(requested.cidr, clash.subnet, space);
    return requested;
  }
  const family: Family = request.v6 ? 6 : 4;
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
  return picked;
}

/** Validate a request for `subnet` in `space` and build the pool's record. */
export function buildPoolRecord(space: string, subnet: Subnet, request: PoolRequest, now: Date): PoolRecord {
  const record: PoolRecord = {
    id: poolIdOf(space, subnet),
    space,
    subnet: subnet.cidr,
    auxAddresses: {},
    createdAt: now.toISOString(),
  };
  if (request.owner !== undefined) record.owner = request.owner;
  if (request.ipRange !== undefined) {
    const range = parseSubnet(request.ipRange, 'ip-range');
    if (range.family !== subnet.family) {
      throw new InvalidCidrError(
        request.ipRange,
        `ip-range is IPv${range.family} but subnet ${subnet.cidr} is IPv${subnet.family}`,
      );
    }
    if (!containsSubnet(subnet, range)) throw new AddressOutOfRangeError(range.cidr, subnet.cidr, 'ip-range');
    record.ipRange = range.cidr;
  }
  const taken = new Map<string, string>();
  if (request.gateway === undefined) {
    const { first } = usableBounds(subnet);
    // A /32 or /128 has room for one address only: no default gateway.
    if (subnet.size > 1n) record.gateway = formatAddress(subnet.base + first, subnet.family);
  } else if (request.gateway !== false) {
    record.gateway = checkedAddress(request.gateway, subnet, 'gateway').text;
  }
  if (record.gateway) taken.set(record.gateway, 'the gateway');
  for (const [name, text] of Object.entries(request.auxAddresses ?? {})) {
    if (name === '') throw new InvalidRequestError(`aux address ${JSON.stringify(text)} needs a name`);
    const address = checkedAddress(text, subnet, `aux address ${name}`).text;
    const holder = taken.get(address);
    if (holder) throw new InvalidRequestError(`aux address ${name}=${address} is already ${holder}`);
    taken.set(address, `aux address ${name}`);
    record.auxAddresses[name] = address;
  }
  const view = viewOfPool(record);
  if (view.lo > view.hi) {
    throw new InvalidRequestError(
      `ip-range ${view.rangeText} of subnet ${subnet.cidr} has no assignable address`,
    );
  }
  return record;
}

// Math.max and Math.min take no bigints.
function bigMax(a: bigint, b: bigint): bigint {
  if (a > b) return a;
  return b;
}

function bigMin(a: bigint, b: bigint): bigint {
  if (a < b) return a;
  return b;
}

export function viewOfPool(record: PoolRecord): PoolView {
  const subnet = parseSubnet(record.subnet);
  const range = record.ipRange ? parseSubnet(record.ipRange) : subnet;
  const { first, last } = usableBounds(subnet);
  const rangeLo = range.base - subnet.base;
  const rangeHi = lastAddress(range) - subnet.base;
  const lo = bigMax(rangeLo, first);
  const hi = bigMin(rangeHi, last);
  const reserved = new Map<bigint, string>();
  if (record.gateway) reserved.set(parseAddress(record.gateway).value - subnet.base, 'gateway');
  for (const [name, text] of Object.entries(record.auxAddresses)) {
    reserved.set(parseAddress(text).value - subnet.base, `aux:${name}`);
  }
  let reservedInRange = 0;
  for (const offset of reserved.keys()) if (offset >= lo && offset <= hi) reservedInRange++;
  return { record, subnet, lo, hi, rangeText: range.cidr, reserved, reservedInRange };
}

/**
 * The first subnet carved from `defaults` (in order) that overlaps none of
 * `existing`. Skips past each overlapping pool in one step, so a /8 cut
 * into /24s costs O(pools), not O(65,536).
 */
export function pickDefaultSubnet(
  defaults: readonly DefaultPool[],
  family: Family,
  existing: readonly Subnet[],
): Subnet | undefined {
  const taken = existing
    .filter((s) => s.family === family)
    .sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
  for (const pool of defaults) {
    const base = parseSubnet(pool.base, 'default pool base');
    if (base.family !== family) continue;
    const bits = family === 4 ? 32 : 128;
    if (!Number.isInteger(pool.size) || pool.size < base.prefixLength || pool.size > bits) {
      throw new InvalidRequestError(
        `default pool ${base.cidr} has size /${pool.size}, outside /${base.prefixLength}../${bits}`,
      );
    }
    const step = 1n << BigInt(bits - pool.size);
    let start = base.base;
    const end = lastAddress(base);
    // Pools of one space never overlap each other, so in base order the
    // first one not wholly before the candidate is the only one to check.
    let j = 0;
    while (start + step - 1n <= end) {
      while (j < taken.length && lastAddress(taken[j]!) < start) j++;
      const clash = j < taken.length && taken[j]!.base <= start + step - 1n ? taken[j]! : undefined;
      if (!clash) return subnetAt(start, pool.size, family);
      // Next aligned candidate past the clashing pool.
      const after = lastAddress(clash) + 1n;
      start = after > start + step ? ((after + step - 1n) / step) * step : start + step;
    }
  }
  return undefined;
}
