/**
 * The Controller: the one place that turns a validated request into
 * IPAM reservations, driver calls, sandbox configuration and records —
 * whether the request came from the CLI, the REST API, Docker or CNI.
 *
 * Every multi-step operation runs under an intent (intents.ts): on failure
 * it is undone in place; after a crash, reconcile() undoes or finishes it.
 */
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { type Driver, hasExternalConnectivity } from '../core/driver.js';
import { EndpointInfo, JoinInfo, type NetworkInfo } from '../core/info.js';
import { type IpamDriver, type Reservation, releasesByOwner } from '../core/ipam.js';
import type { Endpoint, IpamPoolConfig, Network, PortMapping, Sandbox } from '../core/model.js';
import {
  type ConnectRequest,
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  type CreateSandboxRequest,
  connectSchema,
  createEndpointSchema,
  createNetworkSchema,
  createSandboxSchema,
  idSchema,
  type ipamPoolSchema,
  type JoinRequest,
  joinSchema,
  type PortRequest,
  portMappingSchema,
  portRequestSchema,
} from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors } from '../errors.js';
import {
  createNetns,
  deleteNetns,
  hasErrorCode,
  linkSetUp,
  macFromIpv4,
  matchCidr,
  Netlink,
  netnsPath,
  parsePrefix,
  pinCurrentNetns,
  randomMac,
} from '../kernel/index.js';
import { log } from '../log.js';
import { endpointOwner, networkOwner, sandboxOwner } from '../owners.js';
import { packageVersion } from '../paths.js';
import { type HostEntry, removeSandboxEtc, writeSandboxEtc, writeSandboxHosts } from '../sandbox/etc.js';
import { bootId, isStale, netnsInode, processStart } from '../sandbox/identity.js';
import { configureInterface } from '../sandbox/iface.js';
import { claimNetns } from '../sandbox/owner.js';
import type {
  CheckReport,
  GcAction,
  GcReport,
  Health,
  NetctlApi,
  NetworkDetails,
  SandboxDetails,
} from './api.js';
import { checkNetwork, repairNetworks } from './check.js';
import { Gate } from './gate.js';
import { crashPoint, type Intent, newIntent } from './intents.js';
import { collectGarbage } from './reconcile.js';
import { checkSandboxKey } from './sandbox-key.js';
import type { IntentEnd, State } from './state.js';
import { checkSubnet, type HostRoutes, routeSubnets } from './subnets.js';

export const newId = () => randomBytes(32).toString('hex');

/** Named netns netctl makes for its own sandboxes. */
export const sandboxNetnsName = (name: string) => `netctl-${name}`;

/** Where the host's own namespace is pinned for sandboxes on the host network. */
export const HOST_NETNS_PIN = '/run/netctl/host.netns';

export interface ControllerOptions {
  state: State;
  ipam: IpamDriver;
  drivers: Driver[];
  /** How the store is named in health reports (never with credentials). */
  storeName: string;
  /** The host's routes a network's subnet must not overlap (subnets.ts); none when absent. */
  hostRoutes?: HostRoutes;
}

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

/** What a join tells the caller (Docker's JoinResponse). */
export interface JoinResult {
  endpoint: Endpoint;
  join: JoinInfo;
}

/** The MAC asked for, else one that follows the IPv4 address (macFromIpv4), else a random one. */
function endpointMac(asked: string | undefined, ipv4: string | undefined): string {
  return asked?.toLowerCase() ?? (ipv4 ? macFromIpv4(ipv4) : randomMac());
}

/** Host ports picked for `-p 80` (Docker's port allocator range). */
export const EPHEMERAL_PORTS = { first: 49153, last: 60999 };

export class Controller implements NetctlApi {
  readonly state: State;
  readonly ipam: IpamDriver;
  readonly drivers: Map<string, Driver>;
  private readonly storeName: string;
  private readonly hostRoutes: HostRoutes;
  /** Operations side by side, gc alone (gate.ts). */
  private readonly gate = new Gate();
  /** /etc/hosts refreshes, one at a time (see refreshHosts). */
  private hostsLane: Promise<unknown> = Promise.resolve();
  /** Port publishing, one at a time: a free host port is picked and taken in one turn. */
  private portsLane: Promise<unknown> = Promise.resolve();

  constructor(options: ControllerOptions) {
    this.state = options.state;
    this.ipam = options.ipam;
    this.drivers = new Map(options.drivers.map((d) => [d.type, d]));
    this.storeName = options.storeName;
    this.hostRoutes = options.hostRoutes ?? (async () => []);
  }

  async health(): Promise<Health> {
    const [networks, endpoints, sandboxes] = await Promise.all([
      this.state.networks(),
      this.state.endpoints(),
      this.state.sandboxes(),
    ]);
    return {
      version: packageVersion,
      store: this.storeName,
      storeReachable: true,
      networks: networks.length,
      endpoints: endpoints.length,
      sandboxes: sandboxes.length,
    };
  }

  gc(options: { dryRun: boolean }): Promise<GcReport> {
    return this.gate.exclusive(() => collectGarbage(this, options.dryRun));
  }

  // check and repair (check.ts): CNI CHECK and `netctl repair`.
  check(network: string, sandbox?: string): Promise<CheckReport> {
    return checkNetwork(this, network, sandbox);
  }

  /** Alone, like gc: an operation changing the network meanwhile would race the restored rules. */
  repair(network?: string): Promise<GcAction[]> {
    return this.gate.exclusive(() => repairNetworks(this, network));
  }

  private driver(type: string): Driver {
    const driver = this.drivers.get(type);
    if (!driver) throw new Errors.DriverNotFound(type, [...this.drivers.keys()].join(', '));
    return driver;
  }

