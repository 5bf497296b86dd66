/**
 * Docker's NetworkDriver protocol (libnetwork drivers/remote) over the
 * controller, for one netctl driver (`netctl-bridge` → bridge). A thin
 * adapter: one function per call, each Docker's request → the
 * controller's call → Docker's answer; the table at the end serves them.
 *
 * Docker's IPAM driver has already reserved every address when these calls
 * come (netctl's own through the IpamDriver socket, or Docker's built-in):
 * networks and endpoints are made with their addresses given, never
 * requested again. Ids are Docker's: a network Docker creates has Docker's
 * NetworkID as its netctl id, an endpoint Docker's EndpointID, so `netctl
 * network ls` and `docker network ls` show the same ids. Docker sends
 * neither the network's nor the container's name; see docs/docker.md for
 * how they are named.
 *
 * Deletes are idempotent: after a restart dockerd retries Leave and
 * DeleteEndpoint/DeleteNetwork for things that may be gone already.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { Controller } from '../../controller/controller.js';
import type { JoinInfo } from '../../core/info.js';
import type { Network } from '../../core/model.js';
import { Errors } from '../../errors.js';
import { KeyedLanes } from '../../serial.js';
import { ignoreNotFound } from '../errors.js';
import { call, type DockerCall, registerCalls } from './calls.js';
import { adopt, dockerAddressing, dockerNetworkName, driverOptions } from './networks.js';
import { portBindings, portRequests } from './ports.js';
import {
  allocateNetworkSchema,
  createEndpointSchema,
  createNetworkSchema,
  discoverySchema,
  ENABLE_IPV6,
  EXPOSED_PORTS,
  endpointSchema,
  externalConnectivitySchema,
  GENERIC_OPTIONS,
  INTERNAL,
  joinSchema,
  MAC_ADDRESS,
  NETCTL_NAME,
  networkSchema,
  PORT_MAP,
} from './protocol.js';
import { dockerSandbox, dropSandboxIfEmpty } from './sandboxes.js';
import { sweepAfterDockerd } from './sweep.js';

export interface NetworkDriverOptions {
  controller: Controller;
  /** The netctl driver behind this socket: `bridge` for netctl-bridge. */
  driver: string;
}

/** What every call of one network driver's socket shares. */
interface NetworkDriver extends NetworkDriverOptions {
  /** One job at a time per container: its joins and leaves make and drop its sandbox. */
  sandboxLanes: KeyedLanes;
  /** The sweep the last Plugin.Activate started; calls that change state wait for it. */
  sweeping: Promise<void>;
  log: FastifyBaseLogger;
}

/** Calls dockerd makes while it starts: answered from local state, never waiting. */
const ANSWER_AT_ONCE = new Set(['/Plugin.Activate', '/NetworkDriver.GetCapabilities']);

/**
 * Activate is when a restarted dockerd first needs the plugin: the moment
 * to drop what a crashed one left (sweep.ts). In the background: Activate
 * must answer at once (a plugin that hangs there hangs dockerd).
 */
async function activate(d: NetworkDriver): Promise<object> {
  d.sweeping = d.sweeping
    .then(() => sweepAfterDockerd(d.controller, d.sandboxLanes))
    .catch((err: unknown) => d.log.error({ err }, 'sweeping what a crashed dockerd left failed'));
  return { Implements: ['NetworkDriver'] };
}

async function getCapabilities({ controller, driver }: NetworkDriver): Promise<object> {
  const scope = controller.drivers.get(driver)?.capability().dataScope ?? 'local';
  return { Scope: scope, ConnectivityScope: scope };
}

