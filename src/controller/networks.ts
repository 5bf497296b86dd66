/**
 * Networks: their pools and gateways from the IPAM (or from the caller's
 * IPAM: Docker), the driver's setup, their record; Docker's adoption of
 * netctl networks; removal once no endpoint is on them.
 */
import type { z } from 'zod';
import { parsePrefix } from '../address.js';
import type { Driver } from '../core/driver.js';
import type { Pool, PoolRequest, Reservation } from '../core/ipam.js';
import type { IpamPoolConfig, Network } from '../core/model.js';
import { FIRST_VNI, MAX_VNI } from '../core/options.js';
import { type CreateNetworkRequest, createNetworkSchema, idSchema } from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors, isCode } from '../errors.js';
import { KvConflictError } from '../kv/index.js';
import { networkOwner } from '../owners.js';
import type { NetworkDetails } from './api.js';
import { type ControllerContext, newId } from './context.js';
import { found } from './intent-runner.js';
import { crashPoint } from './intents.js';
import { clusterKeys } from './keys.js';
import { type ClaimOps, NO_CLAIMS } from './state.js';
import {
  checkPoolConfig,
  checkSubnet,
  type HostRoute,
  type PoolConfigRequest,
  routeSubnets,
} from './subnets.js';

/** IPAM driver name for networks without addresses (host, none), as Docker's "null" IPAM. */
export const NULL_IPAM = 'null';

/**
 * Addressing of a network made by someone whose IPAM holds its pools
 * (Docker: its IPAM driver was called before the network driver).
 */
export interface ExternalAddressing {
  /** The network's id: Docker's NetworkID (64 hex digits, like netctl's); a new one when absent. */
  id?: string;
  /** Docker's NetworkID, recorded as the network's dockerId. */
  dockerId?: string;
  /** IPAM driver name, for inspect (`netctl`, `default`). */
  ipamDriver: string;
  ipamOptions?: Record<string, string>;
  /** One per subnet, the gateway resolved. */
  config: (IpamPoolConfig & { gateway: string })[];
  /** netctl IPAM pools behind config, one per entry, when the caller's IPAM is netctl's; else none. */
  poolIds: string[];
}

export class Networks {
  constructor(private readonly ctx: ControllerContext) {}

  async listNetworks(): Promise<Network[]> {
    return (await this.ctx.state.networks()).sort((a, b) => a.name.localeCompare(b.name));
  }

  async inspectNetwork(ref: string): Promise<NetworkDetails> {
    const network = await this.ctx.findNetwork(ref);
    const sandboxes = new Map((await this.ctx.state.sandboxes()).map((s) => [s.id, s]));
    const endpoints = (await this.ctx.state.endpoints())
      .filter((e) => e.networkId === network.id)
      .map((e) => {
        const sandboxName = e.sandboxId ? sandboxes.get(e.sandboxId)?.name : undefined;
        return sandboxName ? { ...e, sandboxName } : e;
      });
    const peers = network.scope === 'global' ? await this.ctx.overlay?.networkPeers(network.id) : undefined;
    return { network, endpoints, ...(peers ? { peers } : {}) };
  }

  async createNetwork(input: CreateNetworkRequest): Promise<Network> {
    return this.addNetwork(parseRequest(createNetworkSchema, input));
  }

  /**
   * A network whose pools, gateways and aux addresses are already reserved
   * by the caller's IPAM (Docker's, netctl's own through the IPAM plugin):
   * the driver sets it up, nothing is requested from netctl's IPAM, and its
   * removal releases nothing there (network.ipam.external).
   */
  async createExternalNetwork(input: CreateNetworkRequest, addressing: ExternalAddressing): Promise<Network> {
    const req = parseRequest(createNetworkSchema, input);
    if (addressing.id) parseRequest(idSchema, addressing.id);
    if (!addressing.config.length) throw new Errors.InvalidRequest('a network needs at least one subnet');
    if (addressing.poolIds.length && addressing.poolIds.length !== addressing.config.length)
      throw new Errors.InvalidRequest('one pool id per subnet, or none');
    for (const c of addressing.config) checkPoolConfig(c);
    return this.addNetwork(req, addressing);
  }

