/**
 * The sandbox side of an endpoint (libnetwork osl): give the interface the
 * driver plugged in its addresses and routes, then bring it up. Runs over a
 * Netlink handle opened in the sandbox's namespace.
 */
import {
  addrReplace,
  disableIpv6,
  linkByName,
  linkSetUp,
  type Netlink,
  routeReplace,
  sysctlSet,
} from '../kernel/index.js';

export interface InterfaceConfig {
  ifname: string;
  /** CIDRs, e.g. 10.1.0.2/24. */
  ipv4?: string;
  ipv6?: string;
  gateway4?: string;
  gateway6?: string;
  routes?: { destination: string; nextHop?: string }[];
  /** Send a gratuitous ARP as the link comes up. */
  announce?: boolean;
}

/**
 * Configure ifname in the sandbox and bring it up. With `announce`,
 * arp_notify makes the kernel send a gratuitous ARP as the link comes up, so
 * peers that cached the previous owner of a reused address learn the new
 * MAC at once; it floods every port of the bridge, so only endpoints whose
 * MAC does not follow from their address ask for it. Without
 * an IPv6 address IPv6 is turned off on it, as Docker (26+) does on IPv4-only
 * networks: no link-local chatter flooded to every peer on the bridge.
 */
export async function configureInterface(h: Netlink, config: InterfaceConfig): Promise<void> {
  const link = await linkByName(h, config.ifname);
  if (config.announce) sysctlSet(`net/ipv4/conf/${config.ifname}/arp_notify`, '1', h.netns);
  if (!config.ipv6) disableIpv6(config.ifname, h.netns);
  if (config.ipv4) await addrReplace(h, link, config.ipv4);
  // No DAD: the address is ours by IPAM, and DAD would delay it ~2 s.
  if (config.ipv6) await addrReplace(h, link, config.ipv6, { noDad: true });
  await linkSetUp(h, link);
  if (config.gateway4) await routeReplace(h, { dst: 'default', gateway: config.gateway4, link });
  if (config.gateway6) await routeReplace(h, { dst: 'default', gateway: config.gateway6, link });
  for (const route of config.routes ?? []) {
    await routeReplace(h, {
      dst: route.destination,
      link,
      ...(route.nextHop ? { gateway: route.nextHop } : {}),
    });
  }
}
