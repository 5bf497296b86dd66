/**
 * An in-memory NetctlApi for tests of the REST server and the CLI: no
 * kernel, no store, but the controller's observable rules — inputs parsed
 * with the same schemas, unique names, references by name, id or unique id
 * prefix, the registry's errors with the controller's messages, addresses
 * handed out as the IPAM does (fake-ipam.ts), host ports published once. Where a rule is a pure
 * function of the real code (subnet checks, bridge options, the IPAM's
 * address math and errors), it is called, not copied. Every call is
 * recorded in `calls`, so a test can also prove that nothing was called.
 *
 * test/unit/controller/api-contract/ holds this fake and the real
 * Controller to one contract: where they differ, the fake is wrong.
 */
import { randomBytes } from 'node:crypto';
import { parseSubnet } from '../../address.js';
import type { Endpoint, Network, PortMapping, Sandbox } from '../../core/model.js';
import {
  type ConnectRequest,
  type CreateNetworkRequest,
  type CreateSandboxRequest,
  connectSchema,
  createNetworkSchema,
  createSandboxSchema,
  sandboxPidSchema,
} from '../../core/schemas.js';
import { parseRequest } from '../../core/validate.js';
import { parseBridgeOptions } from '../../drivers/bridge/options.js';
import { Errors } from '../../errors.js';
import { macFromIpv4, netnsPath, randomMac } from '../../kernel/index.js';
import { endpointOwner, networkOwner } from '../../owners.js';
import { bootId, netnsInode, staleReason } from '../../sandbox/identity.js';
import type {
  CheckReport,
  GcAction,
  GcReport,
  Health,
  HostStatus,
  NetctlApi,
  NetworkDetails,
  SandboxDetails,
} from '../api.js';
import { checkJoinable, checkPublishable } from '../join-rules.js';
import { NULL_IPAM } from '../networks.js';
import { checkSandboxKey } from '../sandbox-key.js';
import { HOST_NETNS_PIN, sandboxNetnsName } from '../sandboxes.js';
import { checkPoolConfig, checkSubnet } from '../subnets.js';
import { FakeIpam, type PoolConfig } from './fake-ipam.js';

/** The drivers of the daemon (src/daemon/compose.ts), in its order; host and none give no addresses. */
export const FAKE_DRIVERS = ['bridge', 'host', 'none'] as const;
const ADDRESSLESS = new Set(['host', 'none']);

export interface FakeCall {
  method: keyof NetctlApi;
  args: unknown[];
}

const clone = <T>(value: T): T => structuredClone(value);
const newId = () => randomBytes(32).toString('hex');
const now = () => new Date().toISOString();

/** The nsfs inode behind a path when this process may stat it; the fake makes one up otherwise. */
function inodeOf(key: string): number | undefined {
  try {
    return netnsInode(key);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return undefined;
    throw err;
  }
}

function portsOf(m: PortMapping): number[] {
  const out: number[] = [];
  for (let p = m.hostPort; p <= (m.hostPortEnd ?? m.hostPort); p++) out.push(p);
  return out;
}

export interface FakeApiOptions {
  /** How a sandbox key from outside is checked; default: as the controller does (sandbox-key.ts). */
  checkKey?: (key: string) => void;
}

export class FakeApi implements NetctlApi {
  readonly calls: FakeCall[] = [];
  private readonly checkKey: (key: string) => void;
  readonly networks = new Map<string, Network>();
  readonly sandboxes = new Map<string, Sandbox>();
  readonly endpoints = new Map<string, Endpoint>();
  private readonly ipam = new FakeIpam();
  /** What check reports missing per network id (as if a bridge or rules were deleted by hand); repair clears it. */
  readonly missing = new Map<string, string[]>();
  /** What the next gc would report; cleared by a gc that is not a dry run. */
  pendingGc: GcAction[] = [];
  /** Make the next call of a method fail with this error (then forget it). */
  readonly failNext = new Map<keyof NetctlApi, Error>();
  private nextInode = 4026532000;

  constructor(options: FakeApiOptions = {}) {
    this.checkKey = options.checkKey ?? checkSandboxKey;
  }

  private record(method: keyof NetctlApi, args: unknown[]): void {
    this.calls.push({ method, args: clone(args) });
    const err = this.failNext.get(method);
    if (err) {
      this.failNext.delete(method);
      throw err;
    }
  }

