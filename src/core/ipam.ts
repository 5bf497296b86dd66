/**
 * The IPAM contract (libnetwork ipamapi), which Docker's remote IPAM
 * protocol mirrors one to one. Every reservation names its owner (a
 * network or endpoint id), so addresses whose owner is gone can be found
 * and released — by reconcile, without waiting for a DEL that never comes.
 */

export interface AddressSpaces {
  local: string;
  global: string;
}

export interface PoolRequest {
  addressSpace: string;
  /** A specific subnet, or undefined for the next free default pool. */
  pool?: string;
  /** Dynamic allocation draws only from this sub-range. */
  subPool?: string;
  v6: boolean;
  /** Who holds the pool (`net:<id>`). */
  owner: string;
  /** Without a pool: subnets the one picked must not overlap (the host's routes). */
  avoid?: readonly string[];
}

export interface Pool {
  poolId: string;
  /** The subnet, e.g. 10.1.0.0/24. */
  pool: string;
}

export interface AddressRequest {
  poolId: string;
  /** A specific address, or undefined for the next free one. */
  address?: string;
  /** Who holds the address (`net:<id>` for gateways and aux addresses, `ep:<id>` for endpoints). */
  owner: string;
}

export interface Reservation {
  poolId: string;
  /** Address with the pool's prefix length, e.g. 10.1.0.5/24. */
  address: string;
  owner: string;
}

export interface IpamDriver {
  defaultAddressSpaces(): Promise<AddressSpaces>;
  requestPool(request: PoolRequest): Promise<Pool>;
  /** Absent pool is success. */
  releasePool(poolId: string): Promise<void>;
  requestAddress(request: AddressRequest): Promise<Reservation>;
  /** Absent reservation is success. */
  releaseAddress(poolId: string, address: string): Promise<void>;
  /** Every pool with its owner, for reconcile. */
  listPools(): Promise<(Pool & { owner: string })[]>;
  /** Every reservation, for reconcile. */
  listReservations(poolId: string): Promise<Reservation[]>;
}

/**
 * Optional: release everything one owner holds, found through an index kept
 * by owner, so an endpoint's removal never lists its whole pool (the pool
 * may hold thousands). Docker's remote IPAM protocol has no such call; the
 * controller falls back to listing reservations without it.
 */
export interface ReleasesByOwner {
  /** The reservations released; absent ones are success. */
  releaseOwner(owner: string): Promise<Reservation[]>;
}

export function releasesByOwner(ipam: IpamDriver): ipam is IpamDriver & ReleasesByOwner {
  return 'releaseOwner' in ipam && typeof ipam.releaseOwner === 'function';
}

/**
 * Optional: one pool or one reservation by its id, without listing (a
 * caller that releases only what it holds — Docker's remote IPAM, whose
 * ReleaseAddress names an address, not an owner).
 */
export interface IpamLookup {
  pool(poolId: string): Promise<(Pool & { owner: string }) | undefined>;
  reservation(poolId: string, address: string): Promise<Reservation | undefined>;
}

export function hasIpamLookup(ipam: IpamDriver): ipam is IpamDriver & IpamLookup {
  return 'pool' in ipam && 'reservation' in ipam;
}
