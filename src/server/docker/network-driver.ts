/**
 * Docker's NetworkDriver protocol (libnetwork drivers/remote) over the
 * controller, for one netctl driver (`netctl-bridge` → bridge). A thin
 * adapter: Docker's request → the controller's call → Docker's answer.
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
import { basename } from 'node:path';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { parsePrefix } from '../../address.js';
import type { Controller, ExternalAddressing } from '../../controller/controller.js';
import type { Endpoint, Network, PortMapping, Sandbox } from '../../core/model.js';
import { NAME_MAX, type PortRequest } from '../../core/schemas.js';
import { Errors, isCode, specOf } from '../../errors.js';
import { NetnsNotFoundError, NotANetnsError, openNetns } from '../../kernel/index.js';
import { log } from '../../log.js';
import { KeyedLanes } from '../../serial.js';
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
  type PortBinding,
  PROTOCOL_NUMBERS,
  PROTOCOLS,
} from './protocol.js';

export interface NetworkDriverOptions {
  controller: Controller;
  /** The netctl driver behind this socket: `bridge` for netctl-bridge. */
  driver: string;
}

/** Label on the sandboxes made for Docker's containers (one per SandboxKey). */
export const DOCKER_SANDBOX_LABEL = 'netctl.docker.sandbox';

/** Name of the sandbox for Docker's SandboxKey: `docker-` and the key's last part (Docker's sandbox id, 12 hex). */
export function dockerSandboxName(key: string): string {
  const tail = basename(key).replace(/[^a-zA-Z0-9_.-]/g, '-');
  return `docker-${tail}`.slice(0, NAME_MAX);
}

/** Name of a network Docker makes without `-o netctl.name=NAME`. */
export const dockerNetworkName = (networkId: string) => `docker-${networkId.slice(0, 12)}`;

const isNotFound = (err: unknown) => specOf(err)?.class === 'notFound';

/** Docker's bindings as port requests: a host IP of ""/0.0.0.0/:: is any address. */
export function portRequests(bindings: PortBinding[]): PortRequest[] {
  return bindings.map((b) => {
    const anyHost = !b.HostIP || b.HostIP === '0.0.0.0' || b.HostIP === '::';
    return {
      proto: PROTOCOLS[b.Proto],
      ...(anyHost ? {} : { hostIp: b.HostIP }),
      hostPort: b.HostPort,
      ...(b.HostPortEnd > b.HostPort ? { hostPortEnd: b.HostPortEnd } : {}),
      containerPort: b.Port,
    };
  });
}

/** An endpoint's mappings as Docker's PortBindings (for EndpointOperInfo), one per port. */
export function portBindings(endpoint: Endpoint): Record<string, unknown>[] {
  const ip = endpoint.ipv4 ? parsePrefix(endpoint.ipv4).ip : '';
  return endpoint.portMappings.flatMap((m: PortMapping) =>
    Array.from({ length: (m.hostPortEnd ?? m.hostPort) - m.hostPort + 1 }, (_, i) => ({
      Proto: PROTOCOL_NUMBERS[m.proto],
      IP: ip,
      Port: m.containerPort + i,
      HostIP: m.hostIp ?? '0.0.0.0',
      HostPort: m.hostPort + i,
      HostPortEnd: m.hostPort + i,
    })),
  );
}

/** Calls dockerd makes while it starts: answered from local state, never waiting. */
const ANSWER_AT_ONCE = new Set(['/Plugin.Activate', '/NetworkDriver.GetCapabilities']);

