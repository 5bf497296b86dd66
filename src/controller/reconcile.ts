/**
 * Reconcile (at daemon start) and `netctl gc`: make the records, the IPAM
 * and the kernel agree, after a crash at any point or a runtime that never
 * sent its DEL. Every kernel object and reservation names its owner
 * (`net:<id>`, `ep:<id>`, `sb:<id>`; a netns through its sandbox's run dir,
 * src/sandbox/owner.ts), so each is kept only while its owner's record
 * exists or an operation that is still running holds it.
 *
 * gc first plans, then acts, so a dry run reports exactly what a real run
 * does: the plan is made from one snapshot, and it models the records the
 * earlier steps remove. Order matters: finish or undo dead operations
 * first, then drop sandboxes whose namespace is gone (which frees their
 * endpoints), then sweep what has no owner left, then put back what an
 * existing network is missing.
 *
 * The snapshot lists kernel objects, reservations and run dirs *before*
 * it reads intents and records. An operation writes its intent before its
 * first side effect and its record before it drops the intent, so whatever
 * the listing saw, the reads after it find its owner's intent or record —
 * even when that operation runs concurrently (`netctl gc` against a busy
 * daemon). Read the other way round, an object made in between would look
 * ownerless and be swept from under the operation making it.
 *
 * docs/controller.md has the owners and the steps; docs/reconcile.md how gc
 * plans, acts and reports.
 */
import { join } from 'node:path';
import { hasExternalConnectivity, hasReconciler } from '../core/driver.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import { deleteNetns, UNCLAIMED } from '../kernel/index.js';
import { log } from '../log.js';
import { removeSandboxEtc, SANDBOX_RUN_DIR, writeSandboxHosts } from '../sandbox/etc.js';
import { netnsInode, staleReason } from '../sandbox/identity.js';
import { listSandboxRunDirs } from '../sandbox/owner.js';
import type { GcAction, GcReport } from './api.js';
import type { Controller } from './controller.js';
import { hostsAreStale, hostsPeers } from './hosts.js';
import type { Intent } from './intents.js';
import { ROOT } from './state.js';

/** Claims are reported by their key below this. */
const CLAIM_PREFIX = `${ROOT}/`;

/** Something an owner holds (kernel object, reservation, run dir), and how to remove it alone. */
interface Holding {
  kind: string;
  name: string;
  owner: string;
  remove: () => Promise<void>;
}

interface Snapshot {
  holdings: Holding[];
  /** Setup shared by all networks of a driver (its base chains). */
  shared: { driver: string; holding: Holding }[];
  intents: Intent[];
  networks: Map<string, Network>;
  endpoints: Map<string, Endpoint>;
  sandboxes: Map<string, Sandbox>;
}

interface Step {
  action: GcAction;
  /** What carries it out; absent for the parts of a teardown that an earlier step's run removes. */
  run?: () => Promise<void>;
}

export async function collectGarbage(controller: Controller, dryRun: boolean): Promise<GcReport> {
  const actions: GcAction[] = [];
  const reported = new Set<string>();
  const keyOf = (a: GcAction) => `${a.kind} ${a.name} ${a.owner} ${a.action}`;
  // A teardown (finishing a delete, removing a stale sandbox or endpoint) is
  // the controller's own removal code; if it missed something, a second
  // pass over a fresh snapshot sweeps it, so one gc always ends clean.
  for (let pass = 0; pass < 2; pass++) {
    const steps = await plan(controller, await snapshot(controller));
    const fresh = steps.filter((s) => !reported.has(keyOf(s.action)));
    for (const { action } of fresh) {
      reported.add(keyOf(action));
      actions.push(action);
    }
    if (dryRun) break;
    for (const { action, run } of steps) {
      if (!run) continue;
      try {
        await run();
      } catch (err) {
        log.error({ err, action }, 'gc action failed');
        action.failed = (err as Error).message;
      }
    }
    if (!steps.some((s) => s.action.kind === 'intent' || s.run === undefined)) break;
  }
  return { dryRun, actions };
}

