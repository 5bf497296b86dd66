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
import { type Driver, type ExternalConnectivity, hasExternalConnectivity } from '../core/driver.js';
import { EndpointInfo, JoinInfo, type NetworkInfo } from '../core/info.js';
import {
  type IpamDriver,
  type Pool,
  type PoolRequest,
  type Reservation,
  releasesByOwner,
} from '../core/ipam.js';
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
  portRequestSchema,
} from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors, isCode } from '../errors.js';
import {
  createNetns,
  deleteNetns,
  type Family,
  hasErrorCode,
  isUnusableNetns,
  linkSetUp,
  macFromIpv4,
  matchCidr,
  Netlink,
  netnsPath,
  parsePrefix,
  pinCurrentNetns,
  randomMac,
  routeReplace,
} from '../kernel/index.js';
import { isOutcomeUnknown, KvConflictError, KvError } from '../kv/index.js';
import { log } from '../log.js';
import { endpointOwner, networkOwner, parseOwner, sandboxOwner } from '../owners.js';
import { packageVersion } from '../paths.js';
import { removeSandboxEtc, writeSandboxEtc, writeSandboxHosts } from '../sandbox/etc.js';
import { bootId, isStale, netnsInode, processStart } from '../sandbox/identity.js';
import { configureInterface } from '../sandbox/iface.js';
import { claimNetns, listSandboxRunDirs } from '../sandbox/owner.js';
import { Lane } from '../serial.js';
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
import {
  type ClaimOps,
  claimConflict,
  dropAttachment,
  dropPorts,
  mergeOps,
  NO_CLAIMS,
  portWishes,
  takeAttachment,
  takePorts,
} from './claims.js';
import { defaultRouteOwner } from './default-route.js';
import { Gate } from './gate.js';
import { hostsPeers } from './hosts.js';
import { crashPoint, type Intent, isLive, newIntent } from './intents.js';
import { collectGarbage } from './reconcile.js';
import { checkSandboxKey } from './sandbox-key.js';
import { claimKeys, type IntentEnd, type State } from './state.js';
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

