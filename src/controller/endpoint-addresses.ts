/**
 * An endpoint's addresses: given by its caller or reserved from its
 * network's pools, and given back when it goes (or when its making is undone).
 */
import { matchCidr, parsePrefix } from '../address.js';
import { type IpamDriver, type Reservation, releasesByOwner } from '../core/ipam.js';
import type { Endpoint, Network } from '../core/model.js';
import { Errors, isCode } from '../errors.js';
import { macFromIpv4, randomMac } from '../kernel/index.js';
import { endpointOwner } from '../owners.js';

/**
 * A new endpoint's addresses: given by the caller (with the prefix length
 * of their subnet), or reserved from the network's pools for owner — the
 * ones asked for, else the next free. What is reserved is pushed on
 * `reservations` as it is, for the caller's undo.
 */
export async function endpointAddresses(
  ipam: IpamDriver,
  network: Network,
  owner: string,
  req: { addresses: 'given' | 'reserve'; ipv4?: string | undefined; ipv6?: string | undefined },
  reservations: Reservation[],
): Promise<{ ipv4?: string; ipv6?: string }> {
  const addresses: { ipv4?: string; ipv6?: string } = {};
  if (req.addresses === 'given') {
    for (const [family, cidr] of [
      [4, req.ipv4],
      [6, req.ipv6],
    ] as const) {
      if (!cidr) continue;
      const { ip, prefixLength } = parsePrefix(cidr);
      const pool = network.ipam.config.find(
        (c) => matchCidr(ip, c.subnet) && parsePrefix(c.subnet).prefixLength === prefixLength,
      );
      if (!pool)
        throw new Errors.AddressOutsidePool(cidr, network.ipam.config.map((c) => c.subnet).join(', '));
      if (family === 4) addresses.ipv4 = cidr;
      else addresses.ipv6 = cidr;
    }
    return addresses;
  }
  if (network.ipam.external && network.ipam.poolIds.length === 0 && network.ipam.config.length) {
    throw new Errors.DockerNetwork(
      network.name,
      network.dockerId?.slice(0, 12) ?? '?',
      `its addresses come from Docker's built-in IPAM: connect containers through Docker, or create it with --ipam-driver netctl`,
    );
  }
  for (const family of [4, 6] as const) {
    const given = family === 4 ? req.ipv4 : req.ipv6;
    const wanted = given?.includes('/') ? parsePrefix(given).ip : given;
    const pools = poolsOf(network, family);
    if (wanted && !pools.length)
      throw new Errors.InvalidRequest(`network ${network.name} has no IPv${family} subnet for ${wanted}`);
    const r = await reserveIn(ipam, pools, owner, wanted);
    if (!r) continue;
    reservations.push(r);
    if (family === 4) addresses.ipv4 = r.address;
    else addresses.ipv6 = r.address;
  }
  return addresses;
}

/** The network's pools of one family, in order, with their ids. */
function poolsOf(network: Network, family: 4 | 6): { subnet: string; poolId: string }[] {
  return network.ipam.config.flatMap((c, i) =>
    parsePrefix(c.subnet).family === family
      ? [{ subnet: c.subnet, poolId: network.ipam.poolIds[i] as string }]
      : [],
  );
}

/**
 * One address of a family, as Docker gives it (libnetwork endpoint.go
 * assignAddressVersion): the wanted one from the first pool whose subnet
 * holds it, else the next free one of the first pool with room. Undefined
 * when the network has no pool of the family.
 */
async function reserveIn(
  ipam: IpamDriver,
  pools: { subnet: string; poolId: string }[],
  owner: string,
  wanted: string | undefined,
): Promise<Reservation | undefined> {
  if (wanted) {
    const pool = pools.find((p) => matchCidr(wanted, p.subnet));
    if (!pool) throw new Errors.AddressOutsidePool(wanted, pools.map((p) => p.subnet).join(', '));
    return ipam.requestAddress({ poolId: pool.poolId, address: wanted, owner });
  }
  for (const [i, pool] of pools.entries()) {
    try {
      return await ipam.requestAddress({ poolId: pool.poolId, owner });
    } catch (err) {
      if (!isCode(err, Errors.NoAvailableAddress) || i === pools.length - 1) throw err;
    }
  }
  return undefined; // no pool of the family
}

/**
 * Give back what an undone operation reserved for owner: every address
 * it holds, found by owner where the IPAM can (so one whose reservation's
 * answer was lost goes too), else the reservations known.
 */
export async function releaseReserved(
  ipam: IpamDriver,
  owner: string,
  reservations: Reservation[],
): Promise<void> {
  if (releasesByOwner(ipam)) {
    await ipam.releaseOwner(owner);
    return;
  }
  for (const r of reservations) await ipam.releaseAddress(r.poolId, r.address);
}

/** Every reservation the endpoint holds (one per pool of the network). */
export async function releaseEndpointAddresses(
  ipam: IpamDriver,
  network: Network,
  endpoint: Endpoint,
): Promise<void> {
  const owner = endpointOwner(endpoint.id);
  // Addresses the caller gave are held by its IPAM (Docker's): not ours to release.
  if (endpoint.externalAddresses) return;
  if (releasesByOwner(ipam)) {
    await ipam.releaseOwner(owner);
    return;
  }
  for (const [i, poolId] of network.ipam.poolIds.entries()) {
    const address = i === 0 ? endpoint.ipv4 : endpoint.ipv6;
    for (const r of await ipam.listReservations(poolId)) {
      if (r.owner === owner || r.address === address) await ipam.releaseAddress(poolId, r.address);
    }
  }
}

/** The MAC asked for, else one that follows the IPv4 address (macFromIpv4), else a random one. */
export function endpointMac(asked: string | undefined, ipv4: string | undefined): string {
  return asked?.toLowerCase() ?? (ipv4 ? macFromIpv4(ipv4) : randomMac());
}