/** Docker's network NetworkID: made with the addresses Docker's IPAM gave, or a netctl network adopted. */
async function createNetwork(
  { controller: c, driver }: NetworkDriver,
  { NetworkID, Options, IPv4Data, IPv6Data }: z.output<typeof createNetworkSchema>,
): Promise<object> {
  if (await c.findDockerNetwork(NetworkID)) return {}; // asked again
  const generic = Options[GENERIC_OPTIONS];
  const name = generic[NETCTL_NAME];
  const addressing = await dockerAddressing(c, NetworkID, [...IPv4Data, ...IPv6Data]);
  const existing = name ? await c.state.networkIdByName(name) : undefined;
  if (existing) {
    await adopt(c, existing, NetworkID, driver, addressing);
    return {};
  }
  const request = {
    name: name ?? dockerNetworkName(NetworkID),
    driver,
    enableIPv6: Options[ENABLE_IPV6] ?? false,
    internal: Options[INTERNAL] ?? false,
    options: driverOptions(generic),
  };
  await c.createExternalNetwork(request, addressing);
  return {};
}

/**
 * dockerd deletes a network only once it has no endpoint on it: any of
 * Docker's still here are stale (a dockerd that died, or lost its state).
 * A netctl sandbox's endpoint still refuses the delete (NETCTL_NETWORK_IN_USE).
 */
async function deleteNetwork(
  { controller: c }: NetworkDriver,
  { NetworkID }: z.output<typeof networkSchema>,
): Promise<object> {
  const net = await c.findDockerNetwork(NetworkID);
  if (!net) return {};
  for (const endpoint of (await c.inspectNetwork(net.id)).endpoints) {
    if (!endpoint.externalAddresses) continue;
    await c.removeEndpoint(endpoint);
    if (endpoint.sandboxId) await dropSandboxIfEmpty(c, endpoint.sandboxId);
  }
  await c.deleteDockerNetwork(NetworkID);
  return {};
}

/** Docker network dockerId, which must be in netctl's state. */
async function dockerNetwork(c: Controller, dockerId: string): Promise<Network> {
  const found = await c.findDockerNetwork(dockerId);
  if (!found)
    throw new Errors.NetworkNotFound(
      `${dockerId.slice(0, 12)} (not in netctl's state: was it made with another state store?)`,
    );
  return found;
}

async function createEndpoint(
  { controller: c }: NetworkDriver,
  { NetworkID, EndpointID, Interface }: z.output<typeof createEndpointSchema>,
): Promise<object> {
  const net = await dockerNetwork(c, NetworkID);
  const endpoint = await c.createEndpoint({
    network: net.id,
    id: EndpointID,
    addresses: 'given',
    ...(Interface?.Address ? { ipv4: Interface.Address } : {}),
    ...(Interface?.AddressIPv6 ? { ipv6: Interface.AddressIPv6 } : {}),
    ...(Interface?.MacAddress ? { mac: Interface.MacAddress } : {}),
  });
  // Docker refuses an answer that changes what it gave: the MAC only when it gave none.
  return Interface?.MacAddress ? {} : { Interface: { MacAddress: endpoint.mac } };
}

async function endpointOperInfo(
  { controller: c }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  const endpoint = await c.state.endpoint(EndpointID);
  if (!endpoint) return { Value: {} };
  const bindings = portBindings(endpoint);
  return {
    Value: {
      [MAC_ADDRESS]: endpoint.mac,
      [PORT_MAP]: bindings,
      [EXPOSED_PORTS]: bindings.map((b) => ({ Proto: b.Proto, Port: b.Port })),
    },
  };
}

async function deleteEndpoint(
  { controller: c }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  const endpoint = await c.state.endpoint(EndpointID);
  if (!endpoint) return {};
  const sandboxId = endpoint.sandboxId;
  await c.removeEndpoint(endpoint);
  if (sandboxId) await dropSandboxIfEmpty(c, sandboxId);
  return {};
}

/** A join as Docker's JoinResponse. */
function joinResponse(join: JoinInfo): object {
  return {
    InterfaceName: { SrcName: join.srcName, DstPrefix: join.dstPrefix ?? 'eth' },
    ...(join.gateway4 ? { Gateway: join.gateway4 } : {}),
    ...(join.gateway6 ? { GatewayIPv6: join.gateway6 } : {}),
    StaticRoutes: join.staticRoutes.map((r) =>
      r.nextHop
        ? { Destination: r.destination, RouteType: 0, NextHop: r.nextHop }
        : { Destination: r.destination, RouteType: 1 },
    ),
    DisableGatewayService: join.disableGatewayService,
  };
}

