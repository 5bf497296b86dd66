/**
 * Docker's NetworkDriver protocol (libnetwork drivers/remote) over
 * DockerNetworkApi (src/controller/docker-networks.ts, where what each
 * call does is written), for one netctl driver (`netctl-bridge` → bridge,
 * `netctl-overlay` → overlay, which adopts a netctl overlay network on
 * each host: docs/docker.md). A thin adapter: one function per call, each
 * Docker's request → the API's call → Docker's answer; the table at the
 * end serves them.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { DockerNetworkApi, DockerPoolData } from '../../controller/api.js';
import type { JoinInfo } from '../../core/info.js';
import { call, type DockerCall, registerCalls } from './calls.js';
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
  type ipamDataSchema,
  joinSchema,
  MAC_ADDRESS,
  NETCTL_NAME,
  networkSchema,
  PORT_MAP,
} from './protocol.js';

/** What every call of one network driver's socket shares. */
export interface NetworkDriver {
  docker: DockerNetworkApi;
  /** The netctl driver behind this socket: `bridge` for netctl-bridge, `overlay` for netctl-overlay. */
  driver: string;
}

/** Docker's `-o` options as the driver's: netctl's own (`netctl.*`) are not the driver's. */
const driverOptions = (generic: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(generic).filter(([k]) => !k.startsWith('netctl.')));

const poolData = (d: z.output<typeof ipamDataSchema>): DockerPoolData => ({
  addressSpace: d.AddressSpace,
  pool: d.Pool,
  ...(d.Gateway ? { gateway: d.Gateway } : {}),
  auxAddresses: d.AuxAddresses,
});

/** Answered at once (a plugin that hangs here hangs dockerd); the sweep runs behind it. */
async function activate({ docker }: NetworkDriver): Promise<object> {
  docker.activate();
  return { Implements: ['NetworkDriver'] };
}

/**
 * Scope is `local` for every driver, netctl-overlay too: a dockerd 20.10
 * without swarm (no cluster store) refuses every network of a
 * `global`-scope remote driver ("This node is not a swarm manager. Use
 * docker swarm init ..."), and local scope is what lets each host's
 * dockerd keep its own record of the network — each adopts the one netctl
 * overlay (`-o netctl.name=`), whose shared state is netctl's store.
 * ConnectivityScope says how far the endpoints reach: `global` for an
 * overlay, which dockerd takes as a multi-host network (libnetwork's
 * driverIsMultihost; `docker network inspect` still says Scope local).
 */
async function getCapabilities({ docker, driver }: NetworkDriver): Promise<object> {
  return { Scope: 'local', ConnectivityScope: docker.connectivityScope(driver) };
}

async function createNetwork(
  { docker, driver }: NetworkDriver,
  { NetworkID, Options, IPv4Data, IPv6Data }: z.output<typeof createNetworkSchema>,
): Promise<object> {
  const generic = Options[GENERIC_OPTIONS];
  const name = generic[NETCTL_NAME];
  await docker.createNetwork({
    dockerId: NetworkID,
    driver,
    ...(name ? { name } : {}),
    enableIPv6: Options[ENABLE_IPV6] ?? false,
    internal: Options[INTERNAL] ?? false,
    options: driverOptions(generic),
    pools: [...IPv4Data, ...IPv6Data].map(poolData),
  });
  return {};
}

async function deleteNetwork(
  { docker }: NetworkDriver,
  { NetworkID }: z.output<typeof networkSchema>,
): Promise<object> {
  await docker.deleteNetwork(NetworkID);
  return {};
}

async function createEndpoint(
  { docker }: NetworkDriver,
  { NetworkID, EndpointID, Interface }: z.output<typeof createEndpointSchema>,
): Promise<object> {
  const endpoint = await docker.createEndpoint({
    dockerNetworkId: NetworkID,
    id: EndpointID,
    ...(Interface?.Address ? { ipv4: Interface.Address } : {}),
    ...(Interface?.AddressIPv6 ? { ipv6: Interface.AddressIPv6 } : {}),
    ...(Interface?.MacAddress ? { mac: Interface.MacAddress } : {}),
  });
  // Docker refuses an answer that changes what it gave: the MAC only when it gave none.
  return Interface?.MacAddress ? {} : { Interface: { MacAddress: endpoint.mac } };
}

async function endpointOperInfo(
  { docker }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  const endpoint = await docker.endpoint(EndpointID);
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
  { docker }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  await docker.deleteEndpoint(EndpointID);
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

async function join(
  { docker }: NetworkDriver,
  { EndpointID, SandboxKey }: z.output<typeof joinSchema>,
): Promise<object> {
  return joinResponse(await docker.join(EndpointID, SandboxKey));
}

async function leave(
  { docker }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  await docker.leave(EndpointID);
  return {};
}

async function programExternalConnectivity(
  { docker }: NetworkDriver,
  { EndpointID, Options }: z.output<typeof externalConnectivitySchema>,
): Promise<object> {
  await docker.publishPorts(EndpointID, portRequests(Options[PORT_MAP]));
  return {};
}

async function revokeExternalConnectivity(
  { docker }: NetworkDriver,
  { EndpointID }: z.output<typeof endpointSchema>,
): Promise<object> {
  await docker.unpublishPorts(EndpointID);
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

export const networkDriverRoutes: FastifyPluginAsyncZod<NetworkDriver> = async (app, options) => {
  registerCalls(app, options, NETWORK_DRIVER_CALLS);
};
