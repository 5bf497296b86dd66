/**
 * The kernel side of an endpoint in its sandbox: the driver's join and
 * leave, the interface configured in place, the sandbox's default route.
 */
import type { Family } from '../address.js';
import { type Driver, hasExternalConnectivity } from '../core/driver.js';
import { EndpointInfo, JoinInfo } from '../core/info.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';
import { isUnusableNetns, macFromIpv4, Netlink, routeReplace } from '../kernel/index.js';
import { log } from '../log.js';
import { isStale } from '../sandbox/identity.js';
import { configureInterface } from '../sandbox/iface.js';
import { type ControllerContext, NO_SANDBOX, sandboxInfo } from './context.js';
import { defaultRouteOwner } from './default-route.js';

/** The driver's side of a new endpoint (its MAC, its data); the record is the caller's to write. */
export async function makeEndpoint(network: Network, driver: Driver, proposed: Endpoint): Promise<Endpoint> {
  const info = new EndpointInfo(proposed, proposed.mac);
  await driver.createEndpoint(network, info);
  return { ...proposed, mac: info.mac, driverData: info.driverData };
}

/** Plug an endpoint into a sandbox; in place, configure its interface there too. */
export async function plug(
  network: Network,
  driver: Driver,
  endpoint: Endpoint,
  sandbox: Sandbox,
  ifname: string,
  placement: 'in-place' | 'host-side',
  routed: ReadonlySet<Family>,
): Promise<JoinInfo> {
  const join = new JoinInfo();
  try {
    await driver.join(network, endpoint, { ...sandboxInfo(sandbox), ifname, placement }, join);
    if (placement === 'in-place' && join.plugged) {
      await configureSandbox(sandbox.key, ifname, endpoint, join, routed);
    }
  } catch (err) {
    // Its namespace went meanwhile (the sandbox is being removed): the sandbox is gone.
    if (isUnusableNetns(err)) throw new Errors.SandboxNotFound(sandbox.name);
    throw err;
  }
  return join;
}

async function configureSandbox(
  key: string,
  ifname: string,
  endpoint: Endpoint,
  join: JoinInfo,
  routed: ReadonlySet<Family>,
): Promise<void> {
  const h = Netlink.open(key);
  try {
    // The first network with a gateway gives the sandbox its default route, as in Docker (default-route.ts).
    await configureInterface(h, {
      ifname,
      ...(endpoint.ipv4 ? { ipv4: endpoint.ipv4 } : {}),
      ...(endpoint.ipv6 ? { ipv6: endpoint.ipv6 } : {}),
      // A MAC that follows the address needs no announcing (macFromIpv4).
      announce: !endpoint.ipv4 || endpoint.mac !== macFromIpv4(endpoint.ipv4),
      ...(join.gateway4 && !routed.has(4) ? { gateway4: join.gateway4 } : {}),
      ...(join.gateway6 && !routed.has(6) ? { gateway6: join.gateway6 } : {}),
      routes: join.staticRoutes,
    });
  } finally {
    h.close();
  }
}

/** The families a sandbox's endpoints give it a default route in already. */
export async function routedFamilies(
  ctx: ControllerContext,
  endpoints: readonly Endpoint[],
): Promise<Set<Family>> {
  const routed = new Set<Family>();
  if (!endpoints.length) return routed;
  const networks = await ctx.networksOf(endpoints);
  for (const family of [4, 6] as const)
    if (defaultRouteOwner(endpoints, networks, family)) routed.add(family);
  return routed;
}

/**
 * Point a sandbox's default routes through the endpoints that own them
 * (default-route.ts), after a change of its endpoints: the next one when
 * the owner left, the first recorded when two joined at once. After a
 * connect (`joined`), nothing when the owners are as it found them: it
 * owns the families no other endpoint routed (`routed`), and only those.
 * After a commit: a failure is logged, not thrown.
 */
export async function settleDefaultRoute(
  ctx: ControllerContext,
  sandboxId: string,
  joined?: { id: string; routed: ReadonlySet<Family> },
): Promise<void> {
  try {
    const sandbox = await ctx.state.sandbox(sandboxId);
    if (!sandbox || sandbox.deleting || sandbox.netnsOf || isStale(sandbox)) return;
    // Only interfaces netctl made in place (Docker routes the ones it moves itself).
    const endpoints = (await ctx.state.sandboxEndpoints(sandbox)).filter((e) => e.ifname);
    if (!endpoints.length) return;
    const networks = await ctx.networksOf(endpoints);
    const owners = ([4, 6] as const).flatMap((family) => {
      const owner = defaultRouteOwner(endpoints, networks, family);
      return owner ? [{ family, ...owner }] : [];
    });
    if (joined && owners.every((o) => (o.endpoint.id === joined.id) === !joined.routed.has(o.family))) return;
    const h = Netlink.open(sandbox.key);
    try {
      for (const o of owners) {
        await routeReplace(h, { dst: 'default', gateway: o.gateway, link: o.endpoint.ifname as string });
      }
    } finally {
      h.close();
    }
  } catch (err) {
    log.warn({ err, sandbox: sandboxId }, "could not settle the sandbox's default route");
  }
}

/** Kernel side of an endpoint: ports, link, driver state. Idempotent. */
export async function unplug(ctx: ControllerContext, network: Network, endpoint: Endpoint): Promise<void> {
  const driver = ctx.driver(network.driver);
  if (endpoint.portMappings.length && hasExternalConnectivity(driver)) {
    await driver.revokeExternalConnectivity(network, endpoint);
  }
  const sandbox = endpoint.sandboxId ? await ctx.state.sandbox(endpoint.sandboxId) : undefined;
  await driver.leave(network, endpoint, sandbox ? sandboxInfo(sandbox) : NO_SANDBOX);
  await driver.deleteEndpoint(network, endpoint);
}