  private async addNetwork(req: NetworkRequest, external?: ExternalAddressing): Promise<Network> {
    const driver = this.ctx.driver(req.driver);
    if (await this.ctx.state.networkIdByName(req.name)) throw new Errors.NetworkExists(req.name);
    const configs = poolConfigs(req, driver, external);
    const routes = configs.length ? await this.ctx.hostRoutes() : [];
    for (const c of configs) if (c.subnet) checkSubnet(c.subnet, routes);

    const id = external?.id ?? newId();
    driver.checkOptions?.({ id, options: req.options, internal: req.internal });
    const owner = networkOwner(id);
    const scope = driver.capability().dataScope;
    // One host's store cannot hold what every host must see.
    if (scope === 'global' && this.ctx.state.kv.backend === 'lmdb')
      throw new Errors.SharedStoreRequired(req.driver, this.ctx.storeName);
    const pinnedVni = scope === 'global' ? driver.pinnedVni?.({ options: req.options }) : undefined;
    /** Pools requested so far, for the undo. */
    const poolIds: string[] = [];
    let made: Network | undefined;
    return this.ctx.intents.run(
      'createNetwork',
      'create',
      [owner],
      async () => {
        const ipam: Network['ipam'] = external
          ? {
              driver: external.ipamDriver,
              options: external.ipamOptions ?? {},
              config: external.config,
              poolIds: external.poolIds,
              external: true,
            }
          : {
              driver: req.ipam.driver,
              options: req.ipam.options,
              config: await this.reservePools(configs, { scope, owner, routes }, poolIds),
              poolIds,
            };
        const network = networkRecord(id, req, scope, ipam, external?.dockerId);
        crashPoint('createNetwork.driver');
        // A driver that fails undoes its own steps (runSteps); one that succeeded is undone below.
        await driver.createNetwork({
          network,
          setDriverData: (k, v) => {
            network.driverData[k] = v;
          },
        });
        made = network;
        crashPoint('createNetwork.record');
        if (scope === 'global') await this.recordGlobal(network, pinnedVni);
        else await this.ctx.state.createNetwork(network);
        return network;
      },
      async () => {
        if (made) await driver.deleteNetwork(made);
        // Every pool the IPAM holds for it, one whose reply was lost too.
        await this.releasePools(new Set([...[...poolIds].reverse(), ...(await this.poolsOf(owner))]));
      },
      { landed: async () => found(await this.ctx.state.network(id)) },
    );
  }

  /**
   * Record a global network with its VNI taken in the same commit: the one
   * its options pin (NETCTL_VNI_IN_USE when taken), else the lowest free
   * from FIRST_VNI up, the next on a race with another host.
   */
  private async recordGlobal(network: Network, pinned: number | undefined): Promise<void> {
    for (;;) {
      const taken = new Set(
        (await this.ctx.state.kv.list(clusterKeys.vnis)).map((e) =>
          Number(e.key.slice(clusterKeys.vnis.length)),
        ),
      );
      let vni = pinned ?? FIRST_VNI;
      if (pinned === undefined) while (taken.has(vni)) vni++;
      if (vni > MAX_VNI) throw new Errors.InvalidRequest('no VNI left');
      network.driverData.vni = String(vni);
      const claim: ClaimOps = {
        compare: [{ key: clusterKeys.vni(vni), version: 0 }],
        ops: [{ type: 'put', key: clusterKeys.vni(vni), value: network.id }],
      };
      try {
        await this.ctx.state.createNetwork(network, claim);
        return;
      } catch (err) {
        if (!(err instanceof KvConflictError) || err.key !== clusterKeys.vni(vni)) throw err;
        if (pinned !== undefined) {
          const holder = (await this.ctx.state.kv.get(clusterKeys.vni(vni)))?.value;
          const name = typeof holder === 'string' ? (await this.ctx.state.network(holder))?.name : undefined;
          throw new Errors.VniInUse(vni, name ?? String(holder));
        }
      }
    }
  }

  /**
   * A pool per config from netctl's IPAM, with its gateway and aux
   * addresses reserved; each pool's id is pushed on poolIds as soon as it
   * is held, for the caller's undo. The configs resolved (subnet, gateway).
   */
  private async reservePools(
    configs: PoolConfigRequest[],
    { scope, owner, routes }: { scope: Network['scope']; owner: string; routes: HostRoute[] },
    poolIds: string[],
  ): Promise<Network['ipam']['config']> {
    const ipam = this.ctx.ipam;
    const spaces = await ipam.defaultAddressSpaces();
    const resolved: Network['ipam']['config'] = [];
    for (const c of configs) {
      const pool = await ipam.requestPool({
        addressSpace: scope === 'global' ? spaces.global : spaces.local,
        ...(c.subnet ? { pool: c.subnet } : {}),
        ...(c.ipRange ? { subPool: c.ipRange } : {}),
        v6: c.subnet ? parsePrefix(c.subnet).family === 6 : false,
        owner,
        // A default pool steers around the host's routes (subnets.ts).
        ...(c.subnet ? {} : { avoid: routeSubnets(routes).map((r) => r.cidr) }),
      });
      poolIds.push(pool.poolId);
      crashPoint('createNetwork.pool');
      const gateway = await ipam.requestAddress({
        poolId: pool.poolId,
        ...(c.gateway ? { address: c.gateway } : {}),
        owner,
      });
      for (const address of Object.values(c.auxAddresses ?? {}))
        await ipam.requestAddress({ poolId: pool.poolId, address, owner });
      resolved.push({ ...c, subnet: pool.pool, gateway: parsePrefix(gateway.address).ip });
    }
    return resolved;
  }

