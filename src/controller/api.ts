/**
 * What netctl can be asked to do: the one interface that the in-process
 * Controller implements, that the daemon's REST API serves, and that the
 * CLI's HTTP client implements again on the other side of the socket. The
 * CLI is written against this, so it behaves the same with or without a
 * running daemon.
 */
import type { JoinInfo } from '../core/info.js';
import type { AddressSpaces, Pool } from '../core/ipam.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import type {
  ConnectRequest,
  CreateNetworkRequest,
  CreateSandboxRequest,
  PortRequest,
} from '../core/schemas.js';

export interface NetworkDetails {
  network: Network;
  /** Endpoints on the network, with the name of the sandbox each is joined to (this host's). */
  endpoints: (Endpoint & { sandboxName?: string })[];
  /** A global network's hosts with endpoints on it, as Docker's overlay lists its peers. */
  peers?: NetworkPeer[];
}

export interface NetworkPeer {
  /** The host's name (its id when its lease is gone). */
  name: string;
  /** Its VTEP address. */
  ip: string;
  /** How many of the network's endpoints it has. */
  endpoints: number;
}

export interface SandboxDetails {
  sandbox: Sandbox;
  endpoints: (Endpoint & { networkName: string })[];
  /** Why its namespace no longer exists as recorded (gone, another one now, before the last boot); absent while it does. */
  stale?: string;
}

/** One thing reconcile/gc found, and what it did (or would do, on a dry run). */
export interface GcAction {
  /** 'link', 'rule', 'address', 'pool', 'endpoint', 'sandbox', 'intent', 'network' */
  kind: string;
  name: string;
  owner: string;
  action: 'remove' | 'restore' | 'finish' | 'undo';
  reason: string;
  /** Set when the action was tried and failed: why (gc and repair then exit non-zero). */
  failed?: string;
}

export interface GcReport {
  dryRun: boolean;
  actions: GcAction[];
}

/** What `check` found wrong with a network's kernel side (and one sandbox's attachment to it). */
export interface CheckReport {
  network: string;
  /**
   * What of the network's kernel side is missing, one line each (e.g.
   * `bridge nc-0123456789ab`, `4 firewall rule(s)`): `repair` puts it back.
   * With a sandbox, only that endpoint's share of it (its veth, its port rules).
   */
  problems: string[];
  sandbox?: string;
  /** With a sandbox: what of its side is missing (interface, address, route); only a new attachment fixes it. */
  sandboxProblems?: string[];
}

export interface Health {
  version: string;
  store: string;
  storeReachable: boolean;
  networks: number;
  endpoints: number;
  sandboxes: number;
  /** This host in the cluster, when the daemon runs on a shared store. */
  cluster?: ClusterHealth;
}

export interface ClusterHealth {
  hostId: string;
  address: string;
  /** Global networks with devices on this host. */
  served: number;
  /** Remote peers programmed now, over all served networks. */
  programmed: number;
  /** Entries the periodic diff found wrong or missing and fixed, since start. */
  repairs: number;
  /** Endpoints of hosts gone longer than --host-reap-after whose records and addresses this host released. */
  reaped: number;
}

/** A host of the cluster as `netctl host ls` shows it. */
export interface HostStatus {
  id: string;
  /** 'up': its lease is live; 'down': it expired while peer records of the host remain. */
  state: 'up' | 'down';
  hostname?: string;
  address?: string;
  bootId?: string;
  version?: string;
  started?: string;
  /** Endpoints of global networks on it (its peer records). */
  peers: number;
  /** The host this daemon runs on. */
  self: boolean;
}

export interface NetctlApi {
  createNetwork(request: CreateNetworkRequest): Promise<Network>;
  listNetworks(): Promise<Network[]>;
  inspectNetwork(ref: string): Promise<NetworkDetails>;
  deleteNetwork(ref: string): Promise<Network>;
  /** Remove networks without endpoints; returns their names. */
  pruneNetworks(): Promise<string[]>;

  createSandbox(request: CreateSandboxRequest): Promise<Sandbox>;
  listSandboxes(): Promise<Sandbox[]>;
  inspectSandbox(ref: string): Promise<SandboxDetails>;
  /**
   * With ifEmpty, only a sandbox with no endpoint attached or being
   * attached (NETCTL_SANDBOX_IN_USE otherwise): a runtime's cleanup of the
   * sandbox it made, which must never take another call's endpoint.
   */
  deleteSandbox(ref: string, options?: { ifEmpty?: boolean }): Promise<Sandbox>;
  /** Record the process `netctl run` started in the sandbox (stopped with it). */
  setSandboxPid(ref: string, pid: number): Promise<Sandbox>;

