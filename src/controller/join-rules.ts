/**
 * Who may join what, and publish where: pure rules on the records, checked
 * before anything is claimed (endpoints.ts, ports.ts; the API's fake calls
 * them too).
 */
import type { Network, Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';

/** A sandbox sharing another's namespace joins nothing itself; the host's joins only host networks. */
export function checkJoinable(network: Network, sandbox: Sandbox): void {
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
export function checkPublishable(network: Network): void {
  if (network.internal)
    throw new Errors.InvalidRequest(`network ${network.name} is internal: it publishes no ports`);
}
