/**
 * check and repair: what of a network's kernel side is missing, and putting
 * it back, without the rest of gc. A CNI CHECK asks "is this attachment
 * still as ADD left it" (SPEC.md "CHECK": interfaces, addresses, routes,
 * and firewall rules the plugin made); `netctl repair` answers a CHECK
 * that found the bridge or the rules gone. The network's own part is the
 * driver's `missing` (the same question gc's restore step asks); the
 * sandbox's part — its interface, addresses and route — is checked here,
 * through a netlink handle opened in the sandbox's namespace.
 */
import { type Driver, hasReconciler } from '../core/driver.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';
import { addrList, LinkNotFoundError, linkByName, Netlink, routeList } from '../kernel/index.js';
import { networkOwner } from '../owners.js';
import { staleReason } from '../sandbox/identity.js';
import type { CheckReport, GcAction } from './api.js';
import { defaultRouteOwner } from './default-route.js';
import type { State } from './state.js';

/** What check and repair need of the controller (controller.ts passes itself). */
export interface Checkable {
  readonly state: State;
  readonly drivers: ReadonlyMap<string, Driver>;
  findNetwork(ref: string): Promise<Network>;
  findSandbox(ref: string): Promise<Sandbox>;
}

export async function checkNetwork(
  controller: Checkable,
  networkRef: string,
  sandboxRef?: string,
): Promise<CheckReport> {
  const network = await controller.findNetwork(networkRef);
  const onNetwork = (await controller.state.endpoints()).filter((e) => e.networkId === network.id);
  if (sandboxRef === undefined) {
    return { network: network.name, problems: await networkProblems(controller, network, onNetwork) };
  }
  const sandbox = await controller.findSandbox(sandboxRef);
  const endpoint = onNetwork.find((e) => e.sandboxId === sandbox.id);
  if (!endpoint) throw new Errors.EndpointNotFound(`${sandbox.name} on ${network.name}`);
  // Only this endpoint's part of the network: another container's detached
  // veth is not this attachment's problem.
  return {
    network: network.name,
    problems: await networkProblems(controller, network, [endpoint]),
    sandbox: sandbox.name,
    sandboxProblems: await sandboxProblems(controller, sandbox, endpoint),
  };
}

async function networkProblems(controller: Checkable, network: Network, endpoints: Endpoint[]) {
  const driver = controller.drivers.get(network.driver);
  if (!driver || !hasReconciler(driver) || !driver.missing) return [];
  return driver.missing(network, endpoints);
}

/** The endpoint's interface inside the sandbox, with its addresses and (if it gave one) the default route. */
async function sandboxProblems(
  controller: Checkable,
  sandbox: Sandbox,
  endpoint: Endpoint,
): Promise<string[]> {
  const stale = staleReason(sandbox);
  if (stale) return [`the sandbox's namespace: ${stale}`];
  const ifname = endpoint.ifname;
  // Endpoints recorded before the interface name was, and drivers that plug nothing in.
  if (!ifname || !endpoint.driverData.hostIfname) return [];
  // Its endpoints in the order they joined, and their networks: who owns the default route.
  const others = (await controller.state.sandboxEndpoints(sandbox)).filter((e) => e.ifname);
  const networks = new Map<string, Network>();
  for (const e of others) {
    const n = await controller.state.network(e.networkId);
    if (n) networks.set(n.id, n);
  }
  const h = Netlink.open(sandbox.key);
  try {
    let link: Awaited<ReturnType<typeof linkByName>>;
    try {
      link = await linkByName(h, ifname);
    } catch (err) {
      if (err instanceof LinkNotFoundError) return [`interface ${ifname} in netns ${sandbox.key}`];
      throw err;
    }
    const problems: string[] = [];
    if (!link.up) problems.push(`interface ${ifname} in netns ${sandbox.key} is down`);
    const present = new Set((await addrList(h, { link })).map((a) => a.cidr));
    for (const cidr of [endpoint.ipv4, endpoint.ipv6]) {
      if (cidr && !present.has(cidr)) problems.push(`address ${cidr} on ${ifname}`);
    }
    // The default route of each family goes through the sandbox's first
    // endpoint that can give one (default-route.ts), as in Docker.
    for (const family of [4, 6] as const) {
      const owner = defaultRouteOwner(others, networks, family);
      if (owner?.endpoint.id !== endpoint.id) continue;
      const routes = await routeList(h, { family, link });
      if (!routes.some((r) => r.dst === 'default' && r.gateway === owner.gateway))
        problems.push(`default route via ${owner.gateway} on ${ifname}`);
    }
    return problems;
  } finally {
    h.close();
  }
}

/** Restore the kernel side of one network (or of each) where check finds something missing. */
export async function repairNetworks(controller: Checkable, networkRef?: string): Promise<GcAction[]> {
  const networks = networkRef
    ? [await controller.findNetwork(networkRef)]
    : await controller.state.networks();
  const endpoints = await controller.state.endpoints();
  const actions: GcAction[] = [];
  for (const network of networks) {
    const driver = controller.drivers.get(network.driver);
    if (!driver || !hasReconciler(driver) || !driver.missing || !driver.restoreNetwork) continue;
    const onNetwork = endpoints.filter((e) => e.networkId === network.id);
    const missing = await driver.missing(network, onNetwork);
    if (!missing.length) continue;
    const action: GcAction = {
      kind: 'network',
      name: network.name,
      owner: networkOwner(network.id),
      action: 'restore',
      reason: `missing: ${missing.join(', ')}`,
    };
    // One network that cannot be put back (its bridge's name taken by someone
    // else's link) does not keep the others from being repaired.
    try {
      await driver.restoreNetwork(network, onNetwork);
    } catch (err) {
      action.failed = (err as Error).message;
    }
    actions.push(action);
  }
  return actions;
}