  connect(request: ConnectRequest): Promise<Endpoint>;
  disconnect(network: string, sandbox: string): Promise<Endpoint>;

  /** Make the kernel, the IPAM and the records agree; see GcAction. */
  gc(options: { dryRun: boolean }): Promise<GcReport>;
  /**
   * What of the network's kernel side is missing (bridge, rules, ports on
   * the bridge); with a sandbox, also its endpoint's interface, addresses
   * and route inside the sandbox. Changes nothing. (CNI CHECK, `netctl repair`.)
   */
  check(network: string, sandbox?: string): Promise<CheckReport>;
  /** Put back what `check` finds missing of one network's kernel side (every network's without one); returns what it did. */
  repair(network?: string): Promise<GcAction[]>;
  health(): Promise<Health>;
  /** The hosts on the shared store (none on the embedded one). */
  listHosts(): Promise<HostStatus[]>;
}

/** One pool as Docker's IPAM driver reserved it (libnetwork IPAMData): addresses with their prefix length. */
export interface DockerPoolData {
  addressSpace: string;
  pool: string;
  gateway?: string;
  auxAddresses: Record<string, string>;
}

export interface DockerNetworkRequest {
  /** Docker's NetworkID, which becomes the network's id (and dockerId). */
  dockerId: string;
  /** The netctl driver behind the plugin socket (`bridge` for netctl-bridge). */
  driver: string;
  /** `-o netctl.name=NAME`: a netctl network to adopt, or the new network's name. */
  name?: string;
  enableIPv6: boolean;
  internal: boolean;
  /** The driver's options (Docker's generic options without netctl's own). */
  options: Record<string, string>;
  pools: DockerPoolData[];
}

export interface DockerEndpointRequest {
  dockerNetworkId: string;
  /** Docker's EndpointID, which becomes the endpoint's id. */
  id: string;
  /** The addresses Docker's IPAM gave, and the MAC Docker chose (if any). */
  ipv4?: string;
  ipv6?: string;
  mac?: string;
}

/**
 * What Docker's network-driver protocol (libnetwork drivers/remote) asks
 * of netctl, in netctl's terms: ids are Docker's, deletes are idempotent
 * (a restarted dockerd retries them), and a container's sandbox is made on
 * its first join and dropped with its last leave. Every call but
 * connectivityScope and activate waits for the sweep the last activate started.
 */
export interface DockerNetworkApi {
  /** Whether driver's endpoints reach across hosts (`global`) or one host's (`local`). */
  connectivityScope(driver: string): 'local' | 'global';
  /** A dockerd (re)started: drop in the background what a crashed one left; returns at once. */
  activate(): void;
  createNetwork(request: DockerNetworkRequest): Promise<void>;
  deleteNetwork(dockerId: string): Promise<void>;
  createEndpoint(request: DockerEndpointRequest): Promise<Endpoint>;
  /** The endpoint, or undefined when it is not (or no longer) there. */
  endpoint(id: string): Promise<Endpoint | undefined>;
  deleteEndpoint(id: string): Promise<void>;
  /** Join the endpoint to the sandbox of the container whose netns is (to be) at sandboxKey. */
  join(endpointId: string, sandboxKey: string): Promise<JoinInfo>;
  leave(endpointId: string): Promise<void>;
  /** Publish exactly these ports (none: the endpoint's go). */
  publishPorts(endpointId: string, ports: PortRequest[]): Promise<void>;
  unpublishPorts(endpointId: string): Promise<void>;
}

/** Docker's RequestPool: one of Docker's own, or (shareWith) the pool of a netctl network. */
export interface DockerPoolRequest {
  addressSpace: string;
  pool?: string;
  subPool?: string;
  v6: boolean;
  /** `--ipam-opt netctl.name=NAME`: share network NAME's pool. */
  shareWith?: string;
}

/**
 * What Docker's IPAM-driver protocol (libnetwork ipams/remote) asks of
 * netctl. Docker's reservations are held by Docker, and Docker releases
 * only what it holds (docs/docker.md, "Owners").
 */
export interface DockerIpamApi {
  defaultAddressSpaces(): Promise<AddressSpaces>;
  requestPool(request: DockerPoolRequest): Promise<Pool>;
  releasePool(poolId: string): Promise<void>;
  /** An address for Docker: the given one, else the next free; `gateway` for the network's gateway. */
  requestAddress(poolId: string, options: { address?: string; gateway: boolean }): Promise<string>;
  releaseAddress(poolId: string, address: string): Promise<void>;
}

/** What the Docker plugins' sockets are served from: the controller's Docker facets. */
export interface DockerApi {
  readonly docker: DockerNetworkApi;
  readonly dockerIpam: DockerIpamApi;
}
