/**
 * An in-memory NetctlApi for tests of the REST server and the CLI: no
 * kernel, no store, but the controller's observable rules — inputs parsed
 * with the same schemas, unique names, references by id, name or unique id
 * prefix (as Docker resolves them), the registry's errors, addresses handed
 * out from each subnet in order, host ports published once. Every call is
 * recorded in `calls`, so a test can also prove that nothing was called.
 */
import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { matchCidr } from '../../address.js';
import type { Endpoint, Network, PortMapping, Sandbox } from '../../core/model.js';
import {
  type ConnectRequest,
  type CreateNetworkRequest,
  type CreateSandboxRequest,
  connectSchema,
  createNetworkSchema,
  createSandboxSchema,
} from '../../core/schemas.js';
import { parseRequest } from '../../core/validate.js';
import { Errors } from '../../errors.js';
import { bootId, netnsInode } from '../../sandbox/identity.js';
import type {
  CheckReport,
  GcAction,
  GcReport,
  Health,
  NetctlApi,
  NetworkDetails,
  SandboxDetails,
} from '../api.js';
import { checkSandboxKey } from '../sandbox-key.js';

export const FAKE_DRIVERS = ['bridge', 'overlay', 'host', 'none'] as const;

export interface FakeCall {
  method: keyof NetctlApi;
  args: unknown[];
}

const clone = <T>(value: T): T => structuredClone(value);
const newId = () => randomBytes(32).toString('hex');
const now = () => new Date().toISOString();

/** The n-th address of cidr (0 is the network address), with the prefix length when withPrefix. */
function nthAddress(cidr: string, n: number): string {
  const [base, length] = ipaddr.parseCIDR(cidr);
  const bytes = base.toByteArray();
  let value = bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
  const hostBits = BigInt(bytes.length * 8 - length);
  value = ((value >> hostBits) << hostBits) + BigInt(n);
  const out = bytes.map((_, i) => Number((value >> BigInt((bytes.length - 1 - i) * 8)) & 0xffn));
  return ipaddr.fromByteArray(out).toString();
}

/** The nsfs inode behind a path when this process may stat it; the fake makes one up otherwise. */
function inodeOf(key: string): number | undefined {
  try {
    return netnsInode(key);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return undefined;
    throw err;
  }
}

function prefixLength(cidr: string): number {
  return ipaddr.parseCIDR(cidr)[1];
}

