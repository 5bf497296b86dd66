/**
 * What netctl can be asked to do: the one interface that the in-process
 * Controller implements, that the daemon's REST API serves, and that the
 * CLI's HTTP client implements again on the other side of the socket. The
 * CLI is written against this, so it behaves the same with or without a
 * running daemon.
 */
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import type { ConnectRequest, CreateNetworkRequest, CreateSandboxRequest } from '../core/schemas.js';

export interface NetworkDetails {
  network: Network;
  /** Endpoints on the network, with the name of the sandbox each is joined to. */
  endpoints: (Endpoint & { sandboxName?: string })[];
}

export interface SandboxDetails {
  sandbox: Sandbox;
  endpoints: (Endpoint & { networkName: string })[];
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
}