async function snapshot(controller: Controller): Promise<Snapshot> {
  const { state, ipam, drivers } = controller;
  // Kernel objects, reservations and run dirs first (see the file comment).
  const holdings: Holding[] = [];
  const shared: Snapshot['shared'] = [];
  for (const driver of drivers.values()) {
    if (!hasReconciler(driver)) continue;
    for (const resource of (await driver.sharedResources?.()) ?? []) {
      shared.push({
        driver: driver.type,
        holding: { ...resource, remove: () => driver.removeOwned(resource) },
      });
    }
    for (const resource of await driver.listOwned()) {
      holdings.push({
        kind: resource.kind,
        name: resource.name,
        owner: resource.owner,
        remove: () => driver.removeOwned(resource),
      });
    }
  }
  for (const pool of await ipam.listPools()) {
    const reservations = await ipam.listReservations(pool.poolId);
    for (const r of reservations) {
      holdings.push({
        kind: 'address',
        name: r.address,
        owner: r.owner,
        remove: () => releaseHeld(controller, r.poolId, r.address, r.owner),
      });
    }
    holdings.push({
      kind: 'pool',
      name: pool.pool,
      owner: pool.owner,
      remove: async () => {
        for (const r of await ipam.listReservations(pool.poolId))
          await ipam.releaseAddress(pool.poolId, r.address);
        await ipam.releasePool(pool.poolId);
      },
    });
  }
  // Claims (claims.ts): each owner's share of a claim key is its own holding.
  for (const claim of await state.claims()) {
    for (const owner of claim.owners) {
      holdings.push({
        kind: 'claim',
        name: claim.key.slice(CLAIM_PREFIX.length),
        owner,
        remove: () => state.dropClaim(claim.key, owner),
      });
    }
  }
  const runDirs = listSandboxRunDirs();

  const intents = await state.intents();
  const networks = new Map((await state.networks()).map((n) => [n.id, n]));
  const endpoints = new Map((await state.endpoints()).map((e) => [e.id, e]));
  const sandboxes = new Map((await state.sandboxes()).map((s) => [s.id, s]));

  // A sandbox's netns, known by the path its run dir claims. Never one that
  // a sandbox record names as its key: that path belongs to that sandbox now.
  const keys = new Set([...sandboxes.values()].map((s) => s.key));
  for (const dir of runDirs) {
    const owner = `sb:${dir.id}`;
    const runDir = join(SANDBOX_RUN_DIR, dir.id);
    const netns = dir.netns;
    const ownNetns =
      netns !== undefined &&
      netnsInode(netns) !== undefined &&
      (!keys.has(netns) || sandboxes.get(dir.id)?.key === netns);
    holdings.push(
      ownNetns
        ? {
            kind: 'netns',
            name: netns,
            owner,
            remove: async () => {
              deleteNetns(netns);
              removeSandboxEtc(dir.id);
            },
          }
        : { kind: 'run-dir', name: runDir, owner, remove: async () => removeSandboxEtc(dir.id) },
    );
  }
  return { holdings, shared, intents, networks, endpoints, sandboxes };
}

