/**
 * An attachment as a CNI result (SPEC.md "Success"), and CHECK's reading
 * of the prevResult a runtime gives back.
 */
import type { z } from 'zod';
import { parsePrefix } from '../address.js';
import type { Endpoint, Network } from '../core/model.js';
import type { CmdArgs } from './skel.js';
import {
  type baseConfigSchema,
  CURRENT_VERSION,
  type Dns,
  type Interface,
  type IpConfig,
  type Result,
  type Route,
  upconvertResult,
} from './types.js';

const DEFAULT_ROUTE: Record<4 | 6, string> = { 4: '0.0.0.0/0', 6: '::/0' };

/** The attachment as a 1.1.0 result: bridge, host veth, container interface; its addresses, routes, DNS. */
export function resultOf(
  network: Network,
  endpoint: Endpoint,
  args: { ifname: string; netns: string },
  options: { defaultRoute: boolean; dns?: Dns | undefined },
): Result {
  const interfaces: Interface[] = [];
  if (network.driverData.bridge)
    interfaces.push({
      name: network.driverData.bridge,
      ...(network.driverData.mac ? { mac: network.driverData.mac } : {}),
    });
  if (endpoint.driverData.hostIfname)
    interfaces.push({
      name: endpoint.driverData.hostIfname,
      ...(endpoint.driverData.hostMac ? { mac: endpoint.driverData.hostMac } : {}),
    });
  interfaces.push({ name: args.ifname, mac: endpoint.mac, sandbox: args.netns });
  const container = interfaces.length - 1;
  const ips: IpConfig[] = [];
  const routes: Route[] = [];
  for (const address of [endpoint.ipv4, endpoint.ipv6]) {
    if (!address) continue;
    const family = parsePrefix(address).family;
    const pool = network.ipam.config.find((c) => parsePrefix(c.subnet).family === family);
    ips.push({ address, ...(pool ? { gateway: pool.gateway } : {}), interface: container });
    if (pool && options.defaultRoute && !network.internal)
      routes.push({ dst: DEFAULT_ROUTE[family], gw: pool.gateway });
  }
  const result: Result = { cniVersion: CURRENT_VERSION, interfaces, ips };
  if (routes.length) result.routes = routes;
  if (options.dns && Object.keys(options.dns).length) result.dns = options.dns;
  return result;
}

/** The configuration's prevResult, in the newest version's shape. */
export function prevResultOf(
  conf: Pick<z.output<typeof baseConfigSchema>, 'prevResult'>,
): Result | undefined {
  return conf.prevResult ? upconvertResult(conf.prevResult) : undefined;
}

/** CHECK's reading of prevResult: our container interface, with the endpoint's addresses on it. */
export function prevResultProblems(prev: Result, endpoint: Endpoint, args: CmdArgs): string[] {
  const index = (prev.interfaces ?? []).findIndex((i) => i.name === args.ifname && i.sandbox === args.netns);
  if (index < 0) return [`prevResult lists no interface ${args.ifname} in ${args.netns}`];
  const listed = new Set((prev.ips ?? []).filter((ip) => ip.interface === index).map((ip) => ip.address));
  return [endpoint.ipv4, endpoint.ipv6]
    .filter((a): a is string => a !== undefined && !listed.has(a))
    .map((a) => `prevResult lacks address ${a}`);
}
