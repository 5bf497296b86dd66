/**
 * Which of a sandbox's endpoints gives it its default route, per family:
 * the first (in the order they joined, the sandbox record's) whose network
 * is not internal and has a gateway of that family — Docker's gateway
 * endpoint. When it leaves, the next one takes over; when two join at once,
 * both agree on the first once both are recorded.
 */
import { type Family, parsePrefix } from '../address.js';
import type { Endpoint, Network } from '../core/model.js';

export interface RouteOwner {
  endpoint: Endpoint;
  gateway: string;
}

export function defaultRouteOwner(
  endpoints: readonly Endpoint[],
  networks: ReadonlyMap<string, Network>,
  family: Family,
): RouteOwner | undefined {
  for (const endpoint of endpoints) {
    const network = networks.get(endpoint.networkId);
    if (!network || network.internal) continue;
    const address = family === 4 ? endpoint.ipv4 : endpoint.ipv6;
    if (!address) continue;
    const pool = network.ipam.config.find((c) => parsePrefix(c.subnet).family === family);
    if (pool) return { endpoint, gateway: pool.gateway };
  }
  return undefined;
}