async function plan(controller: Controller, snap: Snapshot): Promise<Step[]> {
  const { state } = controller;
  const { holdings, shared, intents, networks, endpoints, sandboxes } = snap;
  const steps: Step[] = [];
  const isLive = (i: Intent) => controller.intentIsLive(i);
  const live = new Set(intents.filter(isLive).flatMap((i) => i.owners));
  /** Owners whose records this gc removes: everything they hold goes with them. */
  const gone = new Set<string>();

  const recordOf = (owner: string): { kind: string; name: string } | undefined => {
    const [kind, id = ''] = owner.split(':');
    if (kind === 'net')
      return networks.has(id) ? { kind: 'network', name: networks.get(id)?.name ?? id } : undefined;
    if (kind === 'ep')
      return endpoints.has(id) ? { kind: 'endpoint', name: endpoints.get(id)?.name ?? id } : undefined;
    if (kind === 'sb')
      return sandboxes.has(id) ? { kind: 'sandbox', name: sandboxes.get(id)?.name ?? id } : undefined;
    return undefined;
  };

  /**
   * Plan the removal of owner's record by `run` (or by an earlier step's
   * run when absent), and report what it holds as going with it.
   */
  const teardown = (owner: string, reason: string, run?: () => Promise<void>) => {
    if (gone.has(owner)) return;
    gone.add(owner);
    const record = recordOf(owner);
    if (record)
      steps.push({ action: { ...record, owner, action: 'remove', reason }, ...(run ? { run } : {}) });
    const [kind, id = ''] = owner.split(':');
    const sandbox = kind === 'sb' ? sandboxes.get(id) : undefined;
    if (sandbox) {
      for (const e of endpoints.values()) {
        if (e.sandboxId === sandbox.id)
          teardown(`ep:${e.id}`, `its sandbox ${sandbox.name} is removed: ${reason}`);
      }
    }
    for (const h of holdings) {
      if (h.owner !== owner) continue;
      // removeSandbox leaves a netns that is not (or no longer) the sandbox's own.
      if (h.kind === 'netns' && sandbox && !(sandbox.ownsNetns && !staleReason(sandbox))) continue;
      steps.push({ action: { kind: h.kind, name: h.name, owner, action: 'remove', reason } });
    }
  };

  // 1. Operations whose process died: finish deletes, undo creates.
  for (const intent of intents.filter((i) => !isLive(i))) {
    const died = `pid ${intent.pid} died mid-${intent.op}`;
    const owners = intent.owners.join(' ');
    if (intent.kind === 'delete') {
      steps.push({
        action: { kind: 'intent', name: intent.op, owner: owners, action: 'finish', reason: died },
        run: async () => {
          for (const owner of intent.owners) await finishDelete(controller, owner, intent.op);
          await state.deleteIntent(intent.id);
        },
      });
      for (const owner of intent.owners) teardown(owner, `finishing ${intent.op}: ${died}`);
    } else {
      // What it made is swept below: its owners have no record (or, if the
      // record was written, the operation had completed).
      steps.push({
        action: { kind: 'intent', name: intent.op, owner: owners, action: 'undo', reason: died },
        run: () => state.deleteIntent(intent.id),
      });
    }
  }

  // 2. Sandboxes whose namespace is gone, reused or from an earlier boot:
  //    the runtime will never send the DEL (host-local's classic leak).
  for (const sandbox of sandboxes.values()) {
    const owner = `sb:${sandbox.id}`;
    if (live.has(owner) || gone.has(owner)) continue;
    const stale = staleReason(sandbox);
    if (stale) teardown(owner, stale, () => controller.removeSandbox(sandbox));
  }

  // A link netctl made and died before naming (src/kernel/owner.ts) could be
  // any operation's in flight: it goes once none is running.
  const anyLiveCreate = intents.some((i) => i.kind === 'create' && isLive(i));
  const exists = (owner: string): boolean => {
    if (owner === UNCLAIMED) return anyLiveCreate;
    if (live.has(owner)) return true;
    if (gone.has(owner)) return false;
    const [kind] = owner.split(':');
    if (kind === 'net' || kind === 'ep' || kind === 'sb') return recordOf(owner) !== undefined;
    return true; // 'base' and anything not per-object
  };

  // 3. Endpoints whose network or sandbox record is gone.
  for (const endpoint of endpoints.values()) {
    const owner = `ep:${endpoint.id}`;
    if (live.has(owner) || gone.has(owner)) continue;
    const lost = !exists(`net:${endpoint.networkId}`)
      ? 'its network is gone'
      : endpoint.sandboxId && !exists(`sb:${endpoint.sandboxId}`)
        ? 'its sandbox is gone'
        : undefined;
    if (lost) teardown(owner, lost, () => controller.removeEndpoint(endpoint));
  }

  // 4. Kernel objects, run dirs, addresses and pools whose owner has no
  //    record. Addresses before pools: a pool goes once it holds nothing.
  const order = (h: Holding) => (h.kind === 'pool' ? 1 : 0);
  for (const h of [...holdings].sort((a, b) => order(a) - order(b))) {
    if (gone.has(h.owner) || exists(h.owner)) continue;
    steps.push({
      action: {
        kind: h.kind,
        name: h.name,
        owner: h.owner,
        action: 'remove',
        reason: `${h.owner} has no record`,
      },
      run: h.remove,
    });
  }

  // 5. Networks whose kernel side is missing (a reboot, a bridge deleted by hand).
  for (const network of networks.values()) {
    const owner = `net:${network.id}`;
    if (live.has(owner) || gone.has(owner)) continue;
    const driver = controller.drivers.get(network.driver);
    if (!driver || !hasReconciler(driver) || !driver.restoreNetwork || !driver.missing) continue;
    // Not an endpoint that goes, or that an operation elsewhere is changing.
    const onNetwork = [...endpoints.values()].filter(
      (e) => e.networkId === network.id && !gone.has(`ep:${e.id}`) && !live.has(`ep:${e.id}`),
    );
    const missing = await driver.missing(network, onNetwork);
    if (!missing.length) continue;
    const restore = driver.restoreNetwork.bind(driver);
    steps.push({
      action: {
        kind: 'network',
        name: network.name,
        owner,
        action: 'restore',
        reason: `missing: ${missing.join(', ')}`,
      },
      run: async () => {
        await restore(network, onNetwork);
        await revokeSinceRemoved(controller, network, onNetwork);
      },
    });
  }

  // 6. /etc/hosts of netctl's own sandboxes that a refresh failed to rewrite (the store was down).
  const owned = [...sandboxes.values()].filter(
    (s) => s.ownsNetns && !gone.has(`sb:${s.id}`) && !live.has(`sb:${s.id}`),
  );
  // Removals in this plan rewrite the files they change themselves (removeEndpoint).
  const peers = hostsPeers(owned, [...endpoints.values()]);
  for (const sandbox of owned) {
    const entries = peers.get(sandbox.id) ?? [];
    if (!hostsAreStale(sandbox, entries)) continue;
    steps.push({
      action: {
        kind: 'sandbox',
        name: sandbox.name,
        owner: `sb:${sandbox.id}`,
        action: 'restore',
        reason: '/etc/hosts does not list its peers as the records have them',
      },
      // From the records as they are when it runs (a connect may have come since the plan).
      run: async () => {
        const now = hostsPeers([sandbox], await state.endpoints()).get(sandbox.id) ?? [];
        writeSandboxHosts(sandbox.id, sandbox.hostname, now);
      },
    });
  }

  // 7. Setup shared by a driver's networks (base chains) once none is left.
  for (const { driver, holding } of shared) {
    if ([...networks.values()].some((n) => n.driver === driver && !gone.has(`net:${n.id}`))) continue;
    steps.push({
      action: {
        kind: holding.kind,
        name: holding.name,
        owner: holding.owner,
        action: 'remove',
        reason: `no ${driver} network left`,
      },
      run: holding.remove,
    });
  }
  return steps;
}