  private async withIntent<T>(
    op: string,
    kind: Intent['kind'],
    owners: string[],
    run: (end: IntentEnd) => Promise<T>,
    undo: () => Promise<void>,
  ): Promise<T> {
    return this.gate.shared(async () => {
      const intent = newIntent(op, kind, owners);
      await this.state.putIntent(intent);
      // run may end the intent with its last record write (State's IntentEnd).
      const end: IntentEnd = { id: intent.id, ended: false };
      try {
        const result = await run(end);
        if (!end.ended) await this.state.deleteIntent(intent.id);
        return result;
      } catch (err) {
        try {
          await undo();
          if (!end.ended) await this.state.deleteIntent(intent.id);
        } catch (undoErr) {
          // Leave the intent: reconcile retries the undo later.
          log.error({ err: undoErr, op, owners }, 'undo failed; reconcile will finish it');
        }
        throw err;
      }
    });
  }

  // ---------------------------------------------------------------- networks

  async findNetwork(ref: string): Promise<Network> {
    const byName = await this.state.networkIdByName(ref);
    const network = await this.state.network(byName ?? ref);
    if (network) return network;
    // Docker-style id prefixes (at least 6 hex digits), unambiguous only.
    if (/^[0-9a-f]{6,63}$/.test(ref)) {
      const matches = (await this.state.networks()).filter(
        (n) => n.id.startsWith(ref) || n.dockerId?.startsWith(ref),
      );
      if (matches.length === 1 && matches[0]) return matches[0];
    }
    throw new Errors.NetworkNotFound(ref);
  }

  async listNetworks(): Promise<Network[]> {
    return (await this.state.networks()).sort((a, b) => a.name.localeCompare(b.name));
  }

