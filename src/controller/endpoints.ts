/**
 * Endpoints: an interface of a sandbox on a network, with its addresses,
 * its place among the network's members and its ports. connect and
 * disconnect in one step (CLI, REST, CNI), or each step on its own (Docker).
 */
import { hasExternalConnectivity } from '../core/driver.js';
import type { JoinInfo } from '../core/info.js';
import type { Reservation } from '../core/ipam.js';
import type { Endpoint, Network, PortMapping, Sandbox } from '../core/model.js';
import {
  type ConnectRequest,
  type CreateEndpointRequest,
  connectSchema,
  createEndpointSchema,
  type JoinRequest,
  joinSchema,
} from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors } from '../errors.js';
import { KvConflictError } from '../kv/index.js';
import { endpointOwner } from '../owners.js';
import {
  type Attachment,
  claimConflict,
  dropAttachment,
  dropPorts,
  portWishes,
  takeAttachment,
  takePorts,
} from './claims.js';
import { attachmentOf, type ControllerContext, NO_SANDBOX, newId, sandboxInfo } from './context.js';
import {
  endpointAddresses,
  endpointMac,
  releaseEndpointAddresses,
  releaseReserved,
} from './endpoint-addresses.js';
import { CLAIM_ATTEMPTS, found, type IntentOptions, retryConflicts } from './intent-runner.js';
import { crashPoint } from './intents.js';
import { checkJoinable, checkPublishable } from './join-rules.js';
import { claimKeys } from './keys.js';
import { makeEndpoint, plug, routedFamilies, settleDefaultRoute, unplug } from './plumbing.js';
import { mergeOps } from './state.js';

/** What a join tells the caller (Docker's JoinResponse). */
export interface JoinResult {
  endpoint: Endpoint;
  join: JoinInfo;
}

/** Where a connect puts its endpoint; ifname and ports as its claims settle them. */
interface Place {
  id: string;
  network: Network;
  sandbox: Sandbox;
  ifIndex: number;
  ifname: string;
  ports: PortMapping[];
}

export class Endpoints {
  constructor(private readonly ctx: ControllerContext) {}

  /**
   * Make an endpoint and join it to a sandbox in one step (the CLI's, and
   * the REST API's): createEndpoint, joinEndpoint and publishPorts under
   * one intent, the interface made in the sandbox with its final name.
   */
  async connect(input: ConnectRequest): Promise<Endpoint> {
    const req = parseRequest(connectSchema, input);
    const network = await this.ctx.findNetwork(req.network);
    const sandbox = await this.ctx.findSandbox(req.sandbox);
    const driver = this.ctx.driver(network.driver);
    checkJoinable(network, sandbox);
    const overlay = this.ctx.servedHere(network);
    if (req.portMappings.length) checkPublishable(network);
    // Only the sandbox's own endpoints: listing every endpoint here would make
    // each join cost more than the one before it.
    const sandboxEndpoints = await this.ctx.state.sandboxEndpoints(sandbox);
    const routed = await routedFamilies(this.ctx, sandboxEndpoints);
    const ifIndex = sandboxEndpoints.length;
    const place: Place = {
      id: newId(),
      network,
      sandbox,
      ifIndex,
      ifname: req.ifname ?? `eth${ifIndex}`,
      ports: [],
    };
    const owner = endpointOwner(place.id);
    const reservations: Reservation[] = [];
    let endpoint: Endpoint | undefined;
    return this.ctx.intents.run(
      'connect',
      'create',
      [owner],
      async (end) => {
        const addresses = await endpointAddresses(
          this.ctx.ipam,
          network,
          owner,
          { ...req, addresses: 'reserve' },
          reservations,
        );
        crashPoint('connect.address');
        endpoint = await makeEndpoint(network, driver, {
          id: place.id,
          networkId: network.id,
          name: sandbox.name,
          sandboxId: sandbox.id,
          ifname: place.ifname,
          mac: endpointMac(req.mac, addresses.ipv4),
          ...addresses,
          portMappings: place.ports,
          aliases: req.aliases,
          driverData: {},
          created: new Date().toISOString(),
        });
        await plug(network, driver, endpoint, sandbox, place.ifname, 'in-place', routed);
        crashPoint('connect.join');
        if (place.ports.length && hasExternalConnectivity(driver)) {
          await driver.programExternalConnectivity(network, endpoint, place.ports);
        }
        crashPoint('connect.record');
        await this.ctx.state.addEndpoint(endpoint, end);
        await overlay?.changed(network, 'join');
        await this.ctx.hosts.refresh(network.id);
        // Connects and disconnects of the sandbox may have been recorded meanwhile (the
        // owner it saw left, another joined first): the route as the records have it now.
        await settleDefaultRoute(this.ctx, sandbox.id, { id: endpoint.id, routed });
        return endpoint;
      },
      async () => {
        if (endpoint) await unplug(this.ctx, network, endpoint);
        await releaseReserved(this.ctx.ipam, owner, reservations);
      },
      this.connectClaims(place, req.portMappings, req.ifname === undefined),
    );
  }