  /**
   * The controller's order: exact name, then full id, then a unique id
   * prefix of at least 6 hex digits.
   */
  private resolve<T extends { id: string; name: string }>(
    items: Map<string, T>,
    ref: string,
    notFound: () => Error,
  ): T {
    const all = [...items.values()];
    // The controller's order (context.ts): a full id, a name, a unique id prefix.
    const found = items.get(ref) ?? all.find((item) => item.name === ref);
    if (found) return found;
    const byPrefix = /^[0-9a-f]{6,63}$/.test(ref) ? all.filter((item) => item.id.startsWith(ref)) : [];
    if (byPrefix.length === 1 && byPrefix[0]) return byPrefix[0];
    throw notFound();
  }

  private network(ref: string): Network {
    return this.resolve(this.networks, ref, () => new Errors.NetworkNotFound(ref));
  }

  private sandbox(ref: string): Sandbox {
    return this.resolve(this.sandboxes, ref, () => new Errors.SandboxNotFound(ref));
  }

  private endpointsOf(networkId: string): Endpoint[] {
    return [...this.endpoints.values()].filter((e) => e.networkId === networkId);
  }

  async createNetwork(request: CreateNetworkRequest): Promise<Network> {
    this.record('createNetwork', [request]);
    const r = parseRequest(createNetworkSchema, request);
    if (!(FAKE_DRIVERS as readonly string[]).includes(r.driver))
      throw new Errors.DriverNotFound(r.driver, FAKE_DRIVERS.join(', '));
    if ([...this.networks.values()].some((n) => n.name === r.name)) throw new Errors.NetworkExists(r.name);
    const nullIpam = r.ipam.driver === NULL_IPAM || ADDRESSLESS.has(r.driver);
    if (nullIpam && r.ipam.config.length)
      throw new Errors.InvalidRequest('the null IPAM driver takes no subnets');
    const configs: PoolConfig[] = nullIpam ? [] : r.ipam.config.length ? r.ipam.config : [{}];
    if (r.enableIPv6 && !configs.some((c) => c.subnet && parseSubnet(c.subnet).family === 6))
      throw new Errors.InvalidRequest('--ipv6 needs an IPv6 --subnet (no default IPv6 pool is configured)');
    for (const c of configs) checkPoolConfig(c);
    for (const c of configs) if (c.subnet) checkSubnet(c.subnet, []);
    const id = newId();
    const bridge =
      r.driver === 'bridge'
        ? parseBridgeOptions({ id, options: r.options, internal: r.internal })
        : undefined;
    const { poolIds, config } = this.ipam.addPools(networkOwner(id), configs);
    const network: Network = {
      id,
      name: r.name,
      driver: r.driver,
      scope: 'local',
      ipam: { driver: r.ipam.driver, options: r.ipam.options, config, poolIds },
      enableIPv6: r.enableIPv6,
      internal: r.internal,
      options: r.options,
      labels: r.labels,
      driverData: bridge ? { bridge: bridge.bridgeName } : {},
      created: now(),
    };
    this.networks.set(id, network);
    return clone(network);
  }

  async listNetworks(): Promise<Network[]> {
    this.record('listNetworks', []);
    return clone([...this.networks.values()].sort((a, b) => a.name.localeCompare(b.name)));
  }

  async inspectNetwork(ref: string): Promise<NetworkDetails> {
    this.record('inspectNetwork', [ref]);
    const network = this.network(ref);
    return clone({
      network,
      endpoints: this.endpointsOf(network.id).map((e) => ({
        ...e,
        ...(e.sandboxId ? { sandboxName: this.sandboxes.get(e.sandboxId)?.name } : {}),
      })),
    });
  }

  private removeNetwork(network: Network): void {
    this.ipam.removePools(network.ipam.poolIds);
    this.networks.delete(network.id);
  }

  async deleteNetwork(ref: string): Promise<Network> {
    this.record('deleteNetwork', [ref]);
    const network = this.network(ref);
    const endpoints = this.endpointsOf(network.id);
    if (endpoints.length)
      throw new Errors.NetworkInUse(network.name, endpoints.map((e) => e.name).join(', '));
    this.removeNetwork(network);
    return clone(network);
  }

  async pruneNetworks(): Promise<string[]> {
    this.record('pruneNetworks', []);
    const removed: string[] = [];
    for (const network of [...this.networks.values()]) {
      if (this.endpointsOf(network.id).length) continue;
      this.removeNetwork(network);
      removed.push(network.name);
    }
    return removed;
  }

  /** The namespace a sandbox shares: the host's (pinned) or another sandbox's owner's. */
  private sharedNetns(netnsOf: string): { key: string; of: string } {
    if (netnsOf === 'host') return { key: HOST_NETNS_PIN, of: 'host' };
    const target = this.sandbox(netnsOf.slice('container:'.length));
    if (target.netnsOf && target.netnsOf !== 'host') return this.sharedNetns(`container:${target.netnsOf}`);
    return { key: target.key, of: target.netnsOf ?? target.id };
  }

