/**
 * Reconcile (at daemon start) and `netctl gc`: make the records, the IPAM
 * and the kernel agree, after a crash at any point or a runtime that never
 * sent its DEL. Every kernel object and reservation names its owner
 * (`net:<id>`, `ep:<id>`, `sb:<id>`), so each is kept only while its
 * owner's record exists or an operation that is still running holds it.
 *
 * Order matters: finish or undo dead operations first, then drop sandboxes
 * whose namespace is gone (which frees their endpoints), then sweep what
 * has no owner left, then put back what an existing network is missing.
 */
import { hasReconciler } from '../core/driver.js';
import { log } from '../log.js';
import { bootId, isStale } from '../sandbox/identity.js';
import type { GcAction, GcReport } from './api.js';
import type { Controller } from './controller.js';
import { isLive } from './intents.js';

type Act = (action: GcAction, run: () => Promise<void>) => Promise<void>;

export async function collectGarbage(controller: Controller, dryRun: boolean): Promise<GcReport> {
  const { state, ipam, drivers } = controller;
  const actions: GcAction[] = [];
  const act: Act = async (action, run) => {
    actions.push(action);
    if (dryRun) return;
    try {
      await run();
    } catch (err) {
      log.error({ err, action }, 'gc action failed');
      action.reason += ` (failed: ${(err as Error).message})`;
    }
  };

  // 1. Operations whose process died: finish deletes, undo creates.
  const intents = await state.intents();
  const held = new Set(intents.filter(isLive).flatMap((i) => i.owners));
  for (const intent of intents.filter((i) => !isLive(i))) {
    const owners = intent.owners.join(' ');
    if (intent.kind === 'delete') {
      await act(
        {
          kind: 'intent',
          name: intent.op,
          owner: owners,
          action: 'finish',
          reason: `pid ${intent.pid} died mid-delete`,
        },
        async () => {
          for (const owner of intent.owners) await finishDelete(controller, owner);
          await state.deleteIntent(intent.id);
        },
      );
    } else {
      // What it made is swept below: its owners have no record (or, if the
      // record was written, the operation had completed).
      await act(
        {
          kind: 'intent',
          name: intent.op,
          owner: owners,
          action: 'undo',
          reason: `pid ${intent.pid} died mid-create`,
        },
        () => state.deleteIntent(intent.id),
      );
    }
  }

  // 2. Sandboxes whose namespace is gone or from an earlier boot: the
  //    runtime will never send the DEL (host-local's classic leak).
  for (const sandbox of await state.sandboxes()) {
    if (held.has(`sb:${sandbox.id}`) || !isStale(sandbox)) continue;
    await act(
      {
        kind: 'sandbox',
        name: sandbox.name,
        owner: `sb:${sandbox.id}`,
        action: 'remove',
        reason: sandbox.bootId !== bootId() ? 'made before the last boot' : `netns ${sandbox.key} is gone`,
      },
      () => controller.removeSandbox(sandbox),
    );
  }

  // Records as they are now (after the steps above, unless dry run).
  const networks = new Map((await state.networks()).map((n) => [n.id, n]));
  const sandboxes = new Set((await state.sandboxes()).map((s) => s.id));
  const endpoints = await state.endpoints();
  const endpointIds = new Set(endpoints.map((e) => e.id));
  const exists = (owner: string): boolean => {
    if (held.has(owner)) return true;
    const [kind, id = ''] = owner.split(':');
    if (kind === 'net') return networks.has(id);
    if (kind === 'ep') return endpointIds.has(id);
    if (kind === 'sb') return sandboxes.has(id);
    return true; // 'base' and anything not per-object
  };

  // 3. Endpoints whose network or sandbox record is gone.
  for (const endpoint of endpoints) {
    if (held.has(`ep:${endpoint.id}`)) continue;
    const lost = !networks.has(endpoint.networkId)
      ? 'its network is gone'
      : endpoint.sandboxId && !sandboxes.has(endpoint.sandboxId)
        ? 'its sandbox is gone'
        : undefined;
    if (!lost) continue;
    await act(
      { kind: 'endpoint', name: endpoint.name, owner: `ep:${endpoint.id}`, action: 'remove', reason: lost },
      () => controller.removeEndpoint(endpoint),
    );
  }

  // 4. Kernel objects whose owner has no record.
  for (const driver of drivers.values()) {
    if (!hasReconciler(driver)) continue;
    for (const resource of await driver.listOwned()) {
      if (exists(resource.owner)) continue;
      await act(
        {
          kind: resource.kind,
          name: resource.name,
          owner: resource.owner,
          action: 'remove',
          reason: `${resource.owner} has no record`,
        },
        () => driver.removeOwned(resource),
      );
    }
  }

  // 5. Addresses and pools whose owner has no record.
  for (const pool of await ipam.listPools()) {
    if (!exists(pool.owner)) {
      await act(
        {
          kind: 'pool',
          name: pool.pool,
          owner: pool.owner,
          action: 'remove',
          reason: `${pool.owner} has no record`,
        },
        async () => {
          for (const r of await ipam.listReservations(pool.poolId))
            await ipam.releaseAddress(pool.poolId, r.address);
          await ipam.releasePool(pool.poolId);
        },
      );
      continue;
    }
    for (const r of await ipam.listReservations(pool.poolId)) {
      if (exists(r.owner)) continue;
      await act(
        {
          kind: 'address',
          name: r.address,
          owner: r.owner,
          action: 'remove',
          reason: `${r.owner} has no record`,
        },
        () => ipam.releaseAddress(pool.poolId, r.address),
      );
    }
  }

  // 6. Networks whose kernel side is missing (a reboot, a bridge deleted by hand).
  for (const network of networks.values()) {
    const driver = drivers.get(network.driver);
    if (!driver || !hasReconciler(driver) || !driver.restoreNetwork) continue;
    const onNetwork = endpoints.filter((e) => e.networkId === network.id);
    const missing = await driver.missing?.(network, onNetwork);
    if (!missing?.length) continue;
    await act(
      {
        kind: 'network',
        name: network.name,
        owner: `net:${network.id}`,
        action: 'restore',
        reason: `missing: ${missing.join(', ')}`,
      },
      () => driver.restoreNetwork?.(network, onNetwork) ?? Promise.resolve(),
    );
  }

  // 7. Setup shared by a driver's networks (base chains) once none is left.
  for (const driver of drivers.values()) {
    if (!hasReconciler(driver) || !driver.sharedResources) continue;
    if ([...networks.values()].some((n) => n.driver === driver.type)) continue;
    for (const resource of await driver.sharedResources()) {
      await act(
        {
          kind: resource.kind,
          name: resource.name,
          owner: resource.owner,
          action: 'remove',
          reason: `no ${driver.type} network left`,
        },
        () => driver.removeOwned(resource),
      );
    }
  }

  return { dryRun, actions };
}

/** Finish deleting whatever record owner names, if it still exists. */
async function finishDelete(controller: Controller, owner: string): Promise<void> {
  const [kind, id = ''] = owner.split(':');
  if (kind === 'ep') {
    const endpoint = await controller.state.endpoint(id);
    if (endpoint) await controller.removeEndpoint(endpoint);
  } else if (kind === 'net') {
    const network = await controller.state.network(id);
    if (network) await controller.removeNetwork(network);
  } else if (kind === 'sb') {
    const sandbox = await controller.state.sandbox(id);
    if (sandbox) await controller.removeSandbox(sandbox);
  }
}