  /**
   * A connect's claims: its place on the network, the sandbox's attachment,
   * its ifname (the next ethN when the one it read was taken meanwhile, if
   * no name was asked for) and its host ports — each settled on place.
   */
  private connectClaims(
    place: Place,
    wanted: Parameters<typeof portWishes>[0],
    nextIfname: boolean,
  ): IntentOptions<Endpoint> {
    const { id, network, sandbox } = place;
    const attachment = () => ({
      networkId: network.id,
      scope: network.scope,
      sandboxId: sandbox.id,
      ifname: place.ifname,
    });
    return {
      take: async () => {
        const guard = await this.ctx.networkGuard(network);
        const taken = await takePorts(this.ctx.state.kv, id, portWishes(wanted), [], (o) =>
          this.ctx.holderName(o),
        );
        place.ports = taken.mappings;
        return mergeOps(
          guard,
          await this.ctx.sandboxGuard(sandbox),
          takeAttachment(id, attachment()),
          taken.claim,
        );
      },
      conflict: (err) => {
        if (nextIfname && err.key === claimKeys.ifname(sandbox.id, place.ifname)) {
          place.ifname = `eth${++place.ifIndex}`;
          return undefined;
        }
        return claimConflict(err, { sandbox: sandbox.name, network: network.name, ifname: place.ifname });
      },
      release: async () =>
        mergeOps(
          dropAttachment(id, attachment()),
          await dropPorts(this.ctx.state.kv, { id, portMappings: place.ports }),
        ),
      landed: async () => {
        const made = found(await this.ctx.state.endpoint(id));
        if (made) await this.ctx.hosts.refresh(network.id);
        return made;
      },
    };
  }

  async disconnect(networkRef: string, sandboxRef: string): Promise<Endpoint> {
    const network = await this.ctx.findNetwork(networkRef);
    const sandbox = await this.ctx.findSandbox(sandboxRef);
    const endpoint = (await this.ctx.state.sandboxEndpoints(sandbox)).find((e) => e.networkId === network.id);
    if (!endpoint) throw new Errors.EndpointNotFound(`${sandbox.name} on ${network.name}`);
    await this.removeEndpoint(endpoint);
    return endpoint;
  }

  // The parts of connect and disconnect, one call each, for a caller that
  // drives an endpoint's life step by step (Docker: CreateEndpoint, Join,
  // ProgramExternalConnectivity, RevokeExternalConnectivity, Leave,
  // DeleteEndpoint). Each runs under its own intent.

