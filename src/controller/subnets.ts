/**
 * Subnets that would take the host's routes are refused: a network's
 * subnet becomes a route into its bridge, so `--subnet 128.0.0.0/1` would
 * send half of the Internet there, and a subnet overlapping a route the
 * host has (its LAN, a VPN, docker0) would cut the host off from it. Docker
 * skips such subnets when it picks a default pool (netutils
 * CheckRouteOverlaps); netctl does the same for default pools and refuses
 * them when they are asked for by name.
 */
import type { z } from 'zod';
import { matchCidr, overlaps, parsePrefix, parseSubnet, type Subnet } from '../address.js';
import type { ipamPoolSchema } from '../core/schemas.js';
import { Errors } from '../errors.js';

/** A route of the host's: its destination and the device it leaves by, for messages. */
export interface HostRoute {
  dst: string;
  dev?: string;
}

/** The host's routes a subnet must not overlap (not its default routes, nor netctl's own networks'). */
export type HostRoutes = () => Promise<HostRoute[]>;

/** The broadest subnet netctl takes, per family. */
export const SHORTEST_PREFIX = { 4: 8, 6: 48 } as const;

/** Addresses that are never a network's: loopback, "this network", multicast and reserved. */
const SPECIAL_PURPOSE = ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/3', '::/127', 'ff00::/8'].map((cidr) =>
  parseSubnet(cidr),
);

/** Throws unless subnet is one a network may have next to these host routes. */
export function checkSubnet(cidr: string, routes: readonly HostRoute[]): void {
  const subnet = parseSubnet(cidr);
  const shortest = SHORTEST_PREFIX[subnet.family];
  if (subnet.prefixLength < shortest) {
    throw new Errors.SubnetTooBroad(
      subnet.cidr,
      `netctl takes IPv4 subnets of /${SHORTEST_PREFIX[4]} or longer and IPv6 of /${SHORTEST_PREFIX[6]} or longer`,
    );
  }
  const special = SPECIAL_PURPOSE.find((s) => overlaps(s, subnet));
  if (special) throw new Errors.SubnetTooBroad(subnet.cidr, `it overlaps special-purpose ${special.cidr}`);
  const route = routes.find((r) => overlaps(parseSubnet(r.dst), subnet));
  if (route)
    throw new Errors.SubnetOverlapsRoute(subnet.cidr, `${route.dst}${route.dev ? ` dev ${route.dev}` : ''}`);
}

/** The routes' destinations, for the IPAM to steer default pools around. */
export function routeSubnets(routes: readonly HostRoute[]): Subnet[] {
  return routes.map((r) => parseSubnet(r.dst));
}

/** ip is in subnet, else `error` (NETCTL_ADDRESS_OUTSIDE_POOL). */
export function checkInSubnet(
  ip: string,
  subnet: string,
  error: typeof Errors.AddressOutsidePool = Errors.AddressOutsidePool,
) {
  if (!matchCidr(ip, subnet)) throw new error(ip, subnet);
}

export type PoolConfigRequest = z.output<typeof ipamPoolSchema>;

/** A pool config is whole: gateway, range and aux addresses need a subnet and lie inside it. */
export function checkPoolConfig(c: PoolConfigRequest): void {
  if (!c.subnet) {
    if (c.gateway || c.ipRange || c.auxAddresses) {
      throw new Errors.InvalidRequest('--gateway, --ip-range and --aux-address need a --subnet');
    }
    return;
  }
  if (c.gateway) checkInSubnet(c.gateway, c.subnet, Errors.GatewayOutsideSubnet);
  if (c.ipRange) {
    const range = parsePrefix(c.ipRange);
    const subnet = parsePrefix(c.subnet);
    if (range.prefixLength < subnet.prefixLength || !matchCidr(range.ip, c.subnet)) {
      throw new Errors.InvalidRequest(`--ip-range ${c.ipRange} is not inside subnet ${c.subnet}`);
    }
  }
  for (const ip of Object.values(c.auxAddresses ?? {})) checkInSubnet(ip, c.subnet);
}
