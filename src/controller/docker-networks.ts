/**
 * Docker's side of netctl (DockerNetworkApi): the networks, endpoints and
 * sandboxes dockerd asks for through the netctl-bridge plugin, kept in
 * netctl's terms so the plugin's server (src/server/docker) only translates.
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
import { parsePrefix } from '../address.js';
import type { JoinInfo } from '../core/info.js';
import { hasIpamLookup } from '../core/ipam.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import { NAME_MAX, type PortRequest } from '../core/schemas.js';
import { Errors, ignoreNotFound, isCode, isNotFound } from '../errors.js';
import { NetnsNotFoundError, NotANetnsError, openNetns } from '../kernel/index.js';
import { log } from '../log.js';
import { KeyedLanes } from '../serial.js';
import type { DockerEndpointRequest, DockerNetworkApi, DockerNetworkRequest, DockerPoolData } from './api.js';
import type { ControllerContext } from './context.js';
import type { Endpoints } from './endpoints.js';
import type { ExternalAddressing, Networks } from './networks.js';
import type { Ports } from './ports.js';
import type { Sandboxes } from './sandboxes.js';

/** Label on the sandboxes made for Docker's containers (one per SandboxKey). */
export const DOCKER_SANDBOX_LABEL = 'netctl.docker.sandbox';

/** Name of a network Docker makes without `-o netctl.name=NAME`. */
export const dockerNetworkName = (networkId: string) => `docker-${networkId.slice(0, 12)}`;

/** Name of the sandbox for Docker's SandboxKey: `docker-` and the key's last part (Docker's sandbox id, 12 hex). */
export function dockerSandboxName(key: string): string {
  const tail = basename(key).replace(/[^a-zA-Z0-9_.-]/g, '-');
  return `docker-${tail}`.slice(0, NAME_MAX);
}

