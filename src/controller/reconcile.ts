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
import { type Driver, hasExternalConnectivity, hasReconciler } from '../core/driver.js';
import type { IpamDriver } from '../core/ipam.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import { deleteNetns, UNCLAIMED } from '../kernel/index.js';
import { log } from '../log.js';
import { endpointOwner, networkOwner, parseOwner, sandboxOwner } from '../owners.js';
import { sandboxRunDir } from '../paths.js';
import { removeSandboxEtc, writeSandboxHosts } from '../sandbox/etc.js';
import { netnsInode, staleReason } from '../sandbox/identity.js';
import { listSandboxRunDirs, type SandboxRunDir } from '../sandbox/owner.js';
import type { GcAction, GcReport } from './api.js';
import { dropClaim, listClaims } from './claims.js';
import { hostsAreStale, hostsPeers } from './hosts.js';
import type { Intent } from './intents.js';
import { ROOT } from './keys.js';
import type { ClaimOps, State } from './state.js';

/** What reconcile needs of the controller (controller.ts passes itself). */
export interface Reconcilable {
  readonly state: State;
  readonly ipam: IpamDriver;
  readonly drivers: ReadonlyMap<string, Driver>;
  intentIsLive(intent: Intent): boolean;
  removeNetwork(network: Network): Promise<void>;
  removeSandbox(sandbox: Sandbox): Promise<void>;
  removeEndpoint(endpoint: Endpoint): Promise<void>;
  unmarkDeleting(networkId: string): Promise<ClaimOps>;
  unmarkSandbox(sandboxId: string): Promise<ClaimOps>;
}

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