  async createSandbox(request: CreateSandboxRequest): Promise<Sandbox> {
    this.record('createSandbox', [request]);
    const r = parseRequest(createSandboxSchema, request);
    const holder = [...this.sandboxes.values()].find((s) => s.name === r.name);
    if (holder && holder.id !== r.replaces) throw new Errors.SandboxExists(r.name);
    if (r.key && r.netnsOf) throw new Errors.InvalidRequest('give either key or netnsOf, not both');
    const shared = r.netnsOf ? this.sharedNetns(r.netnsOf) : undefined;
    if (r.key) this.checkKey(r.key);
    if (holder) await this.deleteSandbox(holder.id);
    const key = r.key ?? shared?.key ?? netnsPath(sandboxNetnsName(r.name));
    const id = newId();
    const sandbox: Sandbox = {
      id,
      name: r.name,
      key,
      // As the controller records them, so a caller's staleness check (CNI's) sees a live sandbox.
      netnsInode: (r.key ? inodeOf(r.key) : undefined) ?? this.nextInode++,
      bootId: bootId(),
      ownsNetns: r.key === undefined && shared === undefined,
      ...(shared ? { netnsOf: shared.of } : {}),
      hostname: r.hostname ?? r.name,
      endpointIds: [],
      labels: r.labels,
      created: now(),
    };
    this.sandboxes.set(id, sandbox);
    return clone(sandbox);
  }

  async listSandboxes(): Promise<Sandbox[]> {
    this.record('listSandboxes', []);
    return clone([...this.sandboxes.values()].sort((a, b) => a.name.localeCompare(b.name)));
  }

  async inspectSandbox(ref: string): Promise<SandboxDetails> {
    this.record('inspectSandbox', [ref]);
    const sandbox = this.sandbox(ref);
    // Only a namespace given by key is real here: the fake makes none of its own.
    const stale = sandbox.ownsNetns || sandbox.netnsOf ? undefined : staleReason(sandbox);
    return clone({
      sandbox,
      endpoints: sandbox.endpointIds.map((id) => {
        const e = this.endpoints.get(id) as Endpoint;
        return { ...e, networkName: this.networks.get(e.networkId)?.name ?? e.networkId };
      }),
      ...(stale ? { stale } : {}),
    });
  }

  /** Like `docker rm`: leaves every network first (with ifEmpty, only an empty one). */
  async deleteSandbox(ref: string, options: { ifEmpty?: boolean } = {}): Promise<Sandbox> {
    this.record('deleteSandbox', options.ifEmpty ? [ref, options] : [ref]);
    const sandbox = this.sandbox(ref);
    if (options.ifEmpty && sandbox.endpointIds.length)
      throw new Errors.SandboxInUse(
        sandbox.name,
        sandbox.endpointIds.map((id) => endpointOwner(id).slice(0, 15)).join(', '),
      );
    for (const id of sandbox.endpointIds) this.removeEndpoint(this.endpoints.get(id) as Endpoint);
    this.sandboxes.delete(sandbox.id);
    return clone({ ...sandbox, endpointIds: [] });
  }

  /** Refuses what the REST API's schema refuses: the controller itself does not check (see its tests). */
  async setSandboxPid(ref: string, pid: number): Promise<Sandbox> {
    this.record('setSandboxPid', [ref, pid]);
    parseRequest(sandboxPidSchema, { pid });
    const sandbox = this.sandbox(ref);
    sandbox.pid = pid;
    return clone(sandbox);
  }

  /** The controller's own rules (join-rules.ts). */
  private checkJoin(network: Network, sandbox: Sandbox, publishes: boolean): void {
    checkJoinable(network, sandbox);
    if (publishes) checkPublishable(network);
  }

  /** Host ports as the controller's claims take them (claims.ts): each once per protocol and address. */
  private checkPorts(requested: PortMapping[]): void {
    const published = [...this.endpoints.values()].flatMap((e) =>
      e.portMappings.flatMap((m) => portsOf(m).map((port) => ({ ...m, port, owner: e.name }))),
    );
    for (const m of requested) {
      const clash = published.find(
        (q) =>
          q.proto === m.proto &&
          portsOf(m).includes(q.port) &&
          (!q.hostIp || !m.hostIp || q.hostIp === m.hostIp),
      );
      const last = m.hostPortEnd ?? m.hostPort;
      const ports = last > m.hostPort ? `${m.hostPort}-${last}` : `${m.hostPort}`;
      if (clash) throw new Errors.PortInUse(`${m.hostIp ?? '0.0.0.0'}:${ports}/${m.proto}`, clash.owner);
    }
  }