/**
 * The plan read the records after the kernel (see the file comment), so an
 * endpoint another process removes, or republishes, while gc restores its
 * network may have had its port rules put back after its own removal took
 * them: read again, and take back the rules of ports its record no longer
 * has, or that a delete in flight is taking.
 */
async function revokeSinceRemoved(controller: Controller, network: Network, endpoints: Endpoint[]) {
  const driver = controller.drivers.get(network.driver);
  if (!driver || !hasExternalConnectivity(driver)) return;
  const removing = new Set(
    (await controller.state.intents())
      .filter((i) => i.kind === 'delete' && controller.intentIsLive(i))
      .flatMap((i) => i.owners),
  );
  for (const endpoint of endpoints) {
    if (!endpoint.portMappings.length) continue;
    const now = removing.has(`ep:${endpoint.id}`) ? undefined : await controller.state.endpoint(endpoint.id);
    const kept = JSON.stringify(now?.portMappings ?? []);
    const stale = endpoint.portMappings.filter((m) => !kept.includes(JSON.stringify(m)));
    if (stale.length) await driver.revokeExternalConnectivity(network, { ...endpoint, portMappings: stale });
  }
}

/** Release an address only while `owner` still holds it (it may have been freed and given out again). */
async function releaseHeld(controller: Controller, poolId: string, address: string, owner: string) {
  const held = (await controller.ipam.listReservations(poolId)).some(
    (r) => r.address === address && r.owner === owner,
  );
  if (held) await controller.ipam.releaseAddress(poolId, address);
}

/** Finish deleting whatever record owner names, if it still exists. */
async function finishDelete(controller: Controller, owner: string, op: string): Promise<void> {
  const [kind, id = ''] = owner.split(':');
  if (kind === 'ep') {
    const endpoint = await controller.state.endpoint(id);
    if (endpoint) await controller.removeEndpoint(endpoint);
  } else if (kind === 'net') {
    const network = await controller.state.network(id);
    if (!network) return;
    // A delete that died before it looked for members: undone if there are any.
    if ((await controller.state.members(id)).length) {
      await controller.state.applyClaims(await controller.unmarkDeleting(id));
      return;
    }
    await controller.removeNetwork(network);
  } else if (kind === 'sb') {
    const sandbox = await controller.state.sandbox(id);
    if (!sandbox) return;
    // A delete-if-empty that died before it looked: undone if something is attached.
    if (op === 'deleteSandboxIfEmpty' && (await controller.state.attachments(id)).length) {
      await controller.state.applyClaims(await controller.unmarkSandbox(id));
      return;
    }
    await controller.removeSandbox(sandbox);
  }
}