export async function collectGarbage(controller: Reconcilable, dryRun: boolean): Promise<GcReport> {
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

async function snapshot(controller: Reconcilable): Promise<Snapshot> {
  const { state } = controller;
  // Kernel objects, reservations and run dirs first (see the file comment).
  const { holdings, shared } = await driverHoldings(controller.drivers);
  holdings.push(...(await ipamHoldings(controller)), ...(await claimHoldings(state)));
  const runDirs = listSandboxRunDirs();
  const intents = await state.intents();
  const networks = new Map((await state.networks()).map((n) => [n.id, n]));
  const endpoints = new Map((await state.endpoints()).map((e) => [e.id, e]));
  const sandboxes = new Map((await state.sandboxes()).map((s) => [s.id, s]));
  holdings.push(...runDirHoldings(runDirs, sandboxes));
  return { holdings, shared, intents, networks, endpoints, sandboxes };
}

/** What each driver owns (links, rules), and its setup shared by all its networks (base chains). */
async function driverHoldings(
  drivers: ReadonlyMap<string, Driver>,
): Promise<{ holdings: Holding[]; shared: Snapshot['shared'] }> {
  const holdings: Holding[] = [];
  const shared: Snapshot['shared'] = [];
  for (const driver of drivers.values()) {
    if (!hasReconciler(driver)) continue;
    for (const resource of (await driver.sharedResources?.()) ?? [])
      shared.push({
        driver: driver.type,
        holding: { ...resource, remove: () => driver.removeOwned(resource) },
      });
    for (const resource of await driver.listOwned()) {
      const { kind, name, owner } = resource;
      holdings.push({ kind, name, owner, remove: () => driver.removeOwned(resource) });
    }
  }
  return { holdings, shared };
}

/**
 * Every address the IPAM holds, and every pool. A global pool's addresses
 * are held by endpoints of every host of the cluster, whose records this
 * host cannot see: they are not this gc's (a dead host's go with its peers,
 * controller/overlay.ts).
 */
async function ipamHoldings(controller: Reconcilable): Promise<Holding[]> {
  const { ipam } = controller;
  const holdings: Holding[] = [];
  const { global } = await ipam.defaultAddressSpaces();
  for (const pool of await ipam.listPools()) {
    const reservations = pool.poolId.startsWith(`${global}/`) ? [] : await ipam.listReservations(pool.poolId);
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
  return holdings;
}

/** Claims (claims.ts): each owner's share of a claim key is its own holding. */
async function claimHoldings(state: State): Promise<Holding[]> {
  return (await listClaims(state.kv)).flatMap((claim) =>
    claim.owners.map((owner) => ({
      kind: 'claim',
      name: claim.key.slice(CLAIM_PREFIX.length),
      owner,
      remove: () => dropClaim(state.kv, claim.key, owner),
    })),
  );
}

/**
 * A sandbox's netns, known by the path its run dir claims, or the run dir
 * alone. Never a netns that a sandbox record names as its key: that path
 * belongs to that sandbox now.
 */
function runDirHoldings(runDirs: SandboxRunDir[], sandboxes: ReadonlyMap<string, Sandbox>): Holding[] {
  const keys = new Set([...sandboxes.values()].map((s) => s.key));
  return runDirs.map((dir): Holding => {
    const owner = sandboxOwner(dir.id);
    const netns = dir.netns;
    const ownNetns =
      netns !== undefined &&
      netnsInode(netns) !== undefined &&
      (!keys.has(netns) || sandboxes.get(dir.id)?.key === netns);
    if (!ownNetns) {
      const runDir = sandboxRunDir(dir.id);
      return { kind: 'run-dir', name: runDir, owner, remove: async () => removeSandboxEtc(dir.id) };
    }
    return {
      kind: 'netns',
      name: netns,
      owner,
      remove: async () => {
        deleteNetns(netns);
        removeSandboxEtc(dir.id);
      },
    };
  });
}

/** gc's steps for one snapshot, phase by phase (the numbers are docs/reconcile.md's). */
async function plan(controller: Reconcilable, snap: Snapshot): Promise<Step[]> {
  const planner = new Planner(controller, snap);
  planner.deadOperations();
  planner.staleSandboxes();
  planner.lostEndpoints();
  planner.orphanHoldings();
  await planner.missingNetworks();
  planner.staleHostsFiles();
  planner.unusedSharedSetup();
  return planner.steps;
}

class Planner {
  readonly steps: Step[] = [];
  /** Owners an operation in flight holds: not gc's to touch. */
  private readonly live: Set<string>;
  /** Owners whose records this gc removes: everything they hold goes with them. */
  private readonly gone = new Set<string>();
  /** A link netctl made and died before naming (src/kernel/owner.ts) could be any create's in flight. */
  private readonly anyLiveCreate: boolean;

  constructor(
    private readonly controller: Reconcilable,
    private readonly snap: Snapshot,
  ) {
    const live = snap.intents.filter((i) => controller.intentIsLive(i));
    this.live = new Set(live.flatMap((i) => i.owners));
    this.anyLiveCreate = live.some((i) => i.kind === 'create');
  }

  /** Neither held by an operation in flight nor already going. */
  private untouched(owner: string): boolean {
    return !this.live.has(owner) && !this.gone.has(owner);
  }

  private recordOf(owner: string): { kind: string; name: string } | undefined {
    const parsed = parseOwner(owner);
    const { networks, endpoints, sandboxes } = this.snap;
    const record =
      parsed?.kind === 'net'
        ? networks.get(parsed.id)
        : parsed?.kind === 'ep'
          ? endpoints.get(parsed.id)
          : parsed?.kind === 'sb'
            ? sandboxes.get(parsed.id)
            : undefined;
    if (!record || !parsed) return undefined;
    return { kind: RECORD_KIND[parsed.kind], name: record.name };
  }

  /** The owner's record exists, or an operation in flight holds it ('base' and the like always do). */
  private exists(owner: string): boolean {
    if (owner === UNCLAIMED) return this.anyLiveCreate;
    if (this.live.has(owner)) return true;
    if (this.gone.has(owner)) return false;
    return parseOwner(owner) ? this.recordOf(owner) !== undefined : true;
  }

  /**
   * Plan the removal of owner's record by `run` (or by an earlier step's
   * run when absent), and report what it holds as going with it.
   */
  private teardown(owner: string, reason: string, run?: () => Promise<void>): void {
    if (this.gone.has(owner)) return;
    this.gone.add(owner);
    const record = this.recordOf(owner);
    if (record)
      this.steps.push({ action: { ...record, owner, action: 'remove', reason }, ...(run ? { run } : {}) });
    const parsed = parseOwner(owner);
    const sandbox = parsed?.kind === 'sb' ? this.snap.sandboxes.get(parsed.id) : undefined;
    if (sandbox) {
      for (const e of this.snap.endpoints.values()) {
        if (e.sandboxId === sandbox.id)
          this.teardown(endpointOwner(e.id), `its sandbox ${sandbox.name} is removed: ${reason}`);
      }
    }
    for (const h of this.snap.holdings) {
      if (h.owner !== owner) continue;
      // removeSandbox leaves a netns that is not (or no longer) the sandbox's own.
      if (h.kind === 'netns' && sandbox && !(sandbox.ownsNetns && !staleReason(sandbox))) continue;
      this.steps.push({ action: { kind: h.kind, name: h.name, owner, action: 'remove', reason } });
    }
  }

  /** 1. Operations whose process died: finish deletes, undo creates. */
  deadOperations(): void {
    const { controller } = this;
    for (const intent of this.snap.intents.filter((i) => !controller.intentIsLive(i))) {
      const died = `pid ${intent.pid} died mid-${intent.op}`;
      const owners = intent.owners.join(' ');
      if (intent.kind === 'delete') {
        this.steps.push({
          action: { kind: 'intent', name: intent.op, owner: owners, action: 'finish', reason: died },
          run: async () => {
            for (const owner of intent.owners) await finishDelete(controller, owner, intent.op);
            await controller.state.deleteIntent(intent.id);
          },
        });
        for (const owner of intent.owners) this.teardown(owner, `finishing ${intent.op}: ${died}`);
      } else {
        // What it made is swept below: its owners have no record (or, if the
        // record was written, the operation had completed).
        this.steps.push({
          action: { kind: 'intent', name: intent.op, owner: owners, action: 'undo', reason: died },
          run: () => controller.state.deleteIntent(intent.id),
        });
      }
    }
  }

  /**
   * 2. Sandboxes whose namespace is gone, reused or from an earlier boot:
   * the runtime will never send the DEL (host-local's classic leak).
   */
  staleSandboxes(): void {
    for (const sandbox of this.snap.sandboxes.values()) {
      const owner = sandboxOwner(sandbox.id);
      const stale = this.untouched(owner) ? staleReason(sandbox) : undefined;
      if (stale) this.teardown(owner, stale, () => this.controller.removeSandbox(sandbox));
    }
  }

  /** 3. Endpoints whose network or sandbox record is gone. */
  lostEndpoints(): void {
    for (const endpoint of this.snap.endpoints.values()) {
      const owner = endpointOwner(endpoint.id);
      if (!this.untouched(owner)) continue;
      const lost = !this.exists(networkOwner(endpoint.networkId))
        ? 'its network is gone'
        : endpoint.sandboxId && !this.exists(sandboxOwner(endpoint.sandboxId))
          ? 'its sandbox is gone'
          : undefined;
      if (lost) this.teardown(owner, lost, () => this.controller.removeEndpoint(endpoint));
    }
  }

  /**
   * 4. Kernel objects, run dirs, addresses and pools whose owner has no
   * record. Addresses before pools: a pool goes once it holds nothing.
   */
  orphanHoldings(): void {
    const order = (h: Holding) => (h.kind === 'pool' ? 1 : 0);
    for (const h of [...this.snap.holdings].sort((a, b) => order(a) - order(b))) {
      if (this.gone.has(h.owner) || this.exists(h.owner)) continue;
      const reason = `${h.owner} has no record`;
      this.steps.push({
        action: { kind: h.kind, name: h.name, owner: h.owner, action: 'remove', reason },
        run: h.remove,
      });
    }
  }

  /** 5. Networks whose kernel side is missing (a reboot, a bridge deleted by hand). */
  async missingNetworks(): Promise<void> {
    const { controller } = this;
    for (const network of this.snap.networks.values()) {
      const owner = networkOwner(network.id);
      if (!this.untouched(owner)) continue;
      const driver = controller.drivers.get(network.driver);
      if (!driver || !hasReconciler(driver) || !driver.restoreNetwork || !driver.missing) continue;
      // Not an endpoint that goes, or that an operation elsewhere is changing.
      const onNetwork = [...this.snap.endpoints.values()].filter(
        (e) => e.networkId === network.id && this.untouched(endpointOwner(e.id)),
      );
      const missing = await driver.missing(network, onNetwork);
      if (!missing.length) continue;
      const restore = driver.restoreNetwork.bind(driver);
      const reason = `missing: ${missing.join(', ')}`;
      this.steps.push({
        action: { kind: 'network', name: network.name, owner, action: 'restore', reason },
        run: async () => {
          await restore(network, onNetwork);
          await revokeSinceRemoved(controller, network, onNetwork);
        },
      });
    }
  }

  /** 6. /etc/hosts of netctl's own sandboxes that a refresh failed to rewrite (the store was down). */
  staleHostsFiles(): void {
    const owned = [...this.snap.sandboxes.values()].filter(
      (s) => s.ownsNetns && this.untouched(sandboxOwner(s.id)),
    );
    // Removals in this plan rewrite the files they change themselves (removeEndpoint).
    const peers = hostsPeers([...this.snap.endpoints.values()]);
    for (const sandbox of owned) {
      if (!hostsAreStale(sandbox, peers(sandbox.id))) continue;
      this.steps.push({
        action: {
          kind: 'sandbox',
          name: sandbox.name,
          owner: sandboxOwner(sandbox.id),
          action: 'restore',
          reason: '/etc/hosts does not list its peers as the records have them',
        },
        // From the records as they are when it runs (a connect may have come since the plan).
        run: async () => {
          const now = hostsPeers(await this.controller.state.endpoints())(sandbox.id);
          writeSandboxHosts(sandbox.id, sandbox.hostname, now);
        },
      });
    }
  }

  /** 7. Setup shared by a driver's networks (base chains) once none is left. */
  unusedSharedSetup(): void {
    const networks = [...this.snap.networks.values()];
    for (const { driver, holding } of this.snap.shared) {
      if (networks.some((n) => n.driver === driver && !this.gone.has(networkOwner(n.id)))) continue;
      const { kind, name, owner } = holding;
      this.steps.push({
        action: { kind, name, owner, action: 'remove', reason: `no ${driver} network left` },
        run: holding.remove,
      });
    }
  }
}

const RECORD_KIND = { net: 'network', ep: 'endpoint', sb: 'sandbox' } as const;

/**
 * The plan read the records after the kernel (see the file comment), so an
 * endpoint another process removes, or republishes, while gc restores its
 * network may have had its port rules put back after its own removal took
 * them: read again, and take back the rules of ports its record no longer
 * has, or that a delete in flight is taking.
 */
async function revokeSinceRemoved(controller: Reconcilable, network: Network, endpoints: Endpoint[]) {
  const driver = controller.drivers.get(network.driver);
  if (!driver || !hasExternalConnectivity(driver)) return;
  const removing = new Set(
    (await controller.state.intents())
      .filter((i) => i.kind === 'delete' && controller.intentIsLive(i))
      .flatMap((i) => i.owners),
  );
  for (const endpoint of endpoints) {
    if (!endpoint.portMappings.length) continue;
    const now = removing.has(endpointOwner(endpoint.id))
      ? undefined
      : await controller.state.endpoint(endpoint.id);
    const kept = JSON.stringify(now?.portMappings ?? []);
    const stale = endpoint.portMappings.filter((m) => !kept.includes(JSON.stringify(m)));
    if (stale.length) await driver.revokeExternalConnectivity(network, { ...endpoint, portMappings: stale });
  }
}

/** Release an address only while `owner` still holds it (it may have been freed and given out again). */
async function releaseHeld(controller: Reconcilable, poolId: string, address: string, owner: string) {
  const held = (await controller.ipam.listReservations(poolId)).some(
    (r) => r.address === address && r.owner === owner,
  );
  if (held) await controller.ipam.releaseAddress(poolId, address);
}

/** Finish deleting whatever record owner names, if it still exists. */
async function finishDelete(controller: Reconcilable, owner: string, op: string): Promise<void> {
  const parsed = parseOwner(owner);
  if (!parsed) return;
  const { kind, id } = parsed;
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