  /**
   * A pool for a caller that makes its networks itself (Docker's IPAM
   * protocol): the subnet rules of createNetwork apply (subnets.ts) — a
   * subnet too broad or over a host route is refused, a default one steers
   * around the host's routes.
   */
  async requestPool(request: PoolRequest): Promise<Pool> {
    const routes = await this.ctx.hostRoutes();
    if (request.pool) checkSubnet(request.pool, routes);
    return this.ctx.ipam.requestPool(
      request.pool ? request : { ...request, avoid: routeSubnets(routes).map((r) => r.cidr) },
    );
  }

  /**
   * Give back pools with every address in them (gateways, aux addresses).
   * Idempotent: a pool already gone (a release whose reply was lost, then
   * finished by reconcile) is done.
   */
  private async releasePools(poolIds: Iterable<string>): Promise<void> {
    for (const poolId of poolIds) {
      let reservations: Reservation[];
      try {
        reservations = await this.ctx.ipam.listReservations(poolId);
      } catch (err) {
        if (isCode(err, Errors.PoolNotFound)) continue;
        throw err;
      }
      for (const r of reservations) await this.ctx.ipam.releaseAddress(poolId, r.address);
      await this.ctx.ipam.releasePool(poolId);
    }
  }

  /** The pools the IPAM holds for owner: an undone create's, one whose reply was lost included. */
  private async poolsOf(owner: string): Promise<string[]> {
    return (await this.ctx.ipam.listPools()).filter((p) => p.owner === owner).map((p) => p.poolId);
  }

  /** The netctl network that Docker network dockerId is: one Docker made (same id) or one it adopted. */
  async findDockerNetwork(dockerId: string): Promise<Network | undefined> {
    const own = await this.ctx.state.network(dockerId);
    if (own?.dockerId === dockerId) return own;
    const id = await this.ctx.state.networkIdByDockerId(dockerId);
    return id ? this.ctx.state.network(id) : undefined;
  }

  /**
   * Record that a netctl network is Docker network dockerId (Docker adopted
   * it), or with undefined that it no longer is. The network stays.
   */
  async setDockerNetwork(ref: string, dockerId: string | undefined): Promise<Network> {
    const network = await this.ctx.findNetwork(ref);
    if (dockerId) parseRequest(idSchema, dockerId);
    if (dockerId && network.dockerId && network.dockerId !== dockerId)
      throw new Errors.NotAdoptable(
        network.name,
        dockerId,
        `it is Docker network ${network.dockerId} already`,
      );
    const updated = await this.ctx.state.setDockerId(network.id, dockerId);
    if (!updated) throw new Errors.NetworkNotFound(ref);
    return updated;
  }

  /**
   * Docker removes network dockerId: one Docker made is deleted (refused
   * while netctl's own sandboxes are on it), one it adopted is only
   * forgotten. Idempotent: an unknown id is done.
   */
  async deleteDockerNetwork(dockerId: string): Promise<Network | undefined> {
    const network = await this.findDockerNetwork(dockerId);
    if (!network) return undefined;
    if (network.id !== dockerId) return this.setDockerNetwork(network.id, undefined);
    return this.deleteNetwork(network.id, { docker: true });
  }

  async deleteNetwork(ref: string, options: { docker?: boolean } = {}): Promise<Network> {
    const network = await this.ctx.findNetwork(ref);
    if (network.dockerId && !options.docker) {
      throw new Errors.DockerNetwork(
        network.name,
        network.dockerId.slice(0, 12),
        'remove it with docker network rm',
      );
    }
    // A global network adopted by another host's dockerd: that host's Docker lets go first.
    const [elsewhere] = network.scope === 'global' ? await this.ctx.state.dockerAdoptions(network.id) : [];
    if (elsewhere)
      throw new Errors.DockerNetwork(
        network.name,
        elsewhere.dockerId.slice(0, 12),
        `remove it with docker network rm on host ${elsewhere.hostId}`,
      );
    // Marked first (claims.ts): no endpoint joins once the members are looked at.
    await this.ctx.intents.run(
      'deleteNetwork',
      'delete',
      [networkOwner(network.id)],
      async (end) => {
        await this.refuseIfInUse(network);
        end.started = true;
        await this.removeNetwork(network);
      },
      async () => undefined,
      {
        take: async () => {
          const current = await this.ctx.state.networkVersioned(network.id);
          if (!current || current.network.deleting) throw new Errors.NetworkNotFound(ref);
          return this.ctx.state.markDeleting(current.network, current.version, true);
        },
        release: () => this.unmarkDeleting(network.id),
        landed: async () => ((await this.ctx.state.network(network.id)) ? undefined : { result: undefined }),
      },
    );
    return network;
  }

