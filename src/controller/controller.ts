/**
 * The Controller: the one place that turns a validated request into
 * IPAM reservations, driver calls, sandbox configuration and records —
 * whether the request came from the CLI, the REST API, Docker or CNI.
 * NetctlApi over its rooms, one per aggregate: networks.ts, sandboxes.ts,
 * endpoints.ts, ports.ts, with /etc/hosts in hosts.ts; what they share in
 * context.ts.
 *
 * Every multi-step operation runs under an intent (intent-runner.ts): on
 * failure it is undone in place; after a crash, reconcile() undoes or
 * finishes it.
 */
import type { Driver } from '../core/driver.js';
import type { IpamDriver } from '../core/ipam.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import type {
  ConnectRequest,
  CreateEndpointRequest,
  CreateNetworkRequest,
  CreateSandboxRequest,
  JoinRequest,
  PortRequest,
} from '../core/schemas.js';
import { packageVersion } from '../paths.js';
import type {
  CheckReport,
  DockerIpamApi,
  DockerNetworkApi,
  GcAction,
  GcReport,
  Health,
  HostStatus,
  NetctlApi,
  NetworkDetails,
  SandboxDetails,
} from './api.js';
import { checkNetwork, repairNetworks } from './check.js';
import { ControllerContext, type ControllerOptions } from './context.js';
import { DockerIpam } from './docker-ipam.js';
import { DockerNetworks } from './docker-networks.js';
import { Endpoints, type JoinResult } from './endpoints.js';
import type { Intent } from './intents.js';
import { Networks } from './networks.js';
import { Ports } from './ports.js';
import { collectGarbage } from './reconcile.js';
import { Sandboxes } from './sandboxes.js';
import type { ClaimOps, IntentEnd, State } from './state.js';

export type { ControllerOptions } from './context.js';
export type { JoinResult } from './endpoints.js';

export class Controller implements NetctlApi {
  readonly state: State;
  readonly ipam: IpamDriver;
  readonly drivers: ReadonlyMap<string, Driver>;
  private readonly ctx: ControllerContext;
  private readonly networks: Networks;
  private readonly sandboxes: Sandboxes;
  private readonly endpoints: Endpoints;
  private readonly ports: Ports;
  /** Docker's network-driver and IPAM-driver calls (docker-networks.ts, docker-ipam.ts). */
  readonly docker: DockerNetworkApi;
  readonly dockerIpam: DockerIpamApi;

  constructor(options: ControllerOptions) {
    this.ctx = new ControllerContext(options, () => this.gc({ dryRun: false }));
    this.state = this.ctx.state;
    this.ipam = this.ctx.ipam;
    this.drivers = this.ctx.drivers;
    this.networks = new Networks(this.ctx);
    this.endpoints = new Endpoints(this.ctx);
    this.sandboxes = new Sandboxes(this.ctx, this.endpoints);
    this.ports = new Ports(this.ctx);
    this.docker = new DockerNetworks(this.ctx, {
      networks: this.networks,
      endpoints: this.endpoints,
      sandboxes: this.sandboxes,
      ports: this.ports,
    });
    this.dockerIpam = new DockerIpam(this.ctx, this.networks);
  }

  async health(): Promise<Health> {
    const [networks, endpoints, sandboxes] = await Promise.all([
      this.state.networks(),
      this.state.endpoints(),
      this.state.sandboxes(),
    ]);
    return {
      version: packageVersion,
      store: this.ctx.storeName,
      storeReachable: true,
      networks: networks.length,
      endpoints: endpoints.length,
      sandboxes: sandboxes.length,
      ...(this.ctx.overlay ? { cluster: this.ctx.overlay.stats() } : {}),
    };
  }

  /** Join the cluster (the daemon's, after its first gc): the host's lease, the peers' watch. */
  async startCluster(): Promise<void> {
    await this.ctx.overlay?.start();
  }

  async listHosts(): Promise<HostStatus[]> {
    return (await this.ctx.overlay?.listHosts()) ?? [];
  }

  gc(options: { dryRun: boolean }): Promise<GcReport> {
    return this.ctx.gate.exclusive(() => collectGarbage(this, options.dryRun));
  }

  // check and repair (check.ts): CNI CHECK and `netctl repair`.
  check(network: string, sandbox?: string): Promise<CheckReport> {
    return checkNetwork(this, network, sandbox);
  }