export class Controller implements NetctlApi {
  readonly state: State;
  readonly ipam: IpamDriver;
  readonly drivers: Map<string, Driver>;
  private readonly storeName: string;
  private readonly hostRoutes: HostRoutes;
  /** Intents this process gave up on after an unknown outcome: reconcile's to settle (settle). */
  private readonly abandoned = new Set<string>();
  private closed = false;
  /** Operations side by side, gc alone (gate.ts). */
  private readonly gate = new Gate();
  /** /etc/hosts refreshes, one at a time (see refreshHosts). */
  private readonly hostsLane = new Lane();
  /** Refreshes that failed (networkId/leaving), tried again by one timer. */
  private readonly hostsRetries = new Map<string, { networkId: string; leaving: string | undefined }>();
  private hostsRetry: NodeJS.Timeout | undefined;

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
    options: IntentOptions<T> = {},
  ): Promise<T> {
    return this.gate.shared(async () => {
      const intent = newIntent(op, kind, owners);
      // The claims the operation takes are written with its intent: a clash is
      // found here, before anything is done, and nothing is written.
      try {
        await retryConflicts(
          op,
          async () => this.state.putIntent(intent, options.take ? await options.take() : NO_CLAIMS),
          options.conflict,
        );
      } catch (err) {
        if (isOutcomeUnknown(err)) this.abandon(intent, op); // it may be there, with its claims
        throw err;
      }
      // run may end the intent with its last record write (State's IntentEnd).
      const end: IntentEnd = { id: intent.id, ended: false };
      try {
        const result = await run(end);
        if (!end.ended) await this.state.deleteIntent(intent.id);
        return result;
      } catch (err) {
        // A lost reply may hide a commit: undoing it would leave a record
        // holding what the undo freed. Re-read first.
        if (isOutcomeUnknown(err) && options.landed) {
          const outcome = await this.settle(intent, end, options.landed);
          if (outcome.landed) return outcome.result as T;
          if (outcome.unknown)
            throw new Errors.StoreUnavailable(
              this.storeName,
              `the outcome of ${op} is unknown; netctl settles it once the store answers (${(err as Error).message})`,
            );
        }
        // A delete half-way through is finished, not undone: reconcile does it,
        // soon, in this process (abandon), as it would after a crash.
        if (kind === 'delete' && end.started) {
          this.abandon(intent, op);
          throw err;
        }
        try {
          await undo();
          if (!end.ended)
            await retryConflicts(op, async () =>
              this.state.deleteIntent(intent.id, options.release ? await options.release() : NO_CLAIMS),
            );
        } catch (undoErr) {
          // Leave the intent: reconcile retries the undo later.
          log.error({ err: undoErr, op, owners }, 'undo failed; reconcile will finish it');
          this.abandon(intent, op);
        }
        throw err;
      }
    });
  }

  /**
   * After a failure whose outcome is unknown: did the operation's commit
   * land? Asked again while the store does not answer, for a few seconds;
   * then the intent is left for reconcile (abandon).
   */
  private async settle<T>(
    intent: Intent,
    end: IntentEnd,
    landed: () => Promise<{ result: T } | undefined>,
  ): Promise<{ landed: true; result: T } | { landed: false; unknown: boolean }> {
    const deadline = Date.now() + SETTLE_MS;
    for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
      try {
        const outcome = await landed();
        if (outcome === undefined) return { landed: false, unknown: false };
        // The commit ended the intent with it, unless it was written apart.
        if (!end.ended) await this.state.deleteIntent(intent.id).catch(() => this.abandon(intent, intent.op));
        log.warn(
          { op: intent.op, owners: intent.owners },
          'store reply lost, but the operation had committed',
        );
        return { landed: true, result: outcome.result };
      } catch (err) {
        if (!(err instanceof KvError) || Date.now() + wait > deadline) {
          this.abandon(intent, intent.op);
          return { landed: false, unknown: true };
        }
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /**
   * Give up on an intent in this process: reconcile treats it as the intent
   * of a dead process (undoes what has no record, finishes a delete), and
   * this process runs that reconcile as soon as the store answers.
   */
  private abandon(intent: Intent, op: string): void {
    this.abandoned.add(intent.id);
    log.warn({ op, intent: intent.id }, 'operation left to reconcile');
    this.settleAbandoned();
  }

  /** An intent this process gave up on (settle): reconcile's now. */
  abandonedHere(intent: Intent): boolean {
    return this.abandoned.has(intent.id);
  }

  /** An intent whose operation is still running (and not abandoned here). */
  intentIsLive(intent: Intent): boolean {
    return !this.abandoned.has(intent.id) && isLive(intent);
  }

  private settleTimer: NodeJS.Timeout | undefined;

  /** Reconcile until no abandoned intent is left, backing off while the store is down. */
  private settleAbandoned(delay = 250): void {
    if (this.settleTimer || this.closed) return;
    this.settleTimer = setTimeout(async () => {
      this.settleTimer = undefined;
      try {
        await this.gc({ dryRun: false });
        const left = new Set((await this.state.intents()).map((i) => i.id));
        for (const id of this.abandoned) if (!left.has(id)) this.abandoned.delete(id);
        if (this.abandoned.size) this.settleAbandoned(delay);
      } catch (err) {
        log.warn({ err }, 'settling abandoned operations: store still unavailable');
        this.settleAbandoned(Math.min(delay * 2, 10_000));
      }
    }, delay);
    this.settleTimer.unref();
  }

  /**
   * Stop settling in the background: the process is closing its store. A
   * short-lived one (the CLI without a daemon) settles what it abandoned
   * once more first, while it still can.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.settleTimer);
    clearTimeout(this.hostsRetry);
    if (!this.abandoned.size) return;
    await this.gc({ dryRun: false }).catch((err: unknown) =>
      log.warn({ err }, 'abandoned operations left to the next reconcile'),
    );
  }

  /** A claim's guard on a network: its version now, so a delete that marks it meanwhile fails the claim. */
  private async networkGuard(network: Network): Promise<ClaimOps> {
    const current = await this.state.networkVersioned(network.id);
    if (!current || current.network.deleting) throw new Errors.NetworkNotFound(network.name);
    return this.state.networkGuard(network.id, current.version);
  }

  /** The same for a sandbox an endpoint joins (deleteSandbox with ifEmpty marks it). */
  private async sandboxGuard(sandbox: Sandbox): Promise<ClaimOps> {
    const current = await this.state.sandboxVersioned(sandbox.id);
    if (!current || current.sandbox.deleting) throw new Errors.SandboxNotFound(sandbox.name);
    return this.state.sandboxGuard(sandbox.id, current.version);
  }

  /** Who holds a claim, for messages: the endpoint's name, or an operation still in flight. */
  private async holderName(owner: string): Promise<string> {
    const parsed = parseOwner(owner);
    const endpoint = parsed?.kind === 'ep' ? await this.state.endpoint(parsed.id) : undefined;
    return endpoint?.name ?? `${owner.slice(0, 15)} (in flight)`;
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
    let made: Network | undefined;
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
        // A driver that fails undoes its own steps (runSteps); one that succeeded is undone below.
        await driver.createNetwork(info);
        made = network;
        crashPoint('createNetwork.record');
        await this.state.createNetwork(network);
        return network;
      },
      async () => {
        if (made) await driver.deleteNetwork(made);
        // Every pool the IPAM holds for it, one whose reply was lost too.
        await this.releasePools(
          new Set([...pools.map((p) => p.poolId).reverse(), ...(await this.poolsOf(owner))]),
        );
      },
      { landed: async () => found(await this.state.network(id)) },
    );
  }

  /**
   * A pool for a caller that makes its networks itself (Docker's IPAM
   * protocol): the subnet rules of createNetwork apply (subnets.ts) — a
   * subnet too broad or over a host route is refused, a default one steers
   * around the host's routes.
   */
  async requestPool(request: PoolRequest): Promise<Pool> {
    const routes = await this.hostRoutes();
    if (request.pool) checkSubnet(request.pool, routes);
    return this.ipam.requestPool(
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
        reservations = await this.ipam.listReservations(poolId);
      } catch (err) {
        if (isCode(err, Errors.PoolNotFound)) continue;
        throw err;
      }
      for (const r of reservations) await this.ipam.releaseAddress(poolId, r.address);
      await this.ipam.releasePool(poolId);
    }
  }

  /** The pools the IPAM holds for owner: an undone create's, one whose reply was lost included. */
  private async poolsOf(owner: string): Promise<string[]> {
    return (await this.ipam.listPools()).filter((p) => p.owner === owner).map((p) => p.poolId);
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
    // Marked first (claims.ts): no endpoint joins once the members are looked at.
    await this.withIntent(
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
          const current = await this.state.networkVersioned(network.id);
          if (!current || current.network.deleting) throw new Errors.NetworkNotFound(ref);
          return this.state.markDeleting(current.network, current.version, true);
        },
        release: () => this.unmarkDeleting(network.id),
        landed: async () => ((await this.state.network(network.id)) ? undefined : { result: undefined }),
      },
    );
    return network;
  }

  /** NETCTL_NETWORK_IN_USE when endpoints are on the network (made, or being made). */
  async refuseIfInUse(network: Network): Promise<void> {
    const members = await this.state.members(network.id);
    if (!members.length) return;
    const names: string[] = [];
    for (const id of members) {
      const endpoint = await this.state.endpoint(id);
      const sandbox = endpoint?.sandboxId ? await this.state.sandbox(endpoint.sandboxId) : undefined;
      names.push(sandbox?.name ?? endpoint?.name ?? `ep-${id.slice(0, 12)} (being connected)`);
    }
    throw new Errors.NetworkInUse(network.name, names.join(', '));
  }

  /** The writes that clear a network's deleting mark (none when it is gone). */
  async unmarkDeleting(networkId: string): Promise<ClaimOps> {
    const current = await this.state.networkVersioned(networkId);
    return current?.network.deleting
      ? this.state.markDeleting(current.network, current.version, false)
      : NO_CLAIMS;
  }

  /** Idempotent teardown of a network record and everything it owns. */
  async removeNetwork(network: Network): Promise<void> {
    await this.driver(network.driver).deleteNetwork(network);
    crashPoint('deleteNetwork.driver');
    // Pools held by whoever made the network (Docker) are theirs to release.
    await this.releasePools(network.ipam.external ? [] : network.ipam.poolIds);
    await this.state.deleteNetwork(network);
  }

  /** Remove every network without endpoints; returns their names. */
  async pruneNetworks(): Promise<string[]> {
    const inUse = new Set((await this.state.endpoints()).map((e) => e.networkId));
    const removed: string[] = [];
    for (const network of await this.state.networks()) {
      // Docker's networks go with docker network rm (or docker network prune).
      if (inUse.has(network.id) || network.dockerId) continue;
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
          if (!hasErrorCode(err, 'EEXIST')) throw err;
          // Another sandbox of that name being made (its run dir claims the
          // netns), or a netns that no sandbox of ours made: not ours to take.
          const claimed = listSandboxRunDirs().some((d) => d.id !== id && d.netns === key);
          throw claimed ? new Errors.SandboxExists(req.name) : new Errors.NotOwned(`netns ${key}`);
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

  /**
   * Remove a sandbox with its endpoints. With ifEmpty, only one with no
   * endpoint (made or being made): NETCTL_SANDBOX_IN_USE otherwise — the
   * sandbox is marked first, and a connect's claim compares the version it
   * read, so none joins between the look and the removal (a runtime's
   * cleanup of the sandbox it made never takes another call's endpoint).
   */
  async deleteSandbox(ref: string, options: { ifEmpty?: boolean } = {}): Promise<Sandbox> {
    const sandbox = await this.findSandbox(ref);
    const recordAlone = !sandbox.ownsNetns && !sandbox.pid;
    // A runtime's sandbox, if empty, is its record alone: removed in one
    // commit on the version read with its attachments, so an endpoint
    // committed meanwhile (which rewrites the record) makes it look again;
    // one still being made fails at its own commit and is undone.
    if (options.ifEmpty && recordAlone) {
      await this.gate.shared(() =>
        retryConflicts('deleteSandbox', async () => {
          const current = await this.state.sandboxVersioned(sandbox.id);
          if (!current) return;
          await this.refuseIfAttached(current.sandbox);
          await this.state.deleteSandboxAt(current.sandbox, current.version);
        }),
      );
      return sandbox;
    }
    // Otherwise marked first (claims.ts): no connect joins it from then on,
    // and one in flight is refused at its commit, so no endpoint outlives it.
    const mark = async (): Promise<ClaimOps> => {
      const current = await this.state.sandboxVersioned(sandbox.id);
      if (!current) throw new Errors.SandboxNotFound(ref);
      return this.state.markDeleting(current.sandbox, current.version, true);
    };
    // A runtime's sandbox with endpoints: marked alone (no intent: nothing of
    // its own in the kernel); a crash after the mark leaves a record the
    // runtime's retried DEL, or gc once the netns is gone, removes.
    if (recordAlone) {
      await this.gate.shared(async () => {
        await retryConflicts('deleteSandbox', async () => this.state.applyClaims(await mark()));
        await this.removeSandbox(sandbox);
      });
      return sandbox;
    }
    await this.withIntent(
      options.ifEmpty ? 'deleteSandboxIfEmpty' : 'deleteSandbox',
      'delete',
      [sandboxOwner(sandbox.id)],
      async (end) => {
        if (options.ifEmpty) await this.refuseIfAttached(sandbox);
        end.started = true;
        await this.removeSandbox(sandbox, end);
      },
      async () => undefined,
      {
        take: mark,
        release: () => this.unmarkSandbox(sandbox.id),
        landed: async () => ((await this.state.sandbox(sandbox.id)) ? undefined : { result: undefined }),
      },
    );
    return sandbox;
  }

  /** NETCTL_SANDBOX_IN_USE when endpoints are attached to the sandbox (made, or being made). */
  async refuseIfAttached(sandbox: Sandbox): Promise<void> {
    const owners = await this.state.attachments(sandbox.id);
    if (owners.length)
      throw new Errors.SandboxInUse(sandbox.name, owners.map((o) => o.slice(0, 15)).join(', '));
  }

  /** The writes that clear a sandbox's deleting mark (none when it is gone). */
  async unmarkSandbox(sandboxId: string): Promise<ClaimOps> {
    const current = await this.state.sandboxVersioned(sandboxId);
    return current?.sandbox.deleting
      ? this.state.markDeleting(current.sandbox, current.version, false)
      : NO_CLAIMS;
  }

  /** Idempotent teardown of a sandbox, its endpoints and its process (its record last, ending end). */
  async removeSandbox(sandbox: Sandbox, end?: IntentEnd): Promise<void> {
    // Its endpoints as the record has them now (after a delete's mark: no more come).
    const current = (await this.state.sandbox(sandbox.id)) ?? sandbox;
    for (const endpoint of await this.state.sandboxEndpoints(current)) await this.removeEndpoint(endpoint);
    // After a reboot or with a reused path, the pid and the netns at the
    // path are others' now: stop and delete only what is still the sandbox's.
    if (sandbox.pid && sandbox.bootId === bootId() && processStart(sandbox.pid) === sandbox.pidStart)
      stopProcess(sandbox.pid);
    if (sandbox.ownsNetns && !isStale(sandbox)) deleteNetns(sandbox.key);
    crashPoint('deleteSandbox.netns');
    removeSandboxEtc(sandbox.id);
    await this.state.deleteSandbox(sandbox, end);
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
    if (req.portMappings.length) checkPublishable(network);
    // Only the sandbox's own endpoints: listing every endpoint here would make
    // each join cost more than the one before it.
    const sandboxEndpoints = await this.state.sandboxEndpoints(sandbox);
    const routed = await this.routedFamilies(sandboxEndpoints);
    const id = newId();
    const owner = endpointOwner(id);
    // The next free ethN (a concurrent connect may take it first: claims).
    let ifIndex = sandboxEndpoints.length;
    let ifname = req.ifname ?? `eth${ifIndex}`;
    let ports: PortMapping[] = [];
    const attachment = () => ({ networkId: network.id, sandboxId: sandbox.id, ifname });
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
          portMappings: ports,
          aliases: req.aliases,
          driverData: {},
          created: new Date().toISOString(),
        });
        await this.plug(network, driver, endpoint, sandbox, ifname, 'in-place', routed);
        crashPoint('connect.join');
        if (ports.length && hasExternalConnectivity(driver)) {
          await driver.programExternalConnectivity(network, endpoint, ports);
        }
        crashPoint('connect.record');
        await this.state.addEndpoint(endpoint, end);
        await this.refreshHosts(network.id);
        // Connects and disconnects of the sandbox may have been recorded meanwhile (the
        // owner it saw left, another joined first): the route as the records have it now.
        await this.settleDefaultRoute(sandbox.id, { id: endpoint.id, routed });
        return endpoint;
      },
      async () => {
        if (endpoint) await this.unplug(network, endpoint);
        await this.releaseReserved(owner, reservations);
      },
      {
        // Its place on the network, the sandbox's attachment, ifname and host ports.
        take: async () => {
          const guard = await this.networkGuard(network);
          const taken = await takePorts(this.state.kv, id, portWishes(req.portMappings), [], (o) =>
            this.holderName(o),
          );
          ports = taken.mappings;
          return mergeOps(
            guard,
            await this.sandboxGuard(sandbox),
            takeAttachment(id, attachment()),
            taken.claim,
          );
        },
        conflict: (err) => {
          if (!req.ifname && err.key === claimKeys.ifname(sandbox.id, ifname)) {
            ifname = `eth${++ifIndex}`;
            return undefined;
          }
          return claimConflict(err, { sandbox: sandbox.name, network: network.name, ifname });
        },
        release: async () =>
          mergeOps(
            dropAttachment(id, attachment()),
            await dropPorts(this.state.kv, { id, portMappings: ports }),
          ),
        landed: async () => {
          const made = found(await this.state.endpoint(id));
          if (made) await this.refreshHosts(network.id);
          return made;
        },
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
        await this.releaseReserved(owner, reservations);
      },
      {
        take: async () =>
          mergeOps(await this.networkGuard(network), takeAttachment(id, { networkId: network.id })),
        release: async () => dropAttachment(id, { networkId: network.id }),
        landed: async () => found(await this.state.endpoint(id)),
      },
    );
  }

  /**
   * Give back what an undone operation reserved for owner: every address
   * it holds, found by owner where the IPAM can (so one whose reservation's
   * answer was lost goes too), else the reservations known.
   */
  private async releaseReserved(owner: string, reservations: Reservation[]): Promise<void> {
    if (releasesByOwner(this.ipam)) {
      await this.ipam.releaseOwner(owner);
      return;
    }
    for (const r of reservations) await this.ipam.releaseAddress(r.poolId, r.address);
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
    const ifname = req.ifname ?? `eth${others.length}`;
    // Docker names and moves the interface itself ('host-side'): only an interface made in place holds its name.
    const inPlace = req.placement === 'in-place';
    const joined: Endpoint = { ...endpoint, sandboxId: sandbox.id, ...(inPlace ? { ifname } : {}) };
    const attachment = { networkId: network.id, sandboxId: sandbox.id, ...(inPlace ? { ifname } : {}) };
    // Joined to this sandbox already: it holds the attachment; the join plugs it anew.
    const rejoin = endpoint.sandboxId === sandbox.id;
    let joinInfo: JoinInfo | undefined;
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
          await this.routedFamilies(others),
        );
        joinInfo = join;
        await this.state.addEndpoint(joined);
        await this.refreshHosts(network.id);
        return { endpoint: joined, join };
      },
      () => driver.leave(network, joined, sandboxInfo(sandbox)),
      rejoin
        ? {}
        : {
            take: async () =>
              mergeOps(
                await this.networkGuard(network),
                await this.sandboxGuard(sandbox),
                takeAttachment(endpoint.id, attachment, 'join'),
              ),
            conflict: (err) =>
              claimConflict(err, { sandbox: sandbox.name, network: network.name, ifname: attachment.ifname }),
            release: async () => dropAttachment(endpoint.id, attachment, 'join'),
            landed: async () => {
              const record = await this.state.endpoint(endpoint.id);
              return record?.sandboxId === sandbox.id && joinInfo
                ? { result: { endpoint: record, join: joinInfo } }
                : undefined;
            },
          },
    );
  }

  /**
   * Publish an endpoint's ports (replacing any it has): host ports resolved
   * as portRequestSchema says and claimed in the same transaction as the
   * endpoint's record (claims.ts), before the rules are made — so two
   * callers never both get a port, and reconcile restores what a crash
   * left half-made.
   */
  async publishPorts(endpointId: string, input: PortRequest[]): Promise<Endpoint> {
    const requests = input.map((p) => parseRequest(portRequestSchema, p));
    const endpoint = await this.findEndpoint(endpointId);
    const network = await this.networkOf(endpoint);
    const driver = this.driver(network.driver);
    if (!hasExternalConnectivity(driver)) {
      if (requests.length) throw new Errors.InvalidRequest(`driver ${driver.type} publishes no ports`);
      return endpoint;
    }
    if (requests.length) checkPublishable(network);
    // Set once the ports are claimed: before that the undo has nothing to give back.
    let published: Endpoint | undefined;
    return this.withIntent(
      'publish',
      'create',
      [endpointOwner(endpoint.id)],
      async () => {
        // The record as it was when the ports were claimed: its own ports are the ones replaced.
        const { claimed, replaced } = await retryConflicts('publish', async () => {
          const current = await this.state.endpointVersioned(endpointId);
          if (!current) throw new Errors.EndpointNotFound(endpointId);
          const taken = await takePorts(
            this.state.kv,
            endpointId,
            portWishes(requests),
            current.endpoint.portMappings,
            (o) => this.holderName(o),
          );
          const next = { ...current.endpoint, portMappings: taken.mappings };
          // The claim comes first and the rules after: a lost reply is read back, not guessed.
          await confirmWrite(
            () =>
              this.state.putEndpoint(
                next,
                mergeOps(this.state.endpointGuard(endpointId, current.version), taken.claim),
              ),
            async () => samePorts((await this.state.endpoint(next.id))?.portMappings, next.portMappings),
          );
          return { claimed: next, replaced: current.endpoint };
        });
        published = claimed;
        if (replaced.portMappings.length) await driver.revokeExternalConnectivity(network, replaced);
        await driver.programExternalConnectivity(network, claimed, claimed.portMappings);
        // Another publish, an unpublish or a removal may have followed the
        // claim: what the record no longer holds goes again (its rules are
        // made by whoever replaced it, or by nobody once it is gone). The
        // answer is what this publish did, whatever came after it.
        await this.revokeUnrecorded(network, driver, claimed);
        return claimed;
      },
      async () => {
        if (!published) return;
        await this.withdrawPorts(network, driver, published.id, published.portMappings);
        await this.revokeUnrecorded(network, driver, published);
      },
    );
  }

  /** Take back the rules of those of endpoint's ports that its record (if any) no longer holds. */
  private async revokeUnrecorded(network: Network, driver: ExternalConnectivity, endpoint: Endpoint) {
    const now = await this.state.endpoint(endpoint.id);
    const stale = endpoint.portMappings.filter((m) => !now?.portMappings.some((n) => samePorts([n], [m])));
    if (stale.length) await driver.revokeExternalConnectivity(network, { ...endpoint, portMappings: stale });
  }

  /**
   * Withdraw the ports an endpoint's record holds now (only if they are
   * still `expected`, when given): their rules, then the record without
   * them and their claims dropped, in one transaction on the version read
   * (a publish that commits meanwhile is read again and withdrawn too).
   * Undefined when the endpoint is gone.
   */
  private async withdrawPorts(
    network: Network,
    driver: ExternalConnectivity,
    endpointId: string,
    expected?: PortMapping[],
  ): Promise<Endpoint | undefined> {
    return retryConflicts('unpublish', async () => {
      const current = await this.state.endpointVersioned(endpointId);
      if (!current) return undefined;
      const { endpoint } = current;
      if (!endpoint.portMappings.length || (expected && !samePorts(endpoint.portMappings, expected)))
        return endpoint;
      await driver.revokeExternalConnectivity(network, endpoint);
      const unpublished: Endpoint = { ...endpoint, portMappings: [] };
      await this.state.putEndpoint(
        unpublished,
        mergeOps(
          this.state.endpointGuard(endpointId, current.version),
          await dropPorts(this.state.kv, endpoint),
        ),
      );
      return unpublished;
    });
  }

  /** Withdraw an endpoint's published ports. Idempotent. */
  async unpublishPorts(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.findEndpoint(endpointId);
    if (!endpoint.portMappings.length) return endpoint;
    const network = await this.networkOf(endpoint);
    const driver = this.driver(network.driver);
    if (!hasExternalConnectivity(driver)) return endpoint;
    return this.withIntent(
      'unpublish',
      'create',
      [endpointOwner(endpoint.id)],
      async () => {
        const unpublished = await this.withdrawPorts(network, driver, endpoint.id);
        if (!unpublished) throw new Errors.EndpointNotFound(endpointId);
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
        const left = await retryConflicts('leave', async () =>
          this.state.detachEndpoint(
            { ...endpoint, portMappings: [] },
            mergeOps(
              dropAttachment(endpoint.id, attachmentOf(endpoint), 'join'),
              await dropPorts(this.state.kv, endpoint),
            ),
          ),
        );
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
    routed: ReadonlySet<Family>,
  ): Promise<JoinInfo> {
    const join = new JoinInfo();
    try {
      await driver.join(network, endpoint, { ...sandboxInfo(sandbox), ifname, placement }, join);
      if (placement === 'in-place' && join.plugged) {
        await this.configureSandbox(sandbox.key, ifname, endpoint, join, routed);
      }
    } catch (err) {
      // Its namespace went meanwhile (the sandbox is being removed): the sandbox is gone.
      if (isUnusableNetns(err)) throw new Errors.SandboxNotFound(sandbox.name);
      throw err;
    }
    return join;
  }

  /** The families a sandbox's endpoints give it a default route in already. */
  private async routedFamilies(endpoints: readonly Endpoint[]): Promise<Set<Family>> {
    const routed = new Set<Family>();
    if (!endpoints.length) return routed;
    const networks = await this.networksOf(endpoints);
    for (const family of [4, 6] as const)
      if (defaultRouteOwner(endpoints, networks, family)) routed.add(family);
    return routed;
  }

  private async networksOf(endpoints: readonly Endpoint[]): Promise<Map<string, Network>> {
    const ids = [...new Set(endpoints.map((e) => e.networkId))];
    const found = await Promise.all(ids.map((id) => this.state.network(id)));
    return new Map(found.filter((n): n is Network => n !== undefined).map((n) => [n.id, n]));
  }

  /**
   * Point a sandbox's default routes through the endpoints that own them
   * (default-route.ts), after a change of its endpoints: the next one when
   * the owner left, the first recorded when two joined at once. After a
   * connect (`joined`), nothing when the owners are as it found them: it
   * owns the families no other endpoint routed (`routed`), and only those.
   * After a commit: a failure is logged, not thrown.
   */
  private async settleDefaultRoute(
    sandboxId: string,
    joined?: { id: string; routed: ReadonlySet<Family> },
  ): Promise<void> {
    try {
      const sandbox = await this.state.sandbox(sandboxId);
      if (!sandbox || sandbox.deleting || sandbox.netnsOf || isStale(sandbox)) return;
      // Only interfaces netctl made in place (Docker routes the ones it moves itself).
      const endpoints = (await this.state.sandboxEndpoints(sandbox)).filter((e) => e.ifname);
      if (!endpoints.length) return;
      const networks = await this.networksOf(endpoints);
      const owners = ([4, 6] as const).flatMap((family) => {
        const owner = defaultRouteOwner(endpoints, networks, family);
        return owner ? [{ family, ...owner }] : [];
      });
      if (joined && owners.every((o) => (o.endpoint.id === joined.id) === !joined.routed.has(o.family)))
        return;
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
        end.started = true;
        // The record as it is now, on every try: ports a publish claimed since
        // the caller read it (their rules, their claims) go with it too.
        for (let attempt = 1; ; attempt++) {
          const current = await this.state.endpointVersioned(endpoint.id);
          if (!current) return; // gone already: done
          const seen = current.endpoint;
          const network = await this.state.network(seen.networkId);
          if (network) {
            await this.unplug(network, seen);
            crashPoint('disconnect.unplug');
            await this.releaseEndpointAddresses(network, seen);
          }
          crashPoint('disconnect.release');
          try {
            await this.state.deleteEndpoint(
              seen,
              end,
              mergeOps(
                this.state.endpointGuard(seen.id, current.version),
                dropAttachment(seen.id, attachmentOf(seen)),
                await dropPorts(this.state.kv, seen),
              ),
            );
          } catch (err) {
            if (!(err instanceof KvConflictError) || attempt >= CLAIM_ATTEMPTS) throw err;
            continue;
          }
          // By the network's id: its record may be lost (gc), its peers' files are not.
          await this.refreshHosts(seen.networkId, seen.sandboxId);
          // The route it gave goes with it: the next endpoint's, if there is one.
          if (seen.sandboxId) await this.settleDefaultRoute(seen.sandboxId);
          return;
        }
      },
      async () => undefined,
      {
        landed: async () => {
          if (await this.state.endpoint(endpoint.id)) return undefined;
          await this.refreshHosts(endpoint.networkId, endpoint.sandboxId);
          return { result: undefined };
        },
      },
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
    // After a commit: a failed rewrite must not undo what is committed. It is
    // tried again (the store may be back), and gc rewrites what is left stale.
    return this.hostsLane
      .run(() => this.rewriteHosts(networkId, leaving))
      .catch((err: unknown) => {
        log.warn({ err, networkId }, 'rewriting /etc/hosts failed: trying again in 1 s');
        this.hostsRetries.set(`${networkId}/${leaving ?? ''}`, { networkId, leaving });
        if (!this.closed) this.hostsRetry ??= setTimeout(() => this.retryHosts(), HOSTS_RETRY_MS).unref();
      });
  }

  private retryHosts(): void {
    this.hostsRetry = undefined;
    const retries = [...this.hostsRetries.values()];
    this.hostsRetries.clear();
    for (const { networkId, leaving } of retries) void this.refreshHosts(networkId, leaving);
  }

  private async rewriteHosts(networkId: string, leaving?: string): Promise<void> {
    const ids = await this.state.hostsFileSandboxes(networkId);
    if (leaving && !ids.includes(leaving)) ids.push(leaving);
    const members: Sandbox[] = [];
    for (const id of ids) {
      const sandbox = await this.state.sandbox(id);
      if (sandbox?.ownsNetns) members.push(sandbox);
    }
    if (!members.length) return;
    const peers = hostsPeers(members, await this.state.endpoints());
    for (const sandbox of members)
      writeSandboxHosts(sandbox.id, sandbox.hostname, peers.get(sandbox.id) ?? []);
  }
}

/** How soon a failed /etc/hosts refresh is tried again. */
const HOSTS_RETRY_MS = 1000;

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

/** An internal network has no way out, so no host port leads into it: refused before anything is claimed. */
function checkPublishable(network: Network): void {
  if (network.internal)
    throw new Errors.InvalidRequest(`network ${network.name} is internal: it publishes no ports`);
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

/** Where an endpoint record says it is attached (its claims' keys, claims.ts). */
function attachmentOf(endpoint: Endpoint) {
  return { networkId: endpoint.networkId, sandboxId: endpoint.sandboxId, ifname: endpoint.ifname };
}

/** What an operation's claims are, what a conflict on one means, and how to tell it landed (withIntent). */
interface IntentOptions<T> {
  /** The claims the operation takes, written with its intent; built again on each retry. */
  take?: () => Promise<ClaimOps>;
  /** What a conflict on one of them means for the caller, or undefined to try again. */
  conflict?: (err: KvConflictError) => Error | undefined;
  /** The claims an undone operation gives back, written with the intent's removal. */
  release?: () => Promise<ClaimOps>;
  /**
   * After a failure whose outcome is unknown (a lost reply): the
   * operation's result if its commit landed, undefined if it did not.
   */
  landed?: () => Promise<{ result: T } | undefined>;
}

/** How long an operation asks whether its commit landed before leaving it to reconcile. */
const SETTLE_MS = 3000;

const CLAIM_ATTEMPTS = 100;

/**
 * Run a transaction built from what it reads until no compare fails: a
 * conflict that means something to the caller (conflict) ends it with that
 * error; any other is someone else's write landing first, and it is built
 * again from fresh reads.
 */
async function retryConflicts<T>(
  what: string,
  attempt: () => Promise<T>,
  conflict: (err: KvConflictError) => Error | undefined = () => undefined,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof KvConflictError)) throw err;
      const meant = conflict(err);
      if (meant) throw meant;
      if (n >= CLAIM_ATTEMPTS) throw new Errors.Conflict(what);
      // Jitter once contended, so writers do not collide in step.
      if (n > 2) await new Promise((r) => setTimeout(r, Math.random() * Math.min(n, 20)));
    }
  }
}

/**
 * A write whose reply may be lost (isOutcomeUnknown): read back whether it
 * landed, and go on as if it had answered; fail as it failed otherwise.
 */
async function confirmWrite(write: () => Promise<unknown>, landed: () => Promise<boolean>): Promise<void> {
  try {
    await write();
  } catch (err) {
    if (!isOutcomeUnknown(err) || !(await landed())) throw err;
  }
}

/** Two lists of port mappings are the same (order included). */
function samePorts(a: PortMapping[] | undefined, b: PortMapping[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A record read back after a lost reply, as a landed operation's result. */
function found<T>(record: T | undefined): { result: T } | undefined {
  return record === undefined ? undefined : { result: record };
}