  /** NETCTL_NETWORK_IN_USE when endpoints are on the network (made, or being made). */
  async refuseIfInUse(network: Network): Promise<void> {
    const members = await this.ctx.state.members(network.id);
    if (!members.length) return;
    const names: string[] = [];
    for (const id of members) {
      const endpoint = await this.ctx.state.endpoint(id);
      const sandbox = endpoint?.sandboxId ? await this.ctx.state.sandbox(endpoint.sandboxId) : undefined;
      const where =
        network.scope === 'global' && !endpoint ? 'on another host, or being connected' : 'being connected';
      names.push(sandbox?.name ?? endpoint?.name ?? `ep-${id.slice(0, 12)} (${where})`);
    }
    throw new Errors.NetworkInUse(network.name, names.join(', '));
  }

  /** The writes that clear a network's deleting mark (none when it is gone). */
  async unmarkDeleting(networkId: string): Promise<ClaimOps> {
    const current = await this.ctx.state.networkVersioned(networkId);
    return current?.network.deleting
      ? this.ctx.state.markDeleting(current.network, current.version, false)
      : NO_CLAIMS;
  }

  /** Idempotent teardown of a network record and everything it owns. */
  async removeNetwork(network: Network): Promise<void> {
    await this.ctx.driver(network.driver).deleteNetwork(network);
    crashPoint('deleteNetwork.driver');
    // Pools held by whoever made the network (Docker) are theirs to release.
    await this.releasePools(network.ipam.external ? [] : network.ipam.poolIds);
    const vni = network.scope === 'global' ? Number(network.driverData.vni) : undefined;
    await this.ctx.state.deleteNetwork(network, vni ? [clusterKeys.vni(vni)] : []);
  }

  /** Remove every network without endpoints; returns their names. */
  async pruneNetworks(): Promise<string[]> {
    const inUse = new Set((await this.ctx.state.endpoints()).map((e) => e.networkId));
    const removed: string[] = [];
    for (const network of await this.ctx.state.networks()) {
      // Docker's networks go with docker network rm (or docker network prune); a
      // cluster's network is not one host's to prune (as swarm networks in Docker).
      if (inUse.has(network.id) || network.dockerId || network.scope === 'global') continue;
      try {
        await this.deleteNetwork(network.id);
      } catch (err) {
        // A connect landed since the listing, or another prune was first: not ours to remove.
        if (isCode(err, Errors.NetworkInUse, Errors.NetworkNotFound)) continue;
        throw err;
      }
      removed.push(network.name);
    }
    return removed;
  }
}

type NetworkRequest = z.output<typeof createNetworkSchema>;

/**
 * The pools a new network asks for, checked: the caller's (external), none
 * for the null IPAM, the ones requested, else one default pool.
 */
function poolConfigs(
  req: NetworkRequest,
  driver: Driver,
  external?: ExternalAddressing,
): PoolConfigRequest[] {
  const nullIpam = req.ipam.driver === NULL_IPAM || driver.capability().addressing === false;
  if (nullIpam && (req.ipam.config.length || external))
    throw new Errors.InvalidRequest('the null IPAM driver takes no subnets');
  const configs: PoolConfigRequest[] = external
    ? external.config
    : nullIpam
      ? []
      : req.ipam.config.length
        ? req.ipam.config
        : [{}];
  if (req.enableIPv6 && !configs.some((c) => c.subnet && parsePrefix(c.subnet).family === 6)) {
    throw new Errors.InvalidRequest('--ipv6 needs an IPv6 --subnet (no default IPv6 pool is configured)');
  }
  for (const c of configs) checkPoolConfig(c);
  return configs;
}

/** A new network's record, its addressing resolved. */
function networkRecord(
  id: string,
  req: NetworkRequest,
  scope: Network['scope'],
  ipam: Network['ipam'],
  dockerId: string | undefined,
): Network {
  return {
    id,
    name: req.name,
    driver: req.driver,
    scope,
    ipam,
    enableIPv6: req.enableIPv6,
    internal: req.internal,
    options: req.options,
    labels: req.labels,
    driverData: {},
    created: new Date().toISOString(),
    ...(dockerId ? { dockerId } : {}),
  };
}
