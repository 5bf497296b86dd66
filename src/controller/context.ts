/**
 * What every room of the controller shares (networks.ts, sandboxes.ts,
 * endpoints.ts, ports.ts): the records, the IPAM, the drivers, the intent
 * runner and the /etc/hosts refresher, and the lookups each of them makes.
 */
import { randomBytes } from 'node:crypto';
import type { Driver } from '../core/driver.js';
import type { IpamDriver } from '../core/ipam.js';
import type { Endpoint, Network, Sandbox, Scope } from '../core/model.js';
import { Errors } from '../errors.js';
import { parseOwner } from '../owners.js';
import type { Attachment } from './claims.js';
import { Gate } from './gate.js';
import { HostsFiles } from './hosts.js';
import { IntentRunner } from './intent-runner.js';
import { type ClusterOptions, Overlay } from './overlay.js';
import type { ClaimOps, State } from './state.js';
import type { HostRoutes } from './subnets.js';

export const newId = () => randomBytes(32).toString('hex');
/** An id in full, as newId makes them (and Docker's NetworkID and EndpointID are). */
const FULL_ID = /^[0-9a-f]{64}$/;

export interface ControllerOptions {
  state: State;
  ipam: IpamDriver;
  drivers: Driver[];
  /** How the store is named in health reports (never with credentials). */
  storeName: string;
  /** The host's routes a network's subnet must not overlap (subnets.ts); none when absent. */
  hostRoutes?: HostRoutes;
  /** This host in a cluster on a shared store (the daemon's): global networks are served here. */
  cluster?: ClusterOptions;
}

export class ControllerContext {
  readonly state: State;
  readonly ipam: IpamDriver;
  readonly drivers: Map<string, Driver>;
  readonly storeName: string;
  readonly hostRoutes: HostRoutes;
  /** Operations side by side, gc alone (gate.ts). */
  readonly gate = new Gate();
  readonly intents: IntentRunner;
  readonly hosts: HostsFiles;
  /** The control plane of global networks: the daemon's on a shared store, else none. */
  readonly overlay: Overlay | undefined;

  /** @param reconcile what settles the intents this process gives up on (the controller's gc) */
  constructor(options: ControllerOptions, reconcile: () => Promise<unknown>) {
    this.state = options.state;
    this.ipam = options.ipam;
    this.drivers = new Map(options.drivers.map((d) => [d.type, d]));
    this.storeName = options.storeName;
    this.hostRoutes = options.hostRoutes ?? (async () => []);
    this.intents = new IntentRunner(this.state, this.gate, this.storeName, reconcile);
    this.hosts = new HostsFiles(this.state);
    this.overlay = options.cluster ? new Overlay(this, options.cluster) : undefined;
  }

  /** A global network is joined only where a daemon on the shared store programs its peers. */
  servedHere(network: Network): Overlay | undefined {
    if (network.scope !== 'global') return undefined;
    if (!this.overlay)
      throw new Errors.SharedStoreRequired(
        network.driver,
        `${this.storeName}, and no daemon with an advertise address serves overlays here`,
      );
    return this.overlay;
  }

  driver(type: string): Driver {
    const driver = this.drivers.get(type);
    if (!driver) throw new Errors.DriverNotFound(type, [...this.drivers.keys()].join(', '));
    return driver;
  }

  /** Docker's order: a full id, then a name, then a unique id prefix (a name may look like an id). */
  async findNetwork(ref: string): Promise<Network> {
    const byId = FULL_ID.test(ref) ? await this.state.network(ref) : undefined;
    if (byId) return byId;
    const byName = await this.state.networkIdByName(ref);
    const network = byName ? await this.state.network(byName) : undefined;
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

  /** As findNetwork: a full id, a name, a unique id prefix. */
  async findSandbox(ref: string): Promise<Sandbox> {
    const byId = FULL_ID.test(ref) ? await this.state.sandbox(ref) : undefined;
    if (byId) return byId;
    const byName = await this.state.sandboxIdByName(ref);
    const sandbox = byName ? await this.state.sandbox(byName) : undefined;
    if (sandbox) return sandbox;
    if (/^[0-9a-f]{6,63}$/.test(ref)) {
      const matches = (await this.state.sandboxes()).filter((s) => s.id.startsWith(ref));
      if (matches.length === 1 && matches[0]) return matches[0];
    }
    throw new Errors.SandboxNotFound(ref);
  }

  async findEndpoint(id: string): Promise<Endpoint> {
    const endpoint = await this.state.endpoint(id);
    if (!endpoint) throw new Errors.EndpointNotFound(id);
    return endpoint;
  }

  async networkOf(endpoint: Endpoint): Promise<Network> {
    const network = await this.state.network(endpoint.networkId);
    if (!network) throw new Errors.NetworkNotFound(endpoint.networkId);
    return network;
  }

  async networksOf(endpoints: readonly Endpoint[]): Promise<Map<string, Network>> {
    const ids = [...new Set(endpoints.map((e) => e.networkId))];
    const found = await Promise.all(ids.map((id) => this.state.network(id)));
    return new Map(found.filter((n): n is Network => n !== undefined).map((n) => [n.id, n]));
  }

  /** A claim's guard on a network: its version now, so a delete that marks it meanwhile fails the claim. */
  async networkGuard(network: Network): Promise<ClaimOps> {
    const current = await this.state.networkVersioned(network.id);
    if (!current || current.network.deleting) throw new Errors.NetworkNotFound(network.name);
    return this.state.networkGuard(network.id, current.version);
  }

  /** The same for a sandbox an endpoint joins (deleteSandbox with ifEmpty marks it). */
  async sandboxGuard(sandbox: Sandbox): Promise<ClaimOps> {
    const current = await this.state.sandboxVersioned(sandbox.id);
    if (!current || current.sandbox.deleting) throw new Errors.SandboxNotFound(sandbox.name);
    return this.state.sandboxGuard(sandbox.id, current.version);
  }

  /** Who holds a claim, for messages: the endpoint's name, or an operation still in flight. */
  async holderName(owner: string): Promise<string> {
    const parsed = parseOwner(owner);
    const endpoint = parsed?.kind === 'ep' ? await this.state.endpoint(parsed.id) : undefined;
    return endpoint?.name ?? `${owner.slice(0, 15)} (in flight)`;
  }
}

/** A driver's view of a sandbox (SandboxInfo) with no interface yet. */
export function sandboxInfo(sandbox: Sandbox) {
  return { id: sandbox.id, key: sandbox.key, ifname: '', placement: 'in-place' as const };
}

/** The SandboxInfo of a sandbox whose record is gone. */
export const NO_SANDBOX = { id: '', key: '', ifname: '', placement: 'in-place' } as const;

/** Where an endpoint is attached (claims.ts's Attachment). */
export function attachmentOf(endpoint: Endpoint, scope: Scope): Attachment {
  return { networkId: endpoint.networkId, scope, sandboxId: endpoint.sandboxId, ifname: endpoint.ifname };
}