/** One pool as Docker's IPAM reserved it: its subnet, gateway and aux addresses, without prefix lengths. */
function poolConfigOf(d: DockerPoolData): ExternalAddressing['config'][number] {
  if (!d.gateway) throw new Errors.InvalidRequest(`pool ${d.pool} has no gateway`);
  const aux = Object.entries(d.auxAddresses).map(([k, v]) => [k, parsePrefix(v).ip]);
  return {
    subnet: d.pool,
    gateway: parsePrefix(d.gateway).ip,
    ...(aux.length ? { auxAddresses: Object.fromEntries(aux) } : {}),
  };
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

/** The rooms Docker's calls are made of. */
export interface DockerRooms {
  networks: Networks;
  endpoints: Endpoints;
  sandboxes: Sandboxes;
  ports: Ports;
}

export class DockerNetworks implements DockerNetworkApi {
  /** One job at a time per container: its joins and leaves make and drop its sandbox. */
  private readonly sandboxLanes = new KeyedLanes();
  /** The sweep the last activate started; every call waits for it. */
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: ControllerContext,
    private readonly rooms: DockerRooms,
  ) {}

  connectivityScope(driver: string): 'local' | 'global' {
    return this.ctx.drivers.get(driver)?.capability().connectivityScope ?? 'local';
  }

  /**
   * Activate is when a restarted dockerd first needs the plugin: the moment
   * to drop what a crashed one left (sweep). In the background: Activate
   * must answer at once (a plugin that hangs there hangs dockerd).
   */
  activate(): void {
    this.sweeping = this.sweeping
      .then(() => this.sweep())
      .catch((err: unknown) => log.error({ err }, 'sweeping what a crashed dockerd left failed'));
  }

  /** Docker's NetworkID: made with the addresses Docker's IPAM gave, or a netctl network adopted. */
  async createNetwork(request: DockerNetworkRequest): Promise<void> {
    await this.sweeping;
    const { networks } = this.rooms;
    if (await networks.findDockerNetwork(request.dockerId)) return; // asked again
    const addressing = await this.addressing(request.dockerId, request.driver, request.pools);
    const existing = request.name ? await this.ctx.state.networkIdByName(request.name) : undefined;
    if (existing) return this.adopt(existing, request.dockerId, request.driver, addressing);
    // Each host's dockerd would make a network of its own, with its own addresses: one overlay is adopted on every host.
    if (this.ctx.driver(request.driver).capability().dataScope === 'global')
      throw new Errors.InvalidRequest(
        `a ${request.driver} network is made once with netctl network create -d ${request.driver} NAME, then adopted by each host's Docker: docker network create -d netctl-${request.driver} --ipam-driver netctl --ipam-opt netctl.name=NAME -o netctl.name=NAME NAME`,
      );
    await networks.createExternalNetwork(
      {
        name: request.name ?? dockerNetworkName(request.dockerId),
        driver: request.driver,
        enableIPv6: request.enableIPv6,
        internal: request.internal,
        options: request.options,
      },
      addressing,
    );
  }

  /**
   * dockerd deletes a network only once it has no endpoint on it: any of
   * Docker's still here are stale (a dockerd that died, or lost its state).
   * A netctl sandbox's endpoint still refuses the delete (NETCTL_NETWORK_IN_USE).
   */
  async deleteNetwork(dockerId: string): Promise<void> {
    await this.sweeping;
    const { networks, endpoints } = this.rooms;
    const net = await networks.findDockerNetwork(dockerId);
    if (!net) return;
    for (const endpoint of (await networks.inspectNetwork(net.id)).endpoints) {
      if (!endpoint.externalAddresses) continue;
      await endpoints.removeEndpoint(endpoint);
      if (endpoint.sandboxId) await this.dropSandboxIfEmpty(endpoint.sandboxId);
    }
    await networks.deleteDockerNetwork(dockerId);
  }

  async createEndpoint({ dockerNetworkId, id, ipv4, ipv6, mac }: DockerEndpointRequest): Promise<Endpoint> {
    await this.sweeping;
    const net = await this.dockerNetwork(dockerNetworkId);
    return this.rooms.endpoints.createEndpoint({
      network: net.id,
      id,
      addresses: 'given',
      ...(ipv4 ? { ipv4 } : {}),
      ...(ipv6 ? { ipv6 } : {}),
      ...(mac ? { mac } : {}),
    });
  }

  async endpoint(id: string): Promise<Endpoint | undefined> {
    await this.sweeping;
    return this.ctx.state.endpoint(id);
  }

  async deleteEndpoint(id: string): Promise<void> {
    await this.sweeping;
    const endpoint = await this.ctx.state.endpoint(id);
    if (!endpoint) return;
    const sandboxId = endpoint.sandboxId;
    await this.rooms.endpoints.removeEndpoint(endpoint);
    if (sandboxId) await this.dropSandboxIfEmpty(sandboxId);
  }

  /** Join the endpoint to the container's sandbox, made on its first join. */
  async join(endpointId: string, sandboxKey: string): Promise<JoinInfo> {
    await this.sweeping;
    return this.sandboxLanes.run(sandboxKey, async () => {
      const sandbox = await this.dockerSandbox(sandboxKey);
      try {
        const { join } = await this.rooms.endpoints.joinEndpoint(endpointId, {
          sandbox: sandbox.id,
          placement: 'host-side',
        });
        return join;
      } catch (err) {
        await this.dropSandboxIfEmpty(sandbox.id);
        throw err;
      }
    });
  }

  /** Leave the container's sandbox, which goes with its last endpoint. */
  async leave(endpointId: string): Promise<void> {
    await this.sweeping;
    const endpoint = await this.ctx.state.endpoint(endpointId);
    const sandboxId = endpoint?.sandboxId;
    if (!endpoint || !sandboxId) return;
    const sandbox = await this.ctx.state.sandbox(sandboxId);
    await this.sandboxLanes.run(sandbox?.key ?? sandboxId, async () => {
      await ignoreNotFound(this.rooms.endpoints.leaveEndpoint(endpoint.id));
      await this.dropSandboxIfEmpty(sandboxId);
    });
  }

  async publishPorts(endpointId: string, ports: PortRequest[]): Promise<void> {
    await this.sweeping;
    const endpoint = await this.ctx.findEndpoint(endpointId);
    if (ports.length || endpoint.portMappings.length) await this.rooms.ports.publishPorts(endpointId, ports);
  }

  async unpublishPorts(endpointId: string): Promise<void> {
    await this.sweeping;
    await ignoreNotFound(this.rooms.ports.unpublishPorts(endpointId));
  }

  /** Docker network dockerId, which must be in netctl's state. */
  private async dockerNetwork(dockerId: string): Promise<Network> {
    const found = await this.rooms.networks.findDockerNetwork(dockerId);
    if (!found)
      throw new Errors.NetworkNotFound(
        `${dockerId.slice(0, 12)} (not in netctl's state: was it made with another state store?)`,
      );
    return found;
  }

  /**
   * Docker network networkId's addressing, as Docker's IPAM driver gave it.
   * That IPAM is netctl's when its pools are in netctl's address spaces (and
   * store): then the network's addresses are held in those pools.
   */
  private async addressing(
    networkId: string,
    driver: string,
    pools: DockerPoolData[],
  ): Promise<ExternalAddressing> {
    const config = pools.map(poolConfigOf);
    const spaces = await this.ctx.ipam.defaultAddressSpaces();
    const ours = pools.length > 0 && pools.every((d) => Object.values(spaces).includes(d.addressSpace));
    const global = this.ctx.driver(driver).capability().dataScope === 'global';
    const poolIds: string[] = [];
    if (ours) for (const d of pools) poolIds.push(await this.poolIdOf(d, global ? spaces.global : undefined));
    return { id: networkId, dockerId: networkId, ipamDriver: ours ? 'netctl' : 'default', config, poolIds };
  }

  /**
   * The netctl pool behind Docker's pool d. Docker names the address space
   * it asked in, its default for a local-scope driver (every netctl driver
   * is one to Docker: GetCapabilities); for a global driver's network the
   * pool is a global network's shared with Docker (`--ipam-opt
   * netctl.name=`), in the cluster's space: that one unless Docker's own
   * space holds a pool of that subnet (Docker's own, which adopt refuses).
   */
  private async poolIdOf(d: DockerPoolData, globalSpace: string | undefined): Promise<string> {
    const asked = `${d.addressSpace}/${d.pool}`;
    if (!globalSpace || d.addressSpace === globalSpace) return asked;
    const { ipam } = this.ctx;
    const exists = async (poolId: string) =>
      hasIpamLookup(ipam)
        ? (await ipam.pool(poolId)) !== undefined
        : (await ipam.listPools()).some((p) => p.poolId === poolId);
    const shared = `${globalSpace}/${d.pool}`;
    return !(await exists(asked)) && (await exists(shared)) ? shared : asked;
  }

  /**
   * Adopt netctl network `ref` as Docker network dockerId (`-o
   * netctl.name=NAME` naming a network that exists): same driver, the same
   * subnets and gateways, and Docker's addresses drawn from the network's own
   * pools (`--ipam-driver netctl --ipam-opt netctl.name=NAME`), so neither
   * side hands out an address the other holds.
   */
  private async adopt(
    ref: string,
    dockerId: string,
    driver: string,
    { config, poolIds }: Pick<ExternalAddressing, 'config' | 'poolIds'>,
  ): Promise<void> {
    const network = await this.ctx.findNetwork(ref);
    const refuse = (why: string) => new Errors.NotAdoptable(network.name, dockerId.slice(0, 12), why);
    if (network.driver !== driver) throw refuse(`its driver is ${network.driver}, not ${driver}`);
    const theirs = network.ipam.config.map((p) => `${p.subnet} gateway ${p.gateway}`).sort();
    const asked = config.map((p) => `${p.subnet} gateway ${p.gateway}`).sort();
    if (theirs.join() !== asked.join())
      throw refuse(`it has ${theirs.join(', ') || 'no subnet'}, Docker asked for ${asked.join(', ')}`);
    const samePools = poolIds.length > 0 && poolIds.every((id) => network.ipam.poolIds.includes(id));
    if (!samePools)
      throw refuse(
        `Docker's addresses must come from its pools: --ipam-driver netctl --ipam-opt netctl.name=${network.name}`,
      );
    await this.rooms.networks.setDockerNetwork(network.id, dockerId);
  }

  /** The sandbox for Docker's SandboxKey: found by its name, made on the first join. */
  private async dockerSandbox(key: string): Promise<Sandbox> {
    const { state } = this.ctx;
    const { sandboxes } = this.rooms;
    const name = dockerSandboxName(key);
    const find = async () => {
      const id = await state.sandboxIdByName(name);
      return id ? state.sandbox(id) : undefined;
    };
    let sandbox = await find();
    // One a delete marked (its last Leave racing this Join, or a crash after the mark): it goes first.
    if (sandbox?.deleting) {
      await ignoreNotFound(sandboxes.deleteSandbox(sandbox.id));
      sandbox = undefined;
    }
    if (sandbox && sandbox.key !== key) {
      throw new Errors.SandboxExists(`${name} (for ${sandbox.key}, not Docker's ${key})`);
    }
    if (!sandbox) {
      try {
        sandbox = await sandboxes.createSandbox(
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

  /** A sandbox made for Docker goes with its container's last endpoint (its netns is Docker's). */
  private async dropSandboxIfEmpty(sandboxId: string): Promise<void> {
    const sandbox = await this.ctx.state.sandbox(sandboxId);
    if (!sandbox || sandbox.labels[DOCKER_SANDBOX_LABEL] === undefined || sandbox.endpointIds.length) return;
    try {
      await this.rooms.sandboxes.deleteSandbox(sandbox.id, { ifEmpty: true });
    } catch (err) {
      if (!isNotFound(err) && !isCode(err, Errors.SandboxInUse)) throw err;
    }
    log.debug({ sandbox: sandbox.name }, 'docker sandbox removed with its last endpoint');
  }

  /**
   * What a crashed dockerd left, removed when the next one activates the
   * plugin. A dockerd that starts again after a crash removes the sandboxes
   * its containers had, but tells a remote driver nothing: it has not loaded
   * the plugin yet and calls Leave/DeleteEndpoint with force, which skips a
   * driver it cannot find (libnetwork sandbox.delete, endpoint.sbLeave). It
   * activates the plugin when it first needs it, after that cleanup: so
   * Activate is the moment to drop what the dead dockerd left, else those
   * endpoints keep their ports (the restarted container's -p would be
   * refused) and their records. Everything of Docker's in the state then is
   * an earlier dockerd's:
   *   - Docker's sandboxes with no netns left at their key, with their
   *     endpoints: their containers are gone. dockerd unmounts a stale
   *     sandbox's netns and leaves the empty file for a later garbage
   *     collection, so "no netns there" rather than "no file". A running
   *     container's netns stays mounted (--live-restore).
   *   - Docker's endpoints joined to no sandbox: dockerd makes an endpoint
   *     when a container starts and joins it at once, so one never joined
   *     was left by a dockerd that died in between.
   */
  private async sweep(): Promise<void> {
    const { state } = this.ctx;
    for (const sandbox of await state.sandboxes()) {
      const key = sandbox.labels[DOCKER_SANDBOX_LABEL];
      if (key === undefined || isNetns(sandbox.key)) continue;
      await this.sandboxLanes.run(sandbox.key, () =>
        ignoreNotFound(this.rooms.sandboxes.deleteSandbox(sandbox.id)),
      );
      log.info({ sandbox: sandbox.name, key }, 'docker sandbox removed: its netns is gone');
    }
    const dockerNetworks = new Set((await state.networks()).filter((n) => n.dockerId).map((n) => n.id));
    for (const endpoint of await state.endpoints()) {
      // externalAddresses: Docker's (addresses from its IPAM); a netctl sandbox's endpoint is always joined.
      if (endpoint.sandboxId || !endpoint.externalAddresses || !dockerNetworks.has(endpoint.networkId))
        continue;
      await this.rooms.endpoints.removeEndpoint(endpoint);
      log.info({ endpoint: endpoint.name }, 'docker endpoint removed: never joined');
    }
  }
}