  /**
   * An endpoint on a network, joined to no sandbox yet. With an id that
   * exists on the same network, that endpoint (the caller repeating itself).
   */
  async createEndpoint(input: CreateEndpointRequest): Promise<Endpoint> {
    const req = parseRequest(createEndpointSchema, input);
    const network = await this.ctx.findNetwork(req.network);
    const driver = this.ctx.driver(network.driver);
    const id = req.id ?? newId();
    const existing = req.id ? await this.ctx.state.endpoint(id) : undefined;
    if (existing) {
      if (existing.networkId === network.id) return existing;
      throw new Errors.EndpointExists(id, network.name);
    }
    const owner = endpointOwner(id);
    const reservations: Reservation[] = [];
    let endpoint: Endpoint | undefined;
    return this.ctx.intents.run(
      'createEndpoint',
      'create',
      [owner],
      async () => {
        const addresses = await endpointAddresses(this.ctx.ipam, network, owner, req, reservations);
        endpoint = await makeEndpoint(network, driver, {
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
        await this.ctx.state.addEndpoint(endpoint);
        return endpoint;
      },
      async () => {
        if (endpoint) await driver.deleteEndpoint(network, endpoint);
        await releaseReserved(this.ctx.ipam, owner, reservations);
      },
      {
        take: async () =>
          mergeOps(
            await this.ctx.networkGuard(network),
            takeAttachment(id, { networkId: network.id, scope: network.scope }),
          ),
        release: async () => dropAttachment(id, { networkId: network.id, scope: network.scope }),
        landed: async () => found(await this.ctx.state.endpoint(id)),
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
    const endpoint = await this.ctx.findEndpoint(endpointId);
    const network = await this.ctx.networkOf(endpoint);
    const sandbox = await this.ctx.findSandbox(req.sandbox);
    const driver = this.ctx.driver(network.driver);
    checkJoinable(network, sandbox);
    const overlay = this.ctx.servedHere(network);
    if (endpoint.sandboxId && endpoint.sandboxId !== sandbox.id) {
      throw new Errors.InvalidRequest(
        `endpoint ${endpoint.name} is joined to another sandbox: leave it first`,
      );
    }
    const others = (await this.ctx.state.sandboxEndpoints(sandbox)).filter((e) => e.id !== endpoint.id);
    const ifname = req.ifname ?? `eth${others.length}`;
    // Docker names and moves the interface itself ('host-side'): only an interface made in place holds its name.
    const inPlace = req.placement === 'in-place';
    const joined: Endpoint = { ...endpoint, sandboxId: sandbox.id, ...(inPlace ? { ifname } : {}) };
    const attachment: Attachment = {
      networkId: network.id,
      scope: network.scope,
      sandboxId: sandbox.id,
      ...(inPlace ? { ifname } : {}),
    };
    // Joined to this sandbox already: it holds the attachment; the join plugs it anew.
    const rejoin = endpoint.sandboxId === sandbox.id;
    let joinInfo: JoinInfo | undefined;
    return this.ctx.intents.run(
      'join',
      'create',
      [endpointOwner(endpoint.id)],
      async () => {
        const join = await plug(
          network,
          driver,
          joined,
          sandbox,
          ifname,
          req.placement,
          await routedFamilies(this.ctx, others),
        );
        joinInfo = join;
        await this.ctx.state.addEndpoint(joined);
        await overlay?.changed(network, 'join');
        await this.ctx.hosts.refresh(network.id);
        return { endpoint: joined, join };
      },
      () => driver.leave(network, joined, sandboxInfo(sandbox)),
      rejoin
        ? {}
        : {
            take: async () =>
              mergeOps(
                await this.ctx.networkGuard(network),
                await this.ctx.sandboxGuard(sandbox),
                takeAttachment(endpoint.id, attachment, 'join'),
              ),
            conflict: (err) =>
              claimConflict(err, { sandbox: sandbox.name, network: network.name, ifname: attachment.ifname }),
            release: async () => dropAttachment(endpoint.id, attachment, 'join'),
            landed: async () => {
              const record = await this.ctx.state.endpoint(endpoint.id);
              return record?.sandboxId === sandbox.id && joinInfo
                ? { result: { endpoint: record, join: joinInfo } }
                : undefined;
            },
          },
    );
  }

  /**
   * Unplug an endpoint from its sandbox; it stays, joined to nothing, with
   * its addresses. Idempotent: an endpoint joined to nothing is done.
   */
  async leaveEndpoint(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.ctx.findEndpoint(endpointId);
    if (!endpoint.sandboxId) return endpoint;
    const network = await this.ctx.networkOf(endpoint);
    const driver = this.ctx.driver(network.driver);
    const sandbox = await this.ctx.state.sandbox(endpoint.sandboxId);
    return this.ctx.intents.run(
      'leave',
      'delete',
      [endpointOwner(endpoint.id)],
      async () => {
        if (endpoint.portMappings.length && hasExternalConnectivity(driver)) {
          await driver.revokeExternalConnectivity(network, endpoint);
        }
        await driver.leave(network, endpoint, sandbox ? sandboxInfo(sandbox) : NO_SANDBOX);
        const left = await retryConflicts('leave', async () =>
          this.ctx.state.detachEndpoint(
            { ...endpoint, portMappings: [] },
            mergeOps(
              dropAttachment(endpoint.id, attachmentOf(endpoint, network.scope), 'join'),
              await dropPorts(this.ctx.state.kv, endpoint),
            ),
          ),
        );
        if (network.scope === 'global') await this.ctx.overlay?.changed(network, 'leave');
        await this.ctx.hosts.refresh(network.id, endpoint.sandboxId);
        return left;
      },
      async () => undefined,
    );
  }

  /** Remove an endpoint (leaving its sandbox first) and what it holds. */
  async deleteEndpoint(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.ctx.findEndpoint(endpointId);
    await this.removeEndpoint(endpoint);
    return endpoint;
  }

  /** Idempotent removal of an endpoint and everything it holds. */
  async removeEndpoint(endpoint: Endpoint): Promise<void> {
    await this.ctx.intents.run(
      'disconnect',
      'delete',
      [endpointOwner(endpoint.id)],
      async (end) => {
        end.started = true;
        // The record as it is now, on every try: ports a publish claimed since
        // the caller read it (their rules, their claims) go with it too.
        for (let attempt = 1; ; attempt++) {
          const current = await this.ctx.state.endpointVersioned(endpoint.id);
          if (!current) return; // gone already: done
          const seen = current.endpoint;
          const network = await this.ctx.state.network(seen.networkId);
          if (network) {
            await unplug(this.ctx, network, seen);
            crashPoint('disconnect.unplug');
            await releaseEndpointAddresses(this.ctx.ipam, network, seen);
          }
          crashPoint('disconnect.release');
          try {
            await this.ctx.state.deleteEndpoint(
              seen,
              end,
              mergeOps(
                this.ctx.state.endpointGuard(seen.id, current.version),
                dropAttachment(seen.id, attachmentOf(seen, network?.scope ?? 'local')),
                await dropPorts(this.ctx.state.kv, seen),
              ),
            );
          } catch (err) {
            if (!(err instanceof KvConflictError) || attempt >= CLAIM_ATTEMPTS) throw err;
            continue;
          }
          if (network?.scope === 'global') await this.ctx.overlay?.changed(network, 'leave');
          // By the network's id: its record may be lost (gc), its peers' files are not.
          await this.ctx.hosts.refresh(seen.networkId, seen.sandboxId);
          // The route it gave goes with it: the next endpoint's, if there is one.
          if (seen.sandboxId) await settleDefaultRoute(this.ctx, seen.sandboxId);
          return;
        }
      },
      async () => undefined,
      {
        landed: async () => {
          if (await this.ctx.state.endpoint(endpoint.id)) return undefined;
          await this.ctx.hosts.refresh(endpoint.networkId, endpoint.sandboxId);
          return { result: undefined };
        },
      },
    );
  }
}