function overlaps(a: string, b: string): boolean {
  const [baseA] = ipaddr.parseCIDR(a);
  const [baseB] = ipaddr.parseCIDR(b);
  return baseA.kind() === baseB.kind() && (matchCidr(nthAddress(a, 0), b) || matchCidr(nthAddress(b, 0), a));
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
  /** What check reports missing per network id (as if a bridge or rules were deleted by hand); repair clears it. */
  readonly missing = new Map<string, string[]>();
  /** What the next gc would report; cleared by a gc that is not a dry run. */
  pendingGc: GcAction[] = [];
  /** Make the next call of a method fail with this error (then forget it). */
  readonly failNext = new Map<keyof NetctlApi, Error>();
  private nextSubnet = 0;
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

  /** Docker's order: full id, then exact name, then a unique id prefix. */
  private resolve<T extends { id: string; name: string }>(
    items: Map<string, T>,
    ref: string,
    notFound: () => Error,
  ): T {
    const byId = items.get(ref);
    if (byId) return byId;
    const all = [...items.values()];
    const byName = all.find((item) => item.name === ref);
    if (byName) return byName;
    const byPrefix = all.filter((item) => item.id.startsWith(ref));
    if (ref.length > 0 && byPrefix.length === 1 && byPrefix[0]) return byPrefix[0];
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
    if ([...this.networks.values()].some((n) => n.name === r.name)) throw new Errors.NetworkExists(r.name);
    if (!(FAKE_DRIVERS as readonly string[]).includes(r.driver))
      throw new Errors.DriverNotFound(r.driver, FAKE_DRIVERS.join(', '));
    const taken = [...this.networks.values()].flatMap((n) => n.ipam.config.map((c) => c.subnet));
    const config = (r.ipam.config.length ? r.ipam.config : [{}]).map((pool) => {
      let subnet = pool.subnet;
      if (!subnet) {
        do subnet = `10.${200 + this.nextSubnet++}.0.0/24`;
        while (taken.some((t) => overlaps(t, subnet as string)));
      }
      const clash = taken.find((t) => overlaps(t, subnet as string));
      if (clash) throw new Errors.PoolOverlap(subnet, clash);
      taken.push(subnet);
      const gateway = pool.gateway ?? nthAddress(subnet, 1);
      if (!matchCidr(gateway, subnet)) throw new Errors.GatewayOutsideSubnet(gateway, subnet);
      for (const address of Object.values(pool.auxAddresses ?? {}))
        if (!matchCidr(address, subnet)) throw new Errors.AddressOutsidePool(address, subnet);
      return { ...pool, subnet, gateway };
    });
    const id = newId();
    const network: Network = {
      id,
      name: r.name,
      driver: r.driver,
      scope: r.driver === 'overlay' ? 'global' : 'local',
      ipam: {
        driver: r.ipam.driver,
        options: r.ipam.options,
        config,
        poolIds: config.map((c) => `fake/${c.subnet}`),
      },
      enableIPv6: r.enableIPv6,
      internal: r.internal,
      options: r.options,
      labels: r.labels,
      driverData: r.driver === 'bridge' ? { bridge: `nc-${id.slice(0, 12)}` } : {},
      created: now(),
    };
    this.networks.set(id, network);
    return clone(network);
  }

  async listNetworks(): Promise<Network[]> {
    this.record('listNetworks', []);
    return clone([...this.networks.values()]);
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

  async deleteNetwork(ref: string): Promise<Network> {
    this.record('deleteNetwork', [ref]);
    const network = this.network(ref);
    const endpoints = this.endpointsOf(network.id);
    if (endpoints.length)
      throw new Errors.NetworkInUse(network.name, endpoints.map((e) => e.name).join(', '));
    this.networks.delete(network.id);
    return clone(network);
  }

  async pruneNetworks(): Promise<string[]> {
    this.record('pruneNetworks', []);
    const removed: string[] = [];
    for (const network of [...this.networks.values()]) {
      if (this.endpointsOf(network.id).length) continue;
      this.networks.delete(network.id);
      removed.push(network.name);
    }
    return removed;
  }

  async createSandbox(request: CreateSandboxRequest): Promise<Sandbox> {
    this.record('createSandbox', [request]);
    const r = parseRequest(createSandboxSchema, request);
    if ([...this.sandboxes.values()].some((s) => s.name === r.name)) throw new Errors.SandboxExists(r.name);
    if (r.key) this.checkKey(r.key);
    const id = newId();
    const sandbox: Sandbox = {
      id,
      name: r.name,
      key: r.key ?? `/run/netns/netctl-${id.slice(0, 12)}`,
      // As the controller records them, so a caller's staleness check (CNI's) sees a live sandbox.
      netnsInode: (r.key ? inodeOf(r.key) : undefined) ?? this.nextInode++,
      bootId: bootId(),
      ownsNetns: r.key === undefined,
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
    return clone([...this.sandboxes.values()]);
  }

  async inspectSandbox(ref: string): Promise<SandboxDetails> {
    this.record('inspectSandbox', [ref]);
    const sandbox = this.sandbox(ref);
    return clone({
      sandbox,
      endpoints: sandbox.endpointIds.map((id) => {
        const e = this.endpoints.get(id) as Endpoint;
        return { ...e, networkName: this.networks.get(e.networkId)?.name ?? e.networkId };
      }),
    });
  }

  /** Like `docker rm`: leaves every network first (with ifEmpty, only an empty one). */
  async deleteSandbox(ref: string, options: { ifEmpty?: boolean } = {}): Promise<Sandbox> {
    this.record('deleteSandbox', options.ifEmpty ? [ref, options] : [ref]);
    const sandbox = this.sandbox(ref);
    if (options.ifEmpty && sandbox.endpointIds.length)
      throw new Errors.SandboxInUse(sandbox.name, sandbox.endpointIds.join(', '));
    for (const id of sandbox.endpointIds) this.endpoints.delete(id);
    this.sandboxes.delete(sandbox.id);
    return clone({ ...sandbox, endpointIds: [] });
  }

  async setSandboxPid(ref: string, pid: number): Promise<Sandbox> {
    this.record('setSandboxPid', [ref, pid]);
    if (!Number.isInteger(pid) || pid <= 0)
      throw new Errors.InvalidRequest(`pid: expected a positive integer, got ${pid}`);
    const sandbox = this.sandbox(ref);
    sandbox.pid = pid;
    return clone(sandbox);
  }

  async connect(request: ConnectRequest): Promise<Endpoint> {
    this.record('connect', [request]);
    const r = parseRequest(connectSchema, request);
    const network = this.network(r.network);
    const sandbox = this.sandbox(r.sandbox);
    const existing = this.endpointsOf(network.id);
    if (existing.some((e) => e.sandboxId === sandbox.id))
      throw new Errors.EndpointExists(sandbox.name, network.name);
    const used = new Set(existing.flatMap((e) => [e.ipv4, e.ipv6]).map((a) => a?.split('/')[0]));
    const published = [...this.endpoints.values()].flatMap((e) =>
      e.portMappings.flatMap((m) => portsOf(m).map((p) => ({ key: `${m.proto}/${p}`, owner: e.name }))),
    );
    for (const m of r.portMappings)
      for (const p of portsOf(m)) {
        const clash = published.find((q) => q.key === `${m.proto}/${p}`);
        if (clash) throw new Errors.PortInUse(`${p}/${m.proto}`, clash.owner);
      }
    const address = (family: 'ipv4' | 'ipv6', wanted: string | undefined): string | undefined => {
      const pool = network.ipam.config.find((c) => ipaddr.parseCIDR(c.subnet)[0].kind() === family);
      if (!pool) {
        if (wanted) throw new Errors.AddressOutsidePool(wanted, network.name);
        return undefined;
      }
      const reserved = new Set([pool.gateway, ...Object.values(pool.auxAddresses ?? {})]);
      if (wanted) {
        if (!matchCidr(wanted, pool.subnet)) throw new Errors.AddressOutsidePool(wanted, pool.subnet);
        if (used.has(wanted) || reserved.has(wanted)) throw new Errors.AddressInUse(wanted);
        return `${wanted}/${prefixLength(pool.subnet)}`;
      }
      for (let n = 1; n < 1 << 16; n++) {
        const candidate = nthAddress(pool.subnet, n);
        if (!matchCidr(candidate, pool.subnet)) break;
        if (!used.has(candidate) && !reserved.has(candidate))
          return `${candidate}/${prefixLength(pool.subnet)}`;
      }
      throw new Errors.NoAvailableAddress(pool.subnet);
    };
    const ipv4 = address('ipv4', r.ipv4);
    const ipv6 = network.enableIPv6 || r.ipv6 ? address('ipv6', r.ipv6) : undefined;
    const endpoint: Endpoint = {
      id: newId(),
      networkId: network.id,
      name: sandbox.name,
      sandboxId: sandbox.id,
      ifname: r.ifname ?? `eth${sandbox.endpointIds.length}`,
      mac: r.mac ?? `02:42:${[...randomBytes(4)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
      ...(ipv4 ? { ipv4 } : {}),
      ...(ipv6 ? { ipv6 } : {}),
      portMappings: r.portMappings,
      aliases: r.aliases,
      driverData: {},
      created: now(),
    };
    this.endpoints.set(endpoint.id, endpoint);
    sandbox.endpointIds.push(endpoint.id);
    return clone(endpoint);
  }

  async disconnect(network: string, sandbox: string): Promise<Endpoint> {
    this.record('disconnect', [network, sandbox]);
    const n = this.network(network);
    const s = this.sandbox(sandbox);
    const endpoint = this.endpointsOf(n.id).find((e) => e.sandboxId === s.id);
    if (!endpoint) throw new Errors.EndpointNotFound(`${s.name} on network ${n.name}`);
    this.endpoints.delete(endpoint.id);
    s.endpointIds = s.endpointIds.filter((id) => id !== endpoint.id);
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
      throw new Errors.EndpointNotFound(`${s.name} on network ${n.name}`);
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