export const networkDriverRoutes: FastifyPluginAsyncZod<NetworkDriverOptions> = async (app, options) => {
  const { controller: c, driver } = options;
  // One job at a time per container: its joins and leaves make and drop its sandbox.
  const sandboxLanes = new KeyedLanes();
  // The sweep the last Plugin.Activate started; calls that change state wait for it.
  let sweeping: Promise<void> = Promise.resolve();
  app.addHook('preHandler', async (request) => {
    if (!ANSWER_AT_ONCE.has(request.url)) await sweeping;
  });

  /*
   * A dockerd that starts again after a crash removes the sandboxes its
   * containers had, but tells a remote driver nothing: it has not loaded
   * the plugin yet and calls Leave/DeleteEndpoint with force, which skips
   * a driver it cannot find (libnetwork sandbox.delete, endpoint.sbLeave).
   * It activates the plugin when it first needs it, after that cleanup: so
   * Activate is the moment to drop what the dead dockerd left, else those
   * endpoints keep their ports (the restarted container's -p would be
   * refused) and their records. In the background: Activate must answer at
   * once (a plugin that hangs there hangs dockerd).
   */
  app.post('/Plugin.Activate', async () => {
    sweeping = sweeping
      .then(() => sweepAfterDockerd(c, sandboxLanes))
      .catch((err: unknown) => app.log.error({ err }, 'sweeping what a crashed dockerd left failed'));
    return { Implements: ['NetworkDriver'] };
  });

  const network = async (dockerId: string): Promise<Network> => {
    const found = await c.findDockerNetwork(dockerId);
    if (!found)
      throw new Errors.NetworkNotFound(
        `${dockerId.slice(0, 12)} (not in netctl's state: was it made with another state store?)`,
      );
    return found;
  };

  app.post('/NetworkDriver.GetCapabilities', async () => {
    const scope = c.drivers.get(driver)?.capability().dataScope ?? 'local';
    return { Scope: scope, ConnectivityScope: scope };
  });

  app.post('/NetworkDriver.CreateNetwork', { schema: { body: createNetworkSchema } }, async (request) => {
    const { NetworkID, Options, IPv4Data, IPv6Data } = request.body;
    if (await c.findDockerNetwork(NetworkID)) return {}; // asked again
    const generic = Options[GENERIC_OPTIONS];
    const name = generic[NETCTL_NAME];
    const data = [...IPv4Data, ...IPv6Data];
    const config = data.map((d) => {
      if (!d.Gateway) throw new Errors.InvalidRequest(`pool ${d.Pool} has no gateway`);
      return {
        subnet: d.Pool,
        gateway: parsePrefix(d.Gateway).ip,
        ...(Object.keys(d.AuxAddresses).length
          ? {
              auxAddresses: Object.fromEntries(
                Object.entries(d.AuxAddresses).map(([k, v]) => [k, parsePrefix(v).ip]),
              ),
            }
          : {}),
      };
    });
    // Docker's IPAM is netctl's when its pools are in netctl's address spaces (and store).
    const spaces = Object.values(await c.ipam.defaultAddressSpaces());
    const ours = data.length > 0 && data.every((d) => spaces.includes(d.AddressSpace));
    const poolIds = ours ? data.map((d) => `${d.AddressSpace}/${d.Pool}`) : [];
    if (name) {
      const existing = await c.state.networkIdByName(name);
      if (existing) {
        await adopt(c, existing, NetworkID, driver, config, poolIds);
        return {};
      }
    }
    const options = Object.fromEntries(Object.entries(generic).filter(([k]) => !k.startsWith('netctl.')));
    const addressing: ExternalAddressing = {
      id: NetworkID,
      dockerId: NetworkID,
      ipamDriver: ours ? 'netctl' : 'default',
      config,
      poolIds,
    };
    await c.createExternalNetwork(
      {
        name: name ?? dockerNetworkName(NetworkID),
        driver,
        enableIPv6: Options[ENABLE_IPV6] ?? false,
        internal: Options[INTERNAL] ?? false,
        options,
      },
      addressing,
    );
    return {};
  });

  app.post('/NetworkDriver.DeleteNetwork', { schema: { body: networkSchema } }, async (request) => {
    const net = await c.findDockerNetwork(request.body.NetworkID);
    if (!net) return {};
    // dockerd deletes a network only once it has no endpoint on it: any of
    // Docker's still here are stale (a dockerd that died, or lost its state).
    // A netctl sandbox's endpoint still refuses the delete (NETCTL_NETWORK_IN_USE).
    for (const endpoint of (await c.inspectNetwork(net.id)).endpoints) {
      if (!endpoint.externalAddresses) continue;
      await c.removeEndpoint(endpoint);
      if (endpoint.sandboxId) await dropSandboxIfEmpty(c, endpoint.sandboxId);
    }
    await c.deleteDockerNetwork(request.body.NetworkID);
    return {};
  });

  // Swarm only: a local-scope driver has nothing to allocate across the cluster.
  app.post('/NetworkDriver.AllocateNetwork', { schema: { body: allocateNetworkSchema } }, async () => ({
    Options: {},
  }));
  app.post('/NetworkDriver.FreeNetwork', { schema: { body: networkSchema } }, async () => ({}));

  app.post('/NetworkDriver.CreateEndpoint', { schema: { body: createEndpointSchema } }, async (request) => {
    const { NetworkID, EndpointID, Interface } = request.body;
    const net = await network(NetworkID);
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
  });

  app.post('/NetworkDriver.EndpointOperInfo', { schema: { body: endpointSchema } }, async (request) => {
    const endpoint = await c.state.endpoint(request.body.EndpointID);
    if (!endpoint) return { Value: {} };
    const bindings = portBindings(endpoint);
    return {
      Value: {
        [MAC_ADDRESS]: endpoint.mac,
        [PORT_MAP]: bindings,
        [EXPOSED_PORTS]: bindings.map((b) => ({ Proto: b.Proto, Port: b.Port })),
      },
    };
  });

  app.post('/NetworkDriver.DeleteEndpoint', { schema: { body: endpointSchema } }, async (request) => {
    const endpoint = await c.state.endpoint(request.body.EndpointID);
    if (!endpoint) return {};
    const sandboxId = endpoint.sandboxId;
    await c.removeEndpoint(endpoint);
    if (sandboxId) await dropSandboxIfEmpty(c, sandboxId);
    return {};
  });

  app.post('/NetworkDriver.Join', { schema: { body: joinSchema } }, async (request) => {
    const { EndpointID, SandboxKey } = request.body;
    return sandboxLanes.run(SandboxKey, async () => {
      const sandbox = await dockerSandbox(c, SandboxKey);
      try {
        const { join } = await c.joinEndpoint(EndpointID, { sandbox: sandbox.id, placement: 'host-side' });
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
      } catch (err) {
        await dropSandboxIfEmpty(c, sandbox.id);
        throw err;
      }
    });
  });

  app.post('/NetworkDriver.Leave', { schema: { body: endpointSchema } }, async (request) => {
    const endpoint = await c.state.endpoint(request.body.EndpointID);
    const sandboxId = endpoint?.sandboxId;
    if (!endpoint || !sandboxId) return {};
    const sandbox = await c.state.sandbox(sandboxId);
    return sandboxLanes.run(sandbox?.key ?? sandboxId, async () => {
      try {
        await c.leaveEndpoint(endpoint.id);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      await dropSandboxIfEmpty(c, sandboxId);
      return {};
    });
  });

  app.post(
    '/NetworkDriver.ProgramExternalConnectivity',
    { schema: { body: externalConnectivitySchema } },
    async (request) => {
      const { EndpointID, Options } = request.body;
      const requests = portRequests(Options[PORT_MAP]);
      const endpoint = await c.findEndpoint(EndpointID);
      if (requests.length || endpoint.portMappings.length) await c.publishPorts(EndpointID, requests);
      return {};
    },
  );

  app.post(
    '/NetworkDriver.RevokeExternalConnectivity',
    { schema: { body: endpointSchema } },
    async (request) => {
      try {
        await c.unpublishPorts(request.body.EndpointID);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      return {};
    },
  );

  // Node discovery is for multi-host drivers; a local one has nothing to learn.
  app.post('/NetworkDriver.DiscoverNew', { schema: { body: discoverySchema } }, async () => ({}));
  app.post('/NetworkDriver.DiscoverDelete', { schema: { body: discoverySchema } }, async () => ({}));
};

/**
 * Adopt netctl network `ref` as Docker network dockerId (`-o
 * netctl.name=NAME` naming a network that exists): same driver, the same
 * subnets and gateways, and Docker's addresses drawn from the network's own
 * pools (`--ipam-driver netctl --ipam-opt netctl.name=NAME`), so neither
 * side hands out an address the other holds.
 */
async function adopt(
  c: Controller,
  ref: string,
  dockerId: string,
  driver: string,
  config: ExternalAddressing['config'],
  poolIds: string[],
): Promise<void> {
  const network = await c.findNetwork(ref);
  const refuse = (why: string) => new Errors.NotAdoptable(network.name, dockerId.slice(0, 12), why);
  if (network.driver !== driver) throw refuse(`its driver is ${network.driver}, not ${driver}`);
  const theirs = network.ipam.config.map((p) => `${p.subnet} gateway ${p.gateway}`).sort();
  const asked = config.map((p) => `${p.subnet} gateway ${p.gateway}`).sort();
  if (theirs.join() !== asked.join())
    throw refuse(`it has ${theirs.join(', ') || 'no subnet'}, Docker asked for ${asked.join(', ')}`);
  const samePools = poolIds.length > 0 && poolIds.every((id) => network.ipam.poolIds.includes(id));
  if (!samePools)
    throw refuse(
      `Docker's addresses must come from its pools: --ipam-driver netctl --ipam-opt ${NETCTL_NAME}=${network.name}`,
    );
  await c.setDockerNetwork(network.id, dockerId);
}

/** The sandbox for Docker's SandboxKey: found by its name, made on the first join. */
async function dockerSandbox(c: Controller, key: string): Promise<Sandbox> {
  const name = dockerSandboxName(key);
  const find = async () => {
    const id = await c.state.sandboxIdByName(name);
    return id ? c.state.sandbox(id) : undefined;
  };
  let sandbox = await find();
  // One a delete marked (its last Leave racing this Join, or a crash after the mark): it goes first.
  if (sandbox?.deleting) {
    await c.deleteSandbox(sandbox.id).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    sandbox = undefined;
  }
  if (sandbox && sandbox.key !== key) {
    throw new Errors.SandboxExists(`${name} (for ${sandbox.key}, not Docker's ${key})`);
  }
  if (!sandbox) {
    try {
      sandbox = await c.createSandbox(
        { name, key, labels: { [DOCKER_SANDBOX_LABEL]: key } },
        { netnsLater: true }, // Docker binds it at the key when the container starts
      );
    } catch (err) {
      sandbox = isCode(err, Errors.SandboxExists) ? await find() : undefined;
      if (!sandbox) throw err;
    }
  }
  return sandbox;
}

/** True while a netns is mounted at path. */
function isNetns(path: string): boolean {
  try {
    openNetns(path).close();
    return true;
  } catch (err) {
    if (err instanceof NetnsNotFoundError || err instanceof NotANetnsError) return false;
    throw err;
  }
}

/**
 * Remove what an earlier dockerd left (see Plugin.Activate). Safe at
 * Activate, which comes before any other call of a new dockerd: everything
 * of Docker's in the state then is an earlier dockerd's.
 *   - Docker's sandboxes with no netns left at their key, with their
 *     endpoints: their containers are gone. dockerd unmounts a stale
 *     sandbox's netns and leaves the empty file for a later garbage
 *     collection, so "no netns there" rather than "no file". A running
 *     container's netns stays mounted (--live-restore).
 *   - Docker's endpoints joined to no sandbox: dockerd makes an endpoint
 *     when a container starts and joins it at once, so one never joined
 *     was left by a dockerd that died in between.
 */
async function sweepAfterDockerd(c: Controller, lanes: KeyedLanes): Promise<void> {
  for (const sandbox of await c.state.sandboxes()) {
    const key = sandbox.labels[DOCKER_SANDBOX_LABEL];
    if (key === undefined || isNetns(sandbox.key)) continue;
    await lanes.run(sandbox.key, async () => {
      try {
        await c.deleteSandbox(sandbox.id);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    });
    log.info({ sandbox: sandbox.name, key }, 'docker sandbox removed: its netns is gone');
  }
  const dockerNetworks = new Set((await c.state.networks()).filter((n) => n.dockerId).map((n) => n.id));
  for (const endpoint of await c.state.endpoints()) {
    // externalAddresses: Docker's (addresses from its IPAM); a netctl sandbox's endpoint is always joined.
    if (endpoint.sandboxId || !endpoint.externalAddresses || !dockerNetworks.has(endpoint.networkId))
      continue;
    await c.removeEndpoint(endpoint);
    log.info({ endpoint: endpoint.name }, 'docker endpoint removed: never joined');
  }
}

/** A sandbox made for Docker goes with its container's last endpoint (its netns is Docker's). */
async function dropSandboxIfEmpty(c: Controller, sandboxId: string): Promise<void> {
  const sandbox = await c.state.sandbox(sandboxId);
  if (!sandbox || sandbox.labels[DOCKER_SANDBOX_LABEL] === undefined || sandbox.endpointIds.length) return;
  try {
    await c.deleteSandbox(sandbox.id, { ifEmpty: true });
  } catch (err) {
    if (!isNotFound(err) && !isCode(err, Errors.SandboxInUse)) throw err;
  }
  log.debug({ sandbox: sandbox.name }, 'docker sandbox removed with its last endpoint');
}
