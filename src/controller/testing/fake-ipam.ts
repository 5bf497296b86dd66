/**
 * FakeApi's IPAM (fake.ts): pools, their gateways, aux and endpoint
 * addresses, in memory — handed out as netctl's IPAM does, by its own pure
 * rules (src/ipam/cidr.ts, pool.ts: usable bounds, the IP range, the
 * cursor that moves on after each dynamic address, default pools) and
 * refused with its own errors and messages.
 */
import type { z } from 'zod';
import {
  formatAddress,
  InvalidAddressError,
  lastAddress,
  matchCidr,
  overlaps,
  parseAddress,
  parseSubnet,
  type Subnet,
} from '../../address.js';
import type { Network } from '../../core/model.js';
import type { ipamPoolSchema } from '../../core/schemas.js';
import { Errors } from '../../errors.js';
import {
  AddressInUseError,
  NoAvailableIpError,
  NoAvailablePoolError,
  PoolOverlapError,
} from '../../ipam/errors.js';
import { DEFAULT_POOLS, pickDefaultSubnet, unusableReason, usableBounds } from '../../ipam/pool.js';

export type PoolConfig = z.output<typeof ipamPoolSchema>;

/** One pool: who holds which offset, and where the next dynamic address is looked for. */
export class FakePool {
  readonly id: string;
  private readonly held = new Map<bigint, string>();
  private readonly lo: bigint;
  private readonly hi: bigint;
  private next: bigint;

  constructor(
    readonly subnet: Subnet,
    ipRange: string | undefined,
  ) {
    this.id = `local/${subnet.cidr}`;
    const range = ipRange ? parseSubnet(ipRange) : subnet;
    const { first, last } = usableBounds(subnet);
    const rangeLo = range.base - subnet.base;
    const rangeHi = lastAddress(range) - subnet.base;
    this.lo = rangeLo > first ? rangeLo : first;
    this.hi = rangeHi < last ? rangeHi : last;
    this.next = this.lo;
  }

  /** A static address (anywhere usable in the subnet) or the next free one of the range; `address/prefix`. */
  take(owner: string, wanted?: string): string {
    let offset: bigint | undefined;
    if (wanted !== undefined) {
      offset = parseAddress(wanted, 'requested address').value - this.subnet.base;
      const reason = unusableReason(this.subnet, offset);
      if (reason) throw new InvalidAddressError(wanted, `requested address cannot be assigned: ${reason}`);
    } else {
      const size = this.hi - this.lo + 1n;
      for (let i = 0n; i < size && offset === undefined; i++) {
        const candidate = this.lo + ((this.next - this.lo + i) % size);
        if (!this.held.has(candidate)) offset = candidate;
      }
      if (offset === undefined) throw new NoAvailableIpError(this.id, this.subnet.cidr);
      this.next = offset + 1n > this.hi ? this.lo : offset + 1n;
    }
    const address = formatAddress(this.subnet.base + offset, this.subnet.family);
    const holder = this.held.get(offset);
    // The same owner asking again gets what it holds (the IPAM's allocateStatic).
    if (holder && holder !== owner) throw new AddressInUseError(address, this.id, holder);
    this.held.set(offset, owner);
    return `${address}/${this.subnet.prefixLength}`;
  }

  release(owner: string): void {
    for (const [offset, holder] of this.held) if (holder === owner) this.held.delete(offset);
  }
}

export class FakeIpam {
  private readonly pools = new Map<string, FakePool>();

  pool(id: string): FakePool | undefined {
    return this.pools.get(id);
  }

  /** A network's pools, with its gateway and aux addresses held by owner: all of them, or none. */
  addPools(owner: string, configs: PoolConfig[]): { poolIds: string[]; config: Network['ipam']['config'] } {
    const existing = [...this.pools.values()].map((p) => p.subnet);
    const pools: FakePool[] = [];
    const config = configs.map((c) => {
      // Without a subnet, an IPv4 one from the default pools, as the IPAM carves it.
      const subnet = c.subnet
        ? parseSubnet(c.subnet)
        : pickDefaultSubnet(DEFAULT_POOLS.local ?? [], 4, existing);
      if (!subnet) throw new NoAvailablePoolError('local', 4, 'every default pool is taken');
      const clash = existing.find((e) => overlaps(e, subnet));
      if (clash) throw new PoolOverlapError(subnet.cidr, clash.cidr, 'local');
      existing.push(subnet);
      const pool = new FakePool(subnet, c.ipRange);
      pools.push(pool);
      const gateway = pool.take(owner, c.gateway).split('/')[0] as string;
      for (const address of Object.values(c.auxAddresses ?? {})) pool.take(owner, address);
      return { ...c, subnet: subnet.cidr, gateway };
    });
    for (const pool of pools) this.pools.set(pool.id, pool);
    return { poolIds: pools.map((p) => p.id), config };
  }

  removePools(poolIds: readonly string[]): void {
    for (const id of poolIds) this.pools.delete(id);
  }

  /**
   * An endpoint's addresses, one per family as the controller gives them
   * (endpoint-addresses.ts): the asked one from the pool that holds it,
   * else the next free of the first pool with room. All, or none.
   */
  addresses(
    network: Network,
    owner: string,
    wanted: { ipv4?: string; ipv6?: string },
  ): { ipv4?: string; ipv6?: string } {
    const out: { ipv4?: string; ipv6?: string } = {};
    const taken: FakePool[] = [];
    try {
      for (const family of ['ipv4', 'ipv6'] as const) {
        const pools = network.ipam.poolIds
          .map((id) => this.pools.get(id) as FakePool)
          .filter((p) => (p.subnet.family === 4) === (family === 'ipv4'));
        const address = wanted[family];
        if (address && !pools.length)
          throw new Errors.InvalidRequest(
            `network ${network.name} has no IPv${family === 'ipv4' ? 4 : 6} subnet for ${address}`,
          );
        const candidates = address ? pools.filter((p) => matchCidr(address, p.subnet.cidr)) : pools;
        if (address && !candidates.length)
          throw new Errors.AddressOutsidePool(address, pools.map((p) => p.subnet.cidr).join(', '));
        for (const [i, pool] of candidates.entries()) {
          try {
            out[family] = pool.take(owner, address);
            taken.push(pool);
            break;
          } catch (err) {
            if (!(err instanceof NoAvailableIpError) || i === candidates.length - 1) throw err;
          }
        }
      }
    } catch (err) {
      for (const pool of taken) pool.release(owner);
      throw err;
    }
    return out;
  }

  release(network: Network | undefined, owner: string): void {
    for (const id of network?.ipam.poolIds ?? []) this.pools.get(id)?.release(owner);
  }
}