  async connect(request: ConnectRequest): Promise<Endpoint> {
    this.record('connect', [request]);
    const r = parseRequest(connectSchema, request);
    const network = this.network(r.network);
    const sandbox = this.sandbox(r.sandbox);
    this.checkJoin(network, sandbox, r.portMappings.length > 0);
    this.checkPorts(r.portMappings);
    const mine = sandbox.endpointIds.map((id) => this.endpoints.get(id) as Endpoint);
    if (mine.some((e) => e.networkId === network.id))
      throw new Errors.EndpointExists(sandbox.name, network.name);
    if (r.ifname && mine.some((e) => e.ifname === r.ifname))
      throw new Errors.InterfaceExists(r.ifname, sandbox.name);
    let n = mine.length;
    while (!r.ifname && mine.some((e) => e.ifname === `eth${n}`)) n++;
    const id = newId();
    const owner = endpointOwner(id);
    const addresses = this.ipam.addresses(network, owner, r);
    const endpoint: Endpoint = {
      id,
      networkId: network.id,
      name: sandbox.name,
      sandboxId: sandbox.id,
      ifname: r.ifname ?? `eth${n}`,
      mac: r.mac?.toLowerCase() ?? (addresses.ipv4 ? macFromIpv4(addresses.ipv4) : randomMac()),
      ...addresses,
      portMappings: r.portMappings,
      aliases: r.aliases,
      driverData: {},
      created: now(),
    };
    this.endpoints.set(endpoint.id, endpoint);
    sandbox.endpointIds.push(endpoint.id);
    return clone(endpoint);
  }

  private removeEndpoint(endpoint: Endpoint): void {
    this.ipam.release(this.networks.get(endpoint.networkId), endpointOwner(endpoint.id));
    this.endpoints.delete(endpoint.id);
    const sandbox = endpoint.sandboxId ? this.sandboxes.get(endpoint.sandboxId) : undefined;
    if (sandbox) sandbox.endpointIds = sandbox.endpointIds.filter((id) => id !== endpoint.id);
  }

  async disconnect(network: string, sandbox: string): Promise<Endpoint> {
    this.record('disconnect', [network, sandbox]);
    const n = this.network(network);
    const s = this.sandbox(sandbox);
    const endpoint = this.endpointsOf(n.id).find((e) => e.sandboxId === s.id);
    if (!endpoint) throw new Errors.EndpointNotFound(`${s.name} on ${n.name}`);
    this.removeEndpoint(endpoint);
    return clone(endpoint);
  }

  async gc(options: { dryRun: boolean }): Promise<GcReport> {
    this.record('gc', [options]);
    const report = { dryRun: options.dryRun, actions: clone(this.pendingGc) };
    if (!options.dryRun) this.pendingGc = [];
    return report;
  }

  async check(network: string, sandbox?: string): Promise<CheckReport> {
    this.record('check', [network, sandbox]);
    const n = this.network(network);
    const s = sandbox === undefined ? undefined : this.sandbox(sandbox);
    if (s && !this.endpointsOf(n.id).some((e) => e.sandboxId === s.id))
      throw new Errors.EndpointNotFound(`${s.name} on ${n.name}`);
    return {
      network: n.name,
      problems: [...(this.missing.get(n.id) ?? [])],
      ...(s ? { sandbox: s.name, sandboxProblems: [] } : {}),
    };
  }

  async repair(network?: string): Promise<GcAction[]> {
    this.record('repair', [network]);
    const networks = network === undefined ? [...this.networks.values()] : [this.network(network)];
    const actions: GcAction[] = [];
    for (const n of networks) {
      const missing = this.missing.get(n.id);
      if (!missing?.length) continue;
      this.missing.delete(n.id);
      actions.push({
        kind: 'network',
        name: n.name,
        owner: `net:${n.id}`,
        action: 'restore',
        reason: `missing: ${missing.join(', ')}`,
      });
    }
    return actions;
  }

  async listHosts(): Promise<HostStatus[]> {
    this.record('listHosts', []);
    return [];
  }

  async health(): Promise<Health> {
    this.record('health', []);
    return {
      version: 'fake',
      store: 'memory',
      storeReachable: true,
      networks: this.networks.size,
      endpoints: this.endpoints.size,
      sandboxes: this.sandboxes.size,
    };
  }
}

// Like host-local's `var _ backend.Store = &FakeStore{}`: the fake stays a NetctlApi.
const _fakeIsApi = FakeApi satisfies new () => NetctlApi;
