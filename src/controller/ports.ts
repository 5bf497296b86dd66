/**
 * Published ports: host ports claimed in the same transaction as the
 * endpoint's record (claims.ts), then their rules made by the driver.
 */
import { type ExternalConnectivity, hasExternalConnectivity } from '../core/driver.js';
import type { Endpoint, Network, PortMapping } from '../core/model.js';
import { type PortRequest, portRequestSchema } from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors } from '../errors.js';
import { endpointOwner } from '../owners.js';
import { dropPorts, portWishes, takePorts } from './claims.js';
import type { ControllerContext } from './context.js';
import { confirmWrite, retryConflicts } from './intent-runner.js';
import { checkPublishable } from './join-rules.js';
import { mergeOps } from './state.js';

export class Ports {
  constructor(private readonly ctx: ControllerContext) {}

  /**
   * Publish an endpoint's ports (replacing any it has): host ports resolved
   * as portRequestSchema says and claimed in the same transaction as the
   * endpoint's record (claims.ts), before the rules are made — so two
   * callers never both get a port, and reconcile restores what a crash
   * left half-made.
   */
  async publishPorts(endpointId: string, input: PortRequest[]): Promise<Endpoint> {
    const requests = input.map((p) => parseRequest(portRequestSchema, p));
    const endpoint = await this.ctx.findEndpoint(endpointId);
    const network = await this.ctx.networkOf(endpoint);
    const driver = this.ctx.driver(network.driver);
    if (!hasExternalConnectivity(driver)) {
      if (requests.length) throw new Errors.InvalidRequest(`driver ${driver.type} publishes no ports`);
      return endpoint;
    }
    if (requests.length) checkPublishable(network);
    // Set once the ports are claimed: before that the undo has nothing to give back.
    let published: Endpoint | undefined;
    return this.ctx.intents.run(
      'publish',
      'create',
      [endpointOwner(endpoint.id)],
      async () => {
        // The record as it was when the ports were claimed: its own ports are the ones replaced.
        const { claimed, replaced } = await retryConflicts('publish', async () => {
          const current = await this.ctx.state.endpointVersioned(endpointId);
          if (!current) throw new Errors.EndpointNotFound(endpointId);
          const taken = await takePorts(
            this.ctx.state.kv,
            endpointId,
            portWishes(requests),
            current.endpoint.portMappings,
            (o) => this.ctx.holderName(o),
          );
          const next = { ...current.endpoint, portMappings: taken.mappings };
          // The claim comes first and the rules after: a lost reply is read back, not guessed.
          await confirmWrite(
            () =>
              this.ctx.state.putEndpoint(
                next,
                mergeOps(this.ctx.state.endpointGuard(endpointId, current.version), taken.claim),
              ),
            async () => samePorts((await this.ctx.state.endpoint(next.id))?.portMappings, next.portMappings),
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
    const now = await this.ctx.state.endpoint(endpoint.id);
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
      const current = await this.ctx.state.endpointVersioned(endpointId);
      if (!current) return undefined;
      const { endpoint } = current;
      if (!endpoint.portMappings.length || (expected && !samePorts(endpoint.portMappings, expected)))
        return endpoint;
      await driver.revokeExternalConnectivity(network, endpoint);
      const unpublished: Endpoint = { ...endpoint, portMappings: [] };
      await this.ctx.state.putEndpoint(
        unpublished,
        mergeOps(
          this.ctx.state.endpointGuard(endpointId, current.version),
          await dropPorts(this.ctx.state.kv, endpoint),
        ),
      );
      return unpublished;
    });
  }

  /** Withdraw an endpoint's published ports. Idempotent. */
  async unpublishPorts(endpointId: string): Promise<Endpoint> {
    const endpoint = await this.ctx.findEndpoint(endpointId);
    if (!endpoint.portMappings.length) return endpoint;
    const network = await this.ctx.networkOf(endpoint);
    const driver = this.ctx.driver(network.driver);
    if (!hasExternalConnectivity(driver)) return endpoint;
    return this.ctx.intents.run(
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
}

/** Two lists of port mappings are the same (order included). */
function samePorts(a: PortMapping[] | undefined, b: PortMapping[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