  async inspectNetwork(ref: string): Promise<NetworkDetails> {
    const network = await this.findNetwork(ref);
    const sandboxes = new Map((await this.state.sandboxes()).map((s) => [s.id, s]));
    const endpoints = (await this.state.endpoints())
      .filter((e) => e.networkId === network.id)
      .map((e) => {
        const sandboxName = e.sandboxId ? sandboxes.get(e.sandboxId)?.name : undefined;
        return sandboxName ? { ...e, sandboxName } : e;
      });
    return { network, endpoints };
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

  private async addNetwork(
    req: z.output<typeof createNetworkSchema>,
    external?: ExternalAddressing,
  ): Promise<Network> {
    const driver = this.driver(req.driver);
    if (await this.state.networkIdByName(req.name)) throw new Errors.NetworkExists(req.name);
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
    const routes = configs.length ? await this.hostRoutes() : [];
    for (const c of configs) if (c.subnet) checkSubnet(c.subnet, routes);

    const id = external?.id ?? newId();
    driver.checkOptions?.({ id, options: req.options, internal: req.internal });
    const owner = networkOwner(id);
    const scope = driver.capability().dataScope;
    const pools: { poolId: string; reservations: Reservation[] }[] = [];
    let network: Network | undefined;
    return this.withIntent(
      'createNetwork',
      'create',
      [owner],
      async () => {
        const resolved: Network['ipam']['config'] = external ? external.config : [];
        if (!external) {
          const spaces = await this.ipam.defaultAddressSpaces();
          for (const c of configs) {
            const v6 = c.subnet ? parsePrefix(c.subnet).family === 6 : false;
            const pool = await this.ipam.requestPool({
              addressSpace: scope === 'global' ? spaces.global : spaces.local,
              ...(c.subnet ? { pool: c.subnet } : {}),
              ...(c.ipRange ? { subPool: c.ipRange } : {}),
              v6,
              owner,
              // A default pool steers around the host's routes (subnets.ts).
              ...(c.subnet ? {} : { avoid: routeSubnets(routes).map((r) => r.cidr) }),
            });
            const held = { poolId: pool.poolId, reservations: [] as Reservation[] };
            pools.push(held);
            crashPoint('createNetwork.pool');
            const gateway = await this.ipam.requestAddress({
              poolId: pool.poolId,
              ...(c.gateway ? { address: c.gateway } : {}),
              owner,
            });
            held.reservations.push(gateway);
            for (const address of Object.values(c.auxAddresses ?? {})) {
              held.reservations.push(await this.ipam.requestAddress({ poolId: pool.poolId, address, owner }));
            }
            resolved.push({ ...c, subnet: pool.pool, gateway: parsePrefix(gateway.address).ip });
          }
        }
        network = {
          id,
          name: req.name,
          driver: req.driver,
          scope,
          ipam: external
            ? {
                driver: external.ipamDriver,
                options: external.ipamOptions ?? {},
                config: resolved,
                poolIds: external.poolIds,
                external: true,
              }
            : {
                driver: req.ipam.driver,
                options: req.ipam.options,
                config: resolved,
                poolIds: pools.map((p) => p.poolId),
              },
          enableIPv6: req.enableIPv6,
          internal: req.internal,
          options: req.options,
          labels: req.labels,
          driverData: {},
          created: new Date().toISOString(),
          ...(external?.dockerId ? { dockerId: external.dockerId } : {}),
        };
        const created = network;
        const info: NetworkInfo = {
          network,
          setDriverData: (k, v) => {
            created.driverData[k] = v;
          },
        };
        crashPoint('createNetwork.driver');
        await driver.createNetwork(info);
        crashPoint('createNetwork.record');
        await this.state.createNetwork(network);
        return network;
      },
      async () => {
        if (network) await driver.deleteNetwork(network);
        for (const pool of pools.reverse()) {
          for (const r of pool.reservations) await this.ipam.releaseAddress(pool.poolId, r.address);
          await this.ipam.releasePool(pool.poolId);
        }
      },
    );
  }

  /** The netctl network that Docker network dockerId is: one Docker made (same id) or one it adopted. */
  async findDockerNetwork(dockerId: string): Promise<Network | undefined> {
    const own = await this.state.network(dockerId);
    if (own?.dockerId === dockerId) return own;
    const id = await this.state.networkIdByDockerId(dockerId);
    return id ? this.state.network(id) : undefined;
  }

  /**
   * Record that a netctl network is Docker network dockerId (Docker adopted
   * it), or with undefined that it no longer is. The network stays.
   */
  async setDockerNetwork(ref: string, dockerId: string | undefined): Promise<Network> {
    const network = await this.findNetwork(ref);
    if (dockerId) parseRequest(idSchema, dockerId);
    if (dockerId && network.dockerId && network.dockerId !== dockerId)
      throw new Errors.NotAdoptable(
        network.name,
        dockerId,
        `it is Docker network ${network.dockerId} already`,
      );
    const updated = await this.state.setDockerId(network.id, dockerId);
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
    const network = await this.findNetwork(ref);
    if (network.dockerId && !options.docker) {
      throw new Errors.DockerNetwork(
        network.name,
        network.dockerId.slice(0, 12),
        'remove it with docker network rm',
      );
    }
    const { endpoints } = await this.inspectNetwork(network.id);
    if (endpoints.length) {
      throw new Errors.NetworkInUse(network.name, endpoints.map((e) => e.sandboxName ?? e.name).join(', '));
    }
    await this.withIntent(
      'deleteNetwork',
      'delete',
      [networkOwner(network.id)],
      () => this.removeNetwork(network),
      async () => undefined,
    );
    return network;
  }

  /** Idempotent teardown of a network record and everything it owns. */
  async removeNetwork(network: Network): Promise<void> {
    await this.driver(network.driver).deleteNetwork(network);
    crashPoint('deleteNetwork.driver');
    // Pools held by whoever made the network (Docker) are theirs to release.
    for (const poolId of network.ipam.external ? [] : network.ipam.poolIds) {
      for (const r of await this.ipam.listReservations(poolId))
        await this.ipam.releaseAddress(poolId, r.address);
      await this.ipam.releasePool(poolId);
    }
    await this.state.deleteNetwork(network);
  }

  /** Remove every network without endpoints; returns their names. */
  async pruneNetworks(): Promise<string[]> {
    const inUse = new Set((await this.state.endpoints()).map((e) => e.networkId));
    const removed: string[] = [];
    for (const network of await this.state.networks()) {
      // Docker's networks go with docker network rm (or docker network prune).
      if (inUse.has(network.id) || network.dockerId) continue;
      await this.deleteNetwork(network.id);
      removed.push(network.name);
    }
    return removed;
  }

  // --------------------------------------------------------------- sandboxes

  async findSandbox(ref: string): Promise<Sandbox> {
    const byName = await this.state.sandboxIdByName(ref);
    const sandbox = await this.state.sandbox(byName ?? ref);
    if (sandbox) return sandbox;
    if (/^[0-9a-f]{6,63}$/.test(ref)) {
      const matches = (await this.state.sandboxes()).filter((s) => s.id.startsWith(ref));
      if (matches.length === 1 && matches[0]) return matches[0];
    }
    throw new Errors.SandboxNotFound(ref);
  }

  async listSandboxes(): Promise<Sandbox[]> {
    return (await this.state.sandboxes()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * A sandbox: a netns netctl makes, one someone else made (`key`), or a
   * shared one. With `netnsLater`, `key` names a netns its runtime makes
   * only after the join (Docker binds the container's netns at its
   * SandboxKey when the container starts): it is not checked, and the
   * runtime says when the sandbox goes (Sandbox.netnsInode 0).
   */
  async createSandbox(input: CreateSandboxRequest, options: { netnsLater?: boolean } = {}): Promise<Sandbox> {
    const req = parseRequest(createSandboxSchema, input);
    if (options.netnsLater && !req.key)
      throw new Errors.InvalidRequest('a sandbox made before its netns needs a key');
    let madeNetns = false; // the undo deletes only a netns made here
    if (await this.state.sandboxIdByName(req.name)) throw new Errors.SandboxExists(req.name);
    if (req.key && req.netnsOf) throw new Errors.InvalidRequest('give either key or netnsOf, not both');
    const id = newId();
    const shared = req.netnsOf ? await this.sharedNetns(req.netnsOf) : undefined;
    const ownsNetns = req.key === undefined && shared === undefined;
    const key = req.key ?? shared?.key ?? netnsPath(sandboxNetnsName(req.name));
    if (req.key) checkSandboxKey(req.key, options);
    const create = async () => {
      if (ownsNetns) {
        // Its owner tag first, so gc can find the netns should we die before the record.
        claimNetns(id, key);
        try {
          createNetns(sandboxNetnsName(req.name));
        } catch (err) {
          // A netns of that name that no sandbox of ours made: not ours to take.
          if (hasErrorCode(err, 'EEXIST')) throw new Errors.NotOwned(`netns ${key}`);
          throw err;
        }
        madeNetns = true;
        const h = Netlink.open(key);
        try {
          await linkSetUp(h, 'lo');
        } finally {
          h.close();
        }
      }
      const inode = options.netnsLater ? 0 : netnsInode(key);
      if (inode === undefined) throw new Errors.SandboxNotFound(key);
      const hostname = req.hostname ?? req.name;
      const sandbox: Sandbox = {
        id,
        name: req.name,
        key,
        netnsInode: inode,
        bootId: bootId(),
        ownsNetns,
        ...(shared ? { netnsOf: shared.of } : {}),
        hostname,
        endpointIds: [],
        labels: req.labels,
        created: new Date().toISOString(),
      };
      if (ownsNetns) writeSandboxEtc(id, hostname, []);
      crashPoint('createSandbox.record');
      await this.state.createSandbox(sandbox);
      return sandbox;
    };
    // A sandbox in someone else's netns is its record alone, written in one
    // commit: nothing to undo, so no intent (two commits less per CNI ADD).
    if (!ownsNetns) return this.gate.shared(create);
    return this.withIntent('createSandbox', 'create', [sandboxOwner(id)], create, async () => {
      // Only a netns made here: the name may have been taken by someone else's (EEXIST).
      if (madeNetns) deleteNetns(key);
      removeSandboxEtc(id);
    });
  }

  /** The namespace a sandbox shares: the host's (pinned once) or another sandbox's. */
  private async sharedNetns(netnsOf: string): Promise<{ key: string; of: string }> {
    if (netnsOf === 'host') return { key: pinCurrentNetns(HOST_NETNS_PIN), of: 'host' };
    const target = await this.findSandbox(netnsOf.slice('container:'.length));
    if (target.netnsOf && target.netnsOf !== 'host') {
      return this.sharedNetns(`container:${target.netnsOf}`); // share with the owner, not a sharer
    }
    return { key: target.key, of: target.netnsOf ?? target.id };
  }

  async deleteSandbox(ref: string): Promise<Sandbox> {
    const sandbox = await this.findSandbox(ref);
    // Likewise its removal, once its endpoints (each under its own intent)
    // are gone: a crash in between leaves a record the runtime's retried
    // DEL, or gc once the netns is gone, removes.
    if (!sandbox.ownsNetns && !sandbox.pid) await this.gate.shared(() => this.removeSandbox(sandbox));
    else
      await this.withIntent(
        'deleteSandbox',
        'delete',
        [sandboxOwner(sandbox.id)],
        () => this.removeSandbox(sandbox),
        async () => undefined,
      );
    return sandbox;
  }

  /** Idempotent teardown of a sandbox, its endpoints and its process. */
  async removeSandbox(sandbox: Sandbox): Promise<void> {
    for (const endpoint of await this.state.sandboxEndpoints(sandbox)) await this.removeEndpoint(endpoint);
    // After a reboot or with a reused path, the pid and the netns at the
    // path are others' now: stop and delete only what is still the sandbox's.
    if (sandbox.pid && sandbox.bootId === bootId() && processStart(sandbox.pid) === sandbox.pidStart)
      stopProcess(sandbox.pid);
    if (sandbox.ownsNetns && !isStale(sandbox)) deleteNetns(sandbox.key);
    crashPoint('deleteSandbox.netns');
    removeSandboxEtc(sandbox.id);
    await this.state.deleteSandbox(sandbox);
  }

  async inspectSandbox(ref: string): Promise<SandboxDetails> {
    const sandbox = await this.findSandbox(ref);
    const networks = new Map((await this.state.networks()).map((n) => [n.id, n.name]));
    // From the sandbox's own list, not a scan of every endpoint: a CNI ADD and DEL inspect one each.
    const endpoints = (await this.state.sandboxEndpoints(sandbox)).map((e) => ({
      ...e,
      networkName: networks.get(e.networkId) ?? e.networkId,
    }));
    return { sandbox, endpoints };
  }

  async setSandboxPid(ref: string, pid: number): Promise<Sandbox> {
    const sandbox = await this.findSandbox(ref);
    const pidStart = processStart(pid);
    const updated = await this.state.updateSandbox(sandbox.id, (s) => ({
      ...s,
      pid,
      ...(pidStart !== undefined ? { pidStart } : {}),
    }));
    if (!updated) throw new Errors.SandboxNotFound(ref);
    return updated;
  }

  // --------------------------------------------------------------- endpoints

  /**
   * Make an endpoint and join it to a sandbox in one step (the CLI's, and
   * the REST API's): createEndpoint, joinEndpoint and publishPorts under
   * one intent, the interface made in the sandbox with its final name.
   */
  async connect(input: ConnectRequest): Promise<Endpoint> {
    const req = parseRequest(connectSchema, input);
    const network = await this.findNetwork(req.network);
    const sandbox = await this.findSandbox(req.sandbox);
    const driver = this.driver(network.driver);
    checkJoinable(network, sandbox);
    // Only the sandbox's own endpoints: listing every endpoint here would make
    // each join cost more than the one before it.
    const sandboxEndpoints = await this.state.sandboxEndpoints(sandbox);
    if (sandboxEndpoints.some((e) => e.networkId === network.id)) {
      throw new Errors.EndpointExists(sandbox.name, network.name);
    }
    // Host ports are shared by every network: a request that publishes some
    // is checked against all endpoints (it lists the firewall's rules anyway).
    if (req.portMappings.length) checkPortConflicts(req.portMappings, await this.state.endpoints());
    const ifname = req.ifname ?? `eth${sandboxEndpoints.length}`;

    const id = newId();
    const owner = endpointOwner(id);
    const reservations: Reservation[] = [];
    let endpoint: Endpoint | undefined;
    return this.withIntent(
      'connect',
      'create',
      [owner],
      async (end) => {
        const addresses = await this.endpointAddresses(
          network,
          owner,
          { ...req, addresses: 'reserve' },
          reservations,
        );
        crashPoint('connect.address');
        endpoint = await this.makeEndpoint(network, driver, {
          id,
          networkId: network.id,
          name: sandbox.name,
          sandboxId: sandbox.id,
          ifname,
          mac: endpointMac(req.mac, addresses.ipv4),
          ...addresses,
          portMappings: req.portMappings,
          aliases: req.aliases,
          driverData: {},
          created: new Date().toISOString(),
        });
        await this.plug(network, driver, endpoint, sandbox, ifname, 'in-place', sandboxEndpoints.length > 0);
        crashPoint('connect.join');
        if (req.portMappings.length && hasExternalConnectivity(driver)) {
          await driver.programExternalConnectivity(network, endpoint, req.portMappings);
        }
        crashPoint('connect.record');
        await this.state.addEndpoint(endpoint, end);
        await this.refreshHosts(network.id);
        return endpoint;
      },
      async () => {
        if (endpoint) await this.unplug(network, endpoint);
        for (const r of reservations) await this.ipam.releaseAddress(r.poolId, r.address);
      },
    );
  }

  async disconnect(networkRef: string, sandboxRef: string): Promise<Endpoint> {
    const network = await this.findNetwork(networkRef);
    const sandbox = await this.findSandbox(sandboxRef);
    const endpoint = (await this.state.sandboxEndpoints(sandbox)).find((e) => e.networkId === network.id);
    if (!endpoint) throw new Errors.EndpointNotFound(`${sandbox.name} on ${network.name}`);
    await this.removeEndpoint(endpoint);
    return endpoint;
  }

  // The parts of connect and disconnect, one call each, for a caller that
  // drives an endpoint's life step by step (Docker: CreateEndpoint, Join,
  // ProgramExternalConnectivity, RevokeExternalConnectivity, Leave,
  // DeleteEndpoint). Each runs under its own intent.

  async findEndpoint(id: string): Promise<Endpoint> {
    const endpoint = await this.state.endpoint(id);
    if (!endpoint) throw new Errors.EndpointNotFound(id);
    return endpoint;
  }

  /**
   * An endpoint on a network, joined to no sandbox yet. With an id that
   * exists on the same network, that endpoint (the caller repeating itself).
   */
  async createEndpoint(input: CreateEndpointRequest): Promise<Endpoint> {
    const req = parseRequest(createEndpointSchema, input);
    const network = await this.findNetwork(req.network);
    const driver = this.driver(network.driver);
    const id = req.id ?? newId();
    const existing = req.id ? await this.state.endpoint(id) : undefined;
    if (existing) {
      if (existing.networkId === network.id) return existing;
      throw new Errors.EndpointExists(id, network.name);
    }
    const owner = endpointOwner(id);
    const reservations: Reservation[] = [];
    let endpoint: Endpoint | undefined;
    return this.withIntent(
      'createEndpoint',
      'create',
      [owner],
      async () => {
        const addresses = await this.endpointAddresses(network, owner, req, reservations);
        endpoint = await this.makeEndpoint(network, driver, {
          id,
          networkId: network.id,
          name: req.name ?? `ep-${id.slice(0, 12)}`,
          mac: endpointMac(req.mac, addresses.ipv4),
          ...addresses,
          portMappings: [],
          aliases: req.aliases,
          driverData: {},
          created: new Date().toISOString(),
          ...(req.addresses === 'given' ? { externalAddresses: true } : {}),
        });
        await this.state.addEndpoint(endpoint);
        return endpoint;
      },
      async () => {
        if (endpoint) await driver.deleteEndpoint(network, endpoint);
        for (const r of reservations) await this.ipam.releaseAddress(r.poolId, r.address);
      },
    );
  }

  /**
   * Join an endpoint made by createEndpoint to a sandbox. 'host-side'
   * placement leaves the interface in the host namespace for the caller to
   * move and configure (the result names it); 'in-place' makes it in the
   * sandbox, configured. Joining the same sandbox again plugs it anew.
   */
  async joinEndpoint(endpointId: string, input: JoinRequest): Promise<JoinResult> {
    const req = parseRequest(joinSchema, input);
    const endpoint = await this.findEndpoint(endpointId);
    const network = await this.networkOf(endpoint);
    const sandbox = await this.findSandbox(req.sandbox);
    const driver = this.driver(network.driver);
    checkJoinable(network, sandbox);
    if (endpoint.sandboxId && endpoint.sandboxId !== sandbox.id) {
      throw new Errors.InvalidRequest(
        `endpoint ${endpoint.name} is joined to another sandbox: leave it first`,
      );
    }
    const others = (await this.state.sandboxEndpoints(sandbox)).filter((e) => e.id !== endpoint.id);
    if (others.some((e) => e.networkId === network.id))
      throw new Errors.EndpointExists(sandbox.name, network.name);
    const ifname = req.ifname ?? `eth${others.length}`;
    const joined: Endpoint = { ...endpoint, sandboxId: sandbox.id };
    return this.withIntent(
      'join',
      'create',
      [endpointOwner(endpoint.id)],
      async () => {
        const join = await this.plug(
          network,
          driver,
          joined,
          sandbox,
          ifname,
          req.placement,
          others.length > 0,
        );
        await this.state.addEndpoint(joined);
        await this.refreshHosts(network.id);
        return { endpoint: joined, join };
      },
      () => driver.leave(network, joined, sandboxInfo(sandbox)),
    );
  }

  /**
   * Publish an endpoint's ports (replacing any it has): host ports resolved
   * as portRequestSchema says, checked against every endpoint's, recorded
   * before the rules are made (so reconcile restores what a crash left
   * half-made).
   */
  async publishPorts(endpointId: string, input: PortRequest[]): Promise<Endpoint> {
    const requests = input.map((p) => parseRequest(portRequestSchema, p));
    const run = this.portsLane.then(async () => {
      const endpoint = await this.findEndpoint(endpointId);
      const network = await this.networkOf(endpoint);
      const driver = this.driver(network.driver);
      if (!hasExternalConnectivity(driver)) {
        if (requests.length) throw new Errors.InvalidRequest(`driver ${driver.type} publishes no ports`);
        return endpoint;
      }
      const others = (await this.state.endpoints()).filter((e) => e.id !== endpoint.id);
      const ports = resolvePorts(requests, others);
      const published: Endpoint = { ...endpoint, portMappings: ports };
      return this.withIntent(
        'publish',
        'create',
        [endpointOwner(endpoint.id)],
        async () => {
          if (endpoint.portMappings.length) await driver.revokeExternalConnectivity(network, endpoint);
          await this.state.putEndpoint(published);
          await driver.programExternalConnectivity(network, published, ports);
          return published;
        },
        async () => {
          await driver.revokeExternalConnectivity(network, published);
          await this.state.putEndpoint({ ...endpoint, portMappings: [] });
        },
      );
    });
    this.portsLane = run.catch(() => undefined);
    return run;
  }

  /** Withdraw an endpoint's published ports. Idempotent. */
  async unpublishPorts(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.findEndpoint(endpointId);
    if (!endpoint.portMappings.length) return endpoint;
    const network = await this.networkOf(endpoint);
    const driver = this.driver(network.driver);
    const unpublished: Endpoint = { ...endpoint, portMappings: [] };
    return this.withIntent(
      'unpublish',
      'create',
      [endpointOwner(endpoint.id)],
      async () => {
        if (hasExternalConnectivity(driver)) await driver.revokeExternalConnectivity(network, endpoint);
        await this.state.putEndpoint(unpublished);
        return unpublished;
      },
      async () => undefined,
    );
  }

  /**
   * Unplug an endpoint from its sandbox; it stays, joined to nothing, with
   * its addresses. Idempotent: an endpoint joined to nothing is done.
   */
  async leaveEndpoint(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.findEndpoint(endpointId);
    if (!endpoint.sandboxId) return endpoint;
    const network = await this.networkOf(endpoint);
    const driver = this.driver(network.driver);
    const sandbox = await this.state.sandbox(endpoint.sandboxId);
    return this.withIntent(
      'leave',
      'delete',
      [endpointOwner(endpoint.id)],
      async () => {
        if (endpoint.portMappings.length && hasExternalConnectivity(driver)) {
          await driver.revokeExternalConnectivity(network, endpoint);
        }
        await driver.leave(network, endpoint, sandbox ? sandboxInfo(sandbox) : NO_SANDBOX);
        const left = await this.state.detachEndpoint({ ...endpoint, portMappings: [] });
        await this.refreshHosts(network.id, endpoint.sandboxId);
        return left;
      },
      async () => undefined,
    );
  }

  /** Remove an endpoint (leaving its sandbox first) and what it holds. */
  async deleteEndpoint(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.findEndpoint(endpointId);
    await this.removeEndpoint(endpoint);
    return endpoint;
  }

  private async networkOf(endpoint: Endpoint): Promise<Network> {
    const network = await this.state.network(endpoint.networkId);
    if (!network) throw new Errors.NetworkNotFound(endpoint.networkId);
    return network;
  }

  /**
   * A new endpoint's addresses: given by the caller (with the prefix length
   * of their subnet), or reserved from the network's pools for owner — the
   * ones asked for, else the next free. What is reserved is pushed on
   * `reservations` as it is, for the caller's undo.
   */
  private async endpointAddresses(
    network: Network,
    owner: string,
    req: { addresses: 'given' | 'reserve'; ipv4?: string | undefined; ipv6?: string | undefined },
    reservations: Reservation[],
  ): Promise<{ ipv4?: string; ipv6?: string }> {
    const addresses: { ipv4?: string; ipv6?: string } = {};
    if (req.addresses === 'given') {
      for (const [family, cidr] of [
        [4, req.ipv4],
        [6, req.ipv6],
      ] as const) {
        if (!cidr) continue;
        const { ip, prefixLength } = parsePrefix(cidr);
        const pool = network.ipam.config.find(
          (c) => matchCidr(ip, c.subnet) && parsePrefix(c.subnet).prefixLength === prefixLength,
        );
        if (!pool)
          throw new Errors.AddressOutsidePool(cidr, network.ipam.config.map((c) => c.subnet).join(', '));
        if (family === 4) addresses.ipv4 = cidr;
        else addresses.ipv6 = cidr;
      }
      return addresses;
    }
    if (network.ipam.external && network.ipam.poolIds.length === 0 && network.ipam.config.length) {
      throw new Errors.DockerNetwork(
        network.name,
        network.dockerId?.slice(0, 12) ?? '?',
        `its addresses come from Docker's built-in IPAM: connect containers through Docker, or create it with --ipam-driver netctl`,
      );
    }
    for (const [i, pool] of network.ipam.config.entries()) {
      const family = parsePrefix(pool.subnet).family;
      const given = family === 4 ? req.ipv4 : req.ipv6;
      const wanted = given?.includes('/') ? parsePrefix(given).ip : given;
      const poolId = network.ipam.poolIds[i] as string;
      if (wanted) checkInSubnet(wanted, pool.subnet);
      const r = await this.ipam.requestAddress({ poolId, ...(wanted ? { address: wanted } : {}), owner });
      reservations.push(r);
      if (family === 4) addresses.ipv4 ??= r.address;
      else addresses.ipv6 ??= r.address;
    }
    return addresses;
  }

  /** The driver's side of a new endpoint (its MAC, its data); the record is the caller's to write. */
  private async makeEndpoint(network: Network, driver: Driver, proposed: Endpoint): Promise<Endpoint> {
    const info = new EndpointInfo(proposed, proposed.mac);
    await driver.createEndpoint(network, info);
    return { ...proposed, mac: info.mac, driverData: info.driverData };
  }

  /** Plug an endpoint into a sandbox; in place, configure its interface there too. */
  private async plug(
    network: Network,
    driver: Driver,
    endpoint: Endpoint,
    sandbox: Sandbox,
    ifname: string,
    placement: 'in-place' | 'host-side',
    hasGateway: boolean,
  ): Promise<JoinInfo> {
    const join = new JoinInfo();
    await driver.join(network, endpoint, { ...sandboxInfo(sandbox), ifname, placement }, join);
    if (placement === 'in-place' && join.plugged) {
      await this.configureSandbox(sandbox.key, ifname, endpoint, join, hasGateway);
    }
    return join;
  }

  /** Kernel side of an endpoint: ports, link, driver state. Idempotent. */
  private async unplug(network: Network, endpoint: Endpoint): Promise<void> {
    const driver = this.driver(network.driver);
    if (endpoint.portMappings.length && hasExternalConnectivity(driver)) {
      await driver.revokeExternalConnectivity(network, endpoint);
    }
    const sandbox = endpoint.sandboxId ? await this.state.sandbox(endpoint.sandboxId) : undefined;
    await driver.leave(network, endpoint, sandbox ? sandboxInfo(sandbox) : NO_SANDBOX);
    await driver.deleteEndpoint(network, endpoint);
  }

  /** Idempotent removal of an endpoint and everything it holds. */
  async removeEndpoint(endpoint: Endpoint): Promise<void> {
    await this.withIntent(
      'disconnect',
      'delete',
      [endpointOwner(endpoint.id)],
      async (end) => {
        const network = await this.state.network(endpoint.networkId);
        if (network) {
          await this.unplug(network, endpoint);
          crashPoint('disconnect.unplug');
          await this.releaseEndpointAddresses(network, endpoint);
        }
        crashPoint('disconnect.release');
        await this.state.deleteEndpoint(endpoint, end);
        if (network) await this.refreshHosts(network.id, endpoint.sandboxId);
      },
      async () => undefined,
    );
  }

  /** Every reservation the endpoint holds (one per pool of the network). */
  private async releaseEndpointAddresses(network: Network, endpoint: Endpoint): Promise<void> {
    const owner = endpointOwner(endpoint.id);
    // Addresses the caller gave are held by its IPAM (Docker's): not ours to release.
    if (endpoint.externalAddresses) return;
    if (releasesByOwner(this.ipam)) {
      await this.ipam.releaseOwner(owner);
      return;
    }
    for (const [i, poolId] of network.ipam.poolIds.entries()) {
      const address = i === 0 ? endpoint.ipv4 : endpoint.ipv6;
      for (const r of await this.ipam.listReservations(poolId)) {
        if (r.owner === owner || r.address === address) await this.ipam.releaseAddress(poolId, r.address);
      }
    }
  }

  private async configureSandbox(
    key: string,
    ifname: string,
    endpoint: Endpoint,
    join: JoinInfo,
    hasGateway: boolean,
  ): Promise<void> {
    const h = Netlink.open(key);
    try {
      // The first network with a gateway gives the sandbox its default route, as in Docker.
      await configureInterface(h, {
        ifname,
        ...(endpoint.ipv4 ? { ipv4: endpoint.ipv4 } : {}),
        ...(endpoint.ipv6 ? { ipv6: endpoint.ipv6 } : {}),
        // A MAC that follows the address needs no announcing (macFromIpv4).
        announce: !endpoint.ipv4 || endpoint.mac !== macFromIpv4(endpoint.ipv4),
        ...(join.gateway4 && !hasGateway ? { gateway4: join.gateway4 } : {}),
        ...(join.gateway6 && !hasGateway ? { gateway6: join.gateway6 } : {}),
        routes: join.staticRoutes,
      });
    } finally {
      h.close();
    }
  }

  /**
   * Rewrite /etc/hosts of netctl's own sandboxes on the network, so names
   * resolve both ways; one refresh at a time, each from one reading of the
   * records. The sandboxes are found through the hostsfiles index: a network
   * without any (CNI and Docker sandboxes keep their runtime's /etc) costs
   * one empty listing, whatever its size. With n of them, a change rewrites
   * n files of n lines: /etc/hosts as service discovery cannot be flat
   * (Docker replaced it with its embedded DNS in 1.10 for this reason,
   * moby/libnetwork#767). A sandbox that just left the network is no longer
   * in the index: pass it as leaving, its own file loses the network's peers.
   */
  private refreshHosts(networkId: string, leaving?: string): Promise<void> {
    const run = this.hostsLane.then(async () => {
      const ids = await this.state.hostsFileSandboxes(networkId);
      if (leaving && !ids.includes(leaving)) ids.push(leaving);
      const members: Sandbox[] = [];
      for (const id of ids) {
        const sandbox = await this.state.sandbox(id);
        if (sandbox?.ownsNetns) members.push(sandbox);
      }
      if (!members.length) return;
      const endpoints = await this.state.endpoints();
      const onNetwork = new Map<string, Endpoint[]>();
      const ofSandbox = new Map<string, Endpoint[]>();
      const entries = new Map<string, HostEntry>();
      const add = (map: Map<string, Endpoint[]>, k: string, e: Endpoint) => {
        const list = map.get(k);
        if (list) list.push(e);
        else map.set(k, [e]);
      };
      for (const e of endpoints) {
        add(onNetwork, e.networkId, e);
        if (e.sandboxId) add(ofSandbox, e.sandboxId, e);
        // An endpoint is named after its sandbox when it joins (connect).
        if (e.ipv4) entries.set(e.id, { ip: parsePrefix(e.ipv4).ip, names: [e.name, ...e.aliases] });
      }
      for (const sandbox of members) {
        const peers: HostEntry[] = [];
        for (const own of ofSandbox.get(sandbox.id) ?? []) {
          for (const e of onNetwork.get(own.networkId) ?? []) {
            const entry = entries.get(e.id);
            if (entry && e.sandboxId !== sandbox.id) peers.push(entry);
          }
        }
        writeSandboxHosts(sandbox.id, sandbox.hostname, peers);
      }
    });
    this.hostsLane = run.catch(() => undefined);
    return run;
  }
}

const NO_SANDBOX = { id: '', key: '', ifname: '', placement: 'in-place' } as const;

function sandboxInfo(sandbox: Sandbox) {
  return { id: sandbox.id, key: sandbox.key, ifname: '', placement: 'in-place' as const };
}

/** A sandbox sharing another's namespace joins nothing itself; the host's joins only host networks. */
function checkJoinable(network: Network, sandbox: Sandbox): void {
  if (sandbox.netnsOf && sandbox.netnsOf !== 'host') {
    throw new Errors.InvalidRequest(
      `sandbox ${sandbox.name} shares another sandbox's network namespace: connect that one`,
    );
  }
  if ((sandbox.netnsOf === 'host') !== (network.driver === 'host')) {
    throw new Errors.InvalidRequest(
      sandbox.netnsOf === 'host'
        ? `sandbox ${sandbox.name} uses the host's network namespace: it can only join host networks`
        : `only sandboxes in the host's namespace (--network host) can join host network ${network.name}`,
    );
  }
}

function stopProcess(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function checkInSubnet(
  ip: string,
  subnet: string,
  error: typeof Errors.AddressOutsidePool = Errors.AddressOutsidePool,
) {
  if (!matchCidr(ip, subnet)) throw new error(ip, subnet);
}

type PoolConfigRequest = z.output<typeof ipamPoolSchema>;

function checkPoolConfig(c: PoolConfigRequest): void {
  if (!c.subnet) {
    if (c.gateway || c.ipRange || c.auxAddresses) {
      throw new Errors.InvalidRequest('--gateway, --ip-range and --aux-address need a --subnet');
    }
    return;
  }
  if (c.gateway) checkInSubnet(c.gateway, c.subnet, Errors.GatewayOutsideSubnet);
  if (c.ipRange) {
    const range = parsePrefix(c.ipRange);
    const subnet = parsePrefix(c.subnet);
    if (range.prefixLength < subnet.prefixLength || !matchCidr(range.ip, c.subnet)) {
      throw new Errors.InvalidRequest(`--ip-range ${c.ipRange} is not inside subnet ${c.subnet}`);
    }
  }
  for (const ip of Object.values(c.auxAddresses ?? {})) checkInSubnet(ip, c.subnet);
}

function samePorts(a: PortMapping, b: PortMapping): boolean {
  const aEnd = a.hostPortEnd ?? a.hostPort;
  const bEnd = b.hostPortEnd ?? b.hostPort;
  const overlap = a.hostPort <= bEnd && b.hostPort <= aEnd;
  const sameIp = !a.hostIp || !b.hostIp || a.hostIp === b.hostIp;
  return a.proto === b.proto && overlap && sameIp;
}

/**
 * Port requests as mappings: exact ones checked against every other
 * endpoint's, a host port of 0 or a host range for one container port
 * resolved to the first free port (in Docker's ephemeral range for 0).
 */
export function resolvePorts(
  requests: z.output<typeof portRequestSchema>[],
  others: Endpoint[],
): PortMapping[] {
  const taken = others.flatMap((e) => e.portMappings);
  const out: PortMapping[] = [];
  for (const r of requests) {
    const single = (r.containerPortEnd ?? r.containerPort) === r.containerPort;
    const pick =
      r.hostPort === 0
        ? { first: EPHEMERAL_PORTS.first, last: EPHEMERAL_PORTS.last }
        : single && r.hostPortEnd !== undefined && r.hostPortEnd > r.hostPort
          ? { first: r.hostPort, last: r.hostPortEnd }
          : undefined;
    let mapping: PortMapping;
    if (pick) {
      const base = {
        proto: r.proto,
        ...(r.hostIp ? { hostIp: r.hostIp } : {}),
        containerPort: r.containerPort,
      };
      let found: PortMapping | undefined;
      for (let hostPort = pick.first; hostPort <= pick.last && !found; hostPort++) {
        const candidate = { ...base, hostPort };
        if (![...taken, ...out].some((q) => samePorts(candidate, q))) found = candidate;
      }
      if (!found)
        throw new Errors.PortInUse(
          `${r.hostIp ?? '0.0.0.0'}:${pick.first}-${pick.last}/${r.proto}`,
          'others',
        );
      mapping = found;
    } else {
      const { hostPortEnd, containerPortEnd, ...rest } = r;
      mapping = parseRequest(portMappingSchema, {
        ...rest,
        ...(hostPortEnd !== undefined && hostPortEnd !== r.hostPort ? { hostPortEnd } : {}),
        ...(containerPortEnd !== undefined && containerPortEnd !== r.containerPort
          ? { containerPortEnd }
          : {}),
      });
      checkPortConflicts([mapping], others);
      checkPortConflicts([mapping], [{ name: 'this endpoint', portMappings: out } as Endpoint]);
    }
    out.push(mapping);
  }
  return out;
}

function checkPortConflicts(wanted: PortMapping[], endpoints: Endpoint[]): void {
  for (const p of wanted) {
    for (const e of endpoints) {
      const clash = e.portMappings.find((q) => samePorts(p, q));
      if (clash) throw new Errors.PortInUse(`${p.hostIp ?? '0.0.0.0'}:${p.hostPort}/${p.proto}`, e.name);
    }
  }
}
