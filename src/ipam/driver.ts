/**
 * The core's IpamDriver contract (src/core/ipam.ts, libnetwork ipamapi) over
 * Ipam. In that contract the pool reserves nothing by itself: the caller
 * requests the gateway and aux addresses as addresses owned by the network
 * (`net:<id>`), as dockerd does through the remote IPAM protocol, so pools
 * are made without a gateway and every reservation has an owner.
 */
import { InvalidAddressError, parseAddress } from '../address.js';
import type {
  AddressSpaces,
  AddressRequest as CoreAddressRequest,
  IpamDriver,
  IpamLookup,
  Pool,
  PoolRequest,
  ReleasesByOwner,
  Reservation,
} from '../core/ipam.js';
import { PoolNotFoundError } from './errors.js';
import type { Ipam } from './ipam.js';
import { parsePoolId } from './pool.js';

export class KvIpamDriver implements IpamDriver, ReleasesByOwner, IpamLookup {
  constructor(private readonly ipam: Ipam) {}

  async defaultAddressSpaces(): Promise<AddressSpaces> {
    return this.ipam.defaultAddressSpaces();
  }

  async requestPool(request: PoolRequest): Promise<Pool> {
    const info = await this.ipam.requestPool({
      space: request.addressSpace,
      ...(request.pool !== undefined ? { subnet: request.pool } : {}),
      ...(request.subPool !== undefined ? { ipRange: request.subPool } : {}),
      v6: request.v6,
      ...(request.avoid ? { avoid: request.avoid } : {}),
      gateway: false,
      owner: request.owner,
    });
    return { poolId: info.poolId, pool: info.subnet };
  }

  async releasePool(poolId: string): Promise<void> {
    await this.ipam.releasePool(poolId);
  }

  async requestAddress(request: CoreAddressRequest): Promise<Reservation> {
    const allocation = await this.ipam.requestAddress(request.poolId, {
      owner: request.owner,
      ...(request.address !== undefined ? { address: this.bare(request.poolId, request.address) } : {}),
    });
    return { poolId: allocation.poolId, address: allocation.cidr, owner: allocation.owner };
  }

  async releaseAddress(poolId: string, address: string): Promise<void> {
    await this.ipam.releaseAddress(poolId, this.bare(poolId, address));
  }

  /** Through the IPAM's owner index: as many reads as the owner holds addresses. */
  async releaseOwner(owner: string): Promise<Reservation[]> {
    return (await this.ipam.releaseOwner(owner)).map((a) => ({
      poolId: a.poolId,
      address: a.cidr,
      owner: a.owner,
    }));
  }

  async pool(poolId: string): Promise<(Pool & { owner: string }) | undefined> {
    try {
      const p = await this.ipam.getPool(poolId);
      return { poolId: p.poolId, pool: p.subnet, owner: p.owner ?? '' };
    } catch (err) {
      if (err instanceof PoolNotFoundError) return undefined;
      throw err;
    }
  }

  /** Who holds one address of a pool (one read), if anyone. */
  async reservation(poolId: string, address: string): Promise<Reservation | undefined> {
    const bare = parseAddress(this.bare(poolId, address), 'address').text;
    const { subnet } = parsePoolId(poolId, this.ipam.addressSpaces);
    const record = await this.ipam.store.address(poolId, bare);
    return record && { poolId, address: `${bare}/${subnet.prefixLength}`, owner: record.value.owner };
  }

  async listPools(): Promise<(Pool & { owner: string })[]> {
    return (await this.ipam.listPools()).map((p) => ({
      poolId: p.poolId,
      pool: p.subnet,
      owner: p.owner ?? '',
    }));
  }

  async listReservations(poolId: string): Promise<Reservation[]> {
    const pool = await this.ipam.getPool(poolId);
    const prefix = pool.subnet.slice(pool.subnet.indexOf('/'));
    // Reservations the pool itself holds (made through Ipam directly, not through this contract).
    const own = [pool.gateway, ...Object.values(pool.auxAddresses)]
      .filter((a): a is string => a !== undefined)
      .map((a) => ({ poolId, address: `${a}${prefix}`, owner: pool.owner ?? '' }));
    const held = (await this.ipam.listAllocations(poolId)).map((a) => ({
      poolId,
      address: a.cidr,
      owner: a.owner,
    }));
    return [...own, ...held];
  }

  /** Reservations carry the prefix length ("10.1.0.5/24"); accept them back as well as a plain address. */
  private bare(poolId: string, address: string): string {
    const slash = address.indexOf('/');
    if (slash < 0) return address;
    const { subnet } = parsePoolId(poolId, this.ipam.addressSpaces);
    if (address.slice(slash + 1) !== String(subnet.prefixLength)) {
      throw new InvalidAddressError(address, `prefix length does not match pool ${poolId}`);
    }
    return address.slice(0, slash);
  }
}