/** Join the endpoint to the container's sandbox, made on its first join. */
async function join(
  { controller: c, sandboxLanes }: NetworkDriver,
  { EndpointID, SandboxKey }: z.output<typeof joinSchema>,
): Promise<object> {
  return sandboxLanes.run(SandboxKey, async () => {
    const sandbox = await dockerSandbox(c, SandboxKey);
    try {
      const { join } = await c.joinEndpoint(EndpointID, { sandbox: sandbox.id, placement: 'host-side' });
      return joinResponse(join);
    } catch (err) {
      await dropSandboxIfEmpty(c, sandbox.id);
      throw err;
    }
  });
}

/** Leave the container's sandbox, which goes with its last endpoint. */
async function leave(
  { controller: c, sandboxLanes }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  const endpoint = await c.state.endpoint(EndpointID);
  const sandboxId = endpoint?.sandboxId;
  if (!endpoint || !sandboxId) return {};
  const sandbox = await c.state.sandbox(sandboxId);
  return sandboxLanes.run(sandbox?.key ?? sandboxId, async () => {
    await ignoreNotFound(c.leaveEndpoint(endpoint.id));
    await dropSandboxIfEmpty(c, sandboxId);
    return {};
  });
}

async function programExternalConnectivity(
  { controller: c }: NetworkDriver,
  { EndpointID, Options }: z.output<typeof externalConnectivitySchema>,
): Promise<object> {
  const requests = portRequests(Options[PORT_MAP]);
  const endpoint = await c.findEndpoint(EndpointID);
  if (requests.length || endpoint.portMappings.length) await c.publishPorts(EndpointID, requests);
  return {};
}

async function revokeExternalConnectivity(
  { controller: c }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  await ignoreNotFound(c.unpublishPorts(EndpointID));
  return {};
}

/** Swarm only: a local-scope driver has nothing to allocate across the cluster. */
const allocateNetwork = async (): Promise<object> => ({ Options: {} });

/** Swarm's FreeNetwork and node discovery: a local driver has nothing to free or learn. */
const nothingToDo = async (): Promise<object> => ({});

/** Docker's NetworkDriver calls (remote/api/api.go) and what answers each. */
const NETWORK_DRIVER_CALLS: DockerCall<NetworkDriver>[] = [
  call('/Plugin.Activate', null, activate),
  call('/NetworkDriver.GetCapabilities', null, getCapabilities),
  call('/NetworkDriver.CreateNetwork', createNetworkSchema, createNetwork),
  call('/NetworkDriver.DeleteNetwork', networkSchema, deleteNetwork),
  call('/NetworkDriver.AllocateNetwork', allocateNetworkSchema, allocateNetwork),
  call('/NetworkDriver.FreeNetwork', networkSchema, nothingToDo),
  call('/NetworkDriver.CreateEndpoint', createEndpointSchema, createEndpoint),
  call('/NetworkDriver.EndpointOperInfo', endpointSchema, endpointOperInfo),
  call('/NetworkDriver.DeleteEndpoint', endpointSchema, deleteEndpoint),
  call('/NetworkDriver.Join', joinSchema, join),
  call('/NetworkDriver.Leave', endpointSchema, leave),
  call('/NetworkDriver.ProgramExternalConnectivity', externalConnectivitySchema, programExternalConnectivity),
  call('/NetworkDriver.RevokeExternalConnectivity', endpointSchema, revokeExternalConnectivity),
  call('/NetworkDriver.DiscoverNew', discoverySchema, nothingToDo),
  call('/NetworkDriver.DiscoverDelete', discoverySchema, nothingToDo),
];

export const networkDriverRoutes: FastifyPluginAsyncZod<NetworkDriverOptions> = async (app, options) => {
  const d: NetworkDriver = {
    controller: options.controller,
    driver: options.driver,
    sandboxLanes: new KeyedLanes(),
    sweeping: Promise.resolve(),
    log: app.log,
  };
  app.addHook('preHandler', async (request) => {
    if (!ANSWER_AT_ONCE.has(request.url)) await d.sweeping;
  });
  registerCalls(app, d, NETWORK_DRIVER_CALLS);
};