  /** Alone, like gc: an operation changing the network meanwhile would race the restored rules. */
  repair(network?: string): Promise<GcAction[]> {
    return this.ctx.gate.exclusive(() => repairNetworks(this, network));
  }

  /** An intent this process gave up on (intent-runner.ts): reconcile's now. */
  abandonedHere(intent: Intent): boolean {
    return this.ctx.intents.abandonedHere(intent);
  }

  /** An intent whose operation is still running (and not abandoned here). */
  intentIsLive(intent: Intent): boolean {
    return this.ctx.intents.intentIsLive(intent);
  }

  /** Stop the background work (retries, settling) before the store closes; settle what is abandoned. */
  async close(): Promise<void> {
    await this.ctx.overlay?.close();
    this.ctx.hosts.close();
    await this.ctx.intents.close();
  }

  // ---------------------------------------------------------------- networks (networks.ts)

  findNetwork(ref: string): Promise<Network> {
    return this.ctx.findNetwork(ref);
  }
  listNetworks(): Promise<Network[]> {
    return this.networks.listNetworks();
  }
  inspectNetwork(ref: string): Promise<NetworkDetails> {
    return this.networks.inspectNetwork(ref);
  }
  createNetwork(request: CreateNetworkRequest): Promise<Network> {
    return this.networks.createNetwork(request);
  }
  deleteNetwork(ref: string, options?: { docker?: boolean }): Promise<Network> {
    return this.networks.deleteNetwork(ref, options);
  }
  unmarkDeleting(networkId: string): Promise<ClaimOps> {
    return this.networks.unmarkDeleting(networkId);
  }
  removeNetwork(network: Network): Promise<void> {
    return this.networks.removeNetwork(network);
  }
  pruneNetworks(): Promise<string[]> {
    return this.networks.pruneNetworks();
  }

  // --------------------------------------------------------------- sandboxes (sandboxes.ts)

  findSandbox(ref: string): Promise<Sandbox> {
    return this.ctx.findSandbox(ref);
  }
  listSandboxes(): Promise<Sandbox[]> {
    return this.sandboxes.listSandboxes();
  }
  createSandbox(request: CreateSandboxRequest, options?: { netnsLater?: boolean }): Promise<Sandbox> {
    return this.sandboxes.createSandbox(request, options);
  }
  deleteSandbox(ref: string, options?: { ifEmpty?: boolean }): Promise<Sandbox> {
    return this.sandboxes.deleteSandbox(ref, options);
  }
  unmarkSandbox(sandboxId: string): Promise<ClaimOps> {
    return this.sandboxes.unmarkSandbox(sandboxId);
  }
  removeSandbox(sandbox: Sandbox, end?: IntentEnd): Promise<void> {
    return this.sandboxes.removeSandbox(sandbox, end);
  }
  inspectSandbox(ref: string): Promise<SandboxDetails> {
    return this.sandboxes.inspectSandbox(ref);
  }
  setSandboxPid(ref: string, pid: number): Promise<Sandbox> {
    return this.sandboxes.setSandboxPid(ref, pid);
  }

  // --------------------------------------------------------------- endpoints (endpoints.ts, ports.ts)

  connect(request: ConnectRequest): Promise<Endpoint> {
    return this.endpoints.connect(request);
  }
  disconnect(network: string, sandbox: string): Promise<Endpoint> {
    return this.endpoints.disconnect(network, sandbox);
  }
  findEndpoint(id: string): Promise<Endpoint> {
    return this.ctx.findEndpoint(id);
  }
  createEndpoint(request: CreateEndpointRequest): Promise<Endpoint> {
    return this.endpoints.createEndpoint(request);
  }
  joinEndpoint(endpointId: string, request: JoinRequest): Promise<JoinResult> {
    return this.endpoints.joinEndpoint(endpointId, request);
  }
  deleteEndpoint(endpointId: string): Promise<Endpoint> {
    return this.endpoints.deleteEndpoint(endpointId);
  }
  removeEndpoint(endpoint: Endpoint): Promise<void> {
    return this.endpoints.removeEndpoint(endpoint);
  }
  publishPorts(endpointId: string, ports: PortRequest[]): Promise<Endpoint> {
    return this.ports.publishPorts(endpointId, ports);
  }
  unpublishPorts(endpointId: string): Promise<Endpoint> {
    return this.ports.unpublishPorts(endpointId);
  }
}
