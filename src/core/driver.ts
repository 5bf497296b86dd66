/**
 * The network driver contract (libnetwork driverapi): a small required core
 * and optional capabilities behind type guards, the way moby split out
 * ExtConner after its host driver grew 17 mostly empty methods.
 *
 * Drivers never talk to each other, to the KV or to the HTTP layer: the
 * controller hands them the records they need and persists what they fill
 * into the caller-owned info objects (info.ts).
 */
import type { EndpointInfo, JoinInfo, NetworkInfo, SandboxInfo } from './info.js';
import type { Endpoint, Network, Peer, PortMapping, Scope } from './model.js';

export interface Capability {
  /** Where the driver's state lives: this host only, or shared by all. */
  dataScope: Scope;
  /** Whether endpoints reach each other across hosts. */
  connectivityScope: Scope;
  /** False for drivers whose endpoints get no addresses (host, none): their networks use the null IPAM. */
  addressing?: boolean;
}

export interface Driver {
  readonly type: string;
  capability(): Capability;
  /** Refuse options the driver cannot honour, before anything is reserved or made. */
  checkOptions?(network: Pick<Network, 'id' | 'options' | 'internal'>): void;
  /** A global network's VNI as its options pin it (the controller allocates one otherwise). */
  pinnedVni?(network: Pick<Network, 'options'>): number | undefined;
  /** Validate options and set up the network on this host (idempotent). */
  createNetwork(network: NetworkInfo): Promise<void>;
  /** Tear down everything createNetwork made; absent pieces are fine. */
  deleteNetwork(network: Network): Promise<void>;
  /** Prepare the endpoint; fill its MAC and driver data in `endpoint`. */
  createEndpoint(network: Network, endpoint: EndpointInfo): Promise<void>;
  /** Remove what createEndpoint made; absent pieces are fine. */
  deleteEndpoint(network: Network, endpoint: Endpoint): Promise<void>;
  /** Plug the endpoint into the sandbox; fill gateway/routes/names in `join`. */
  join(network: Network, endpoint: Endpoint, sandbox: SandboxInfo, join: JoinInfo): Promise<void>;
  /** Unplug; the sandbox may already be gone. */
  leave(network: Network, endpoint: Endpoint, sandbox: SandboxInfo): Promise<void>;
}

/** Publishing ports and the way out (libnetwork's ExtConner). */
export interface ExternalConnectivity {
  programExternalConnectivity(network: Network, endpoint: Endpoint, ports: PortMapping[]): Promise<void>;
  revokeExternalConnectivity(network: Network, endpoint: Endpoint): Promise<void>;
}

export function hasExternalConnectivity(driver: Driver): driver is Driver & ExternalConnectivity {
  return 'programExternalConnectivity' in driver && 'revokeExternalConnectivity' in driver;
}

/** Kernel state the driver can list and remove by owner, for reconcile and gc. */
export interface OwnedResource {
  /** What it is: 'link', 'rule', ... */
  kind: string;
  /** Its name as the kernel shows it. */
  name: string;
  /** `net:<id>` or `ep:<id>`. */
  owner: string;
  /** Whatever the driver needs to remove it again. */
  handle?: unknown;
}

export interface Reconciler {
  /** Everything this driver made that exists in the kernel now. */
  listOwned(): Promise<OwnedResource[]>;
  /** Remove one resource listOwned reported. */
  removeOwned(resource: OwnedResource): Promise<void>;
  /** Setup shared by all of the driver's networks (base chains), removed when none is left. */
  sharedResources?(): Promise<OwnedResource[]>;
  /** What of the network's kernel side (its own, and its endpoints' on this host) is missing now (empty: nothing). */
  missing?(network: Network, endpoints: Endpoint[]): Promise<string[]>;
  /** Make the kernel match a network that should exist (after a crash or a hand-made mess). Idempotent. */
  restoreNetwork?(network: Network, endpoints: Endpoint[]): Promise<void>;
}

export function hasReconciler(driver: Driver): driver is Driver & Reconciler {
  return 'listOwned' in driver && 'removeOwned' in driver;
}

/** A remote endpoint as this host's kernel has it: one MAC behind one VTEP, with its addresses. */
export interface ProgrammedPeer {
  mac: string;
  vtep: string;
  ips: string[];
}

/**
 * Endpoints on other hosts, programmed statically on this host's side of a
 * global network (overlay: FDB and neighbour entries on its VXLAN device).
 */
export interface PeerProgramming {
  /** Program a remote endpoint; false when this host has none of the network's devices (no local endpoint). */
  addPeer(network: Network, peer: Peer): Promise<boolean>;
  /** Remove a remote endpoint's entries; absent ones are fine. */
  removePeer(network: Network, peer: Pick<Peer, 'mac' | 'ipv4' | 'ipv6' | 'vtep'>): Promise<void>;
  /** What is programmed now, from the kernel; undefined when the network has no devices on this host. */
  programmedPeers(network: Network): Promise<ProgrammedPeer[] | undefined>;
}

export function hasPeerProgramming(driver: Driver): driver is Driver & PeerProgramming {
  return 'addPeer' in driver && 'programmedPeers' in driver;
}
