/**
 * What a crashed dockerd left, removed when the next one activates the
 * plugin. A dockerd that starts again after a crash removes the sandboxes
 * its containers had, but tells a remote driver nothing: it has not loaded
 * the plugin yet and calls Leave/DeleteEndpoint with force, which skips a
 * driver it cannot find (libnetwork sandbox.delete, endpoint.sbLeave). It
 * activates the plugin when it first needs it, after that cleanup: so
 * Activate is the moment to drop what the dead dockerd left, else those
 * endpoints keep their ports (the restarted container's -p would be
 * refused) and their records.
 */
import type { Controller } from '../../controller/controller.js';
import { NetnsNotFoundError, NotANetnsError, openNetns } from '../../kernel/index.js';
import { log } from '../../log.js';
import type { KeyedLanes } from '../../serial.js';
import { ignoreNotFound } from '../errors.js';
import { DOCKER_SANDBOX_LABEL } from './sandboxes.js';

/** True while a netns is mounted at path. */
function isNetns(path: string): boolean {
  try {
    openNetns(path).close();
    return true;
  } catch (err) {
    if (err instanceof NetnsNotFoundError || err instanceof NotANetnsError) return false;
    throw err;
  }
}

/**
 * Remove what an earlier dockerd left. Safe at Activate, which comes before
 * any other call of a new dockerd: everything of Docker's in the state then
 * is an earlier dockerd's.
 *   - Docker's sandboxes with no netns left at their key, with their
 *     endpoints: their containers are gone. dockerd unmounts a stale
 *     sandbox's netns and leaves the empty file for a later garbage
 *     collection, so "no netns there" rather than "no file". A running
 *     container's netns stays mounted (--live-restore).
 *   - Docker's endpoints joined to no sandbox: dockerd makes an endpoint
 *     when a container starts and joins it at once, so one never joined
 *     was left by a dockerd that died in between.
 */
export async function sweepAfterDockerd(c: Controller, lanes: KeyedLanes): Promise<void> {
  for (const sandbox of await c.state.sandboxes()) {
    const key = sandbox.labels[DOCKER_SANDBOX_LABEL];
    if (key === undefined || isNetns(sandbox.key)) continue;
    await lanes.run(sandbox.key, () => ignoreNotFound(c.deleteSandbox(sandbox.id)));
    log.info({ sandbox: sandbox.name, key }, 'docker sandbox removed: its netns is gone');
  }
  const dockerNetworks = new Set((await c.state.networks()).filter((n) => n.dockerId).map((n) => n.id));
  for (const endpoint of await c.state.endpoints()) {
    // externalAddresses: Docker's (addresses from its IPAM); a netctl sandbox's endpoint is always joined.
    if (endpoint.sandboxId || !endpoint.externalAddresses || !dockerNetworks.has(endpoint.networkId))
      continue;
    await c.removeEndpoint(endpoint);
    log.info({ endpoint: endpoint.name }, 'docker endpoint removed: never joined');
  }
}
