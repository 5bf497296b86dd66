/**
 * Reconcile against a world changed behind netctl's back: sandboxes whose
 * netns went away (a runtime that never sends its DEL), records from an
 * earlier boot, a netns path reused by another namespace, kernel state
 * removed by hand, and objects tagged as netctl's that no record owns.
 * `netctl gc --dry-run` must name exactly what it would change and why; a
 * real gc (or a daemon restart) must change exactly that.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NetctlApi } from '../../../src/controller/api.js';
import { State } from '../../../src/controller/state.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { openStore } from '../../../src/kv/index.js';
import { SANDBOX_RUN_DIR, sandboxRunDir } from '../../../src/paths.js';
import { processStart } from '../../../src/sandbox/identity.js';
import { EMPTY, type Inventory } from '../../helpers/inventory.js';
import { ping } from '../../helpers/ping.js';
import {
  actionKeys,
  assertBuilt,
  Daemon,
  daemonInventory,
  expectMatchesRecords,
  gcCli,
  leftoverKeys,
  netctl,
  records,
  testDir,
  withLocal,
} from './daemon-fixture.js';

beforeAll(assertBuilt);

const sh = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const stateUrl = (dir: string) => `lmdb://${dir}/state/state.lmdb`;

/** A `sleep` child of this test (killed by PID in cleanup): a process that must survive gc. */
const sleepers: ChildProcess[] = [];
function sleeper(): ChildProcess {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  sleepers.push(child);
  return child;
}
const alive = (pid: number) => processStart(pid) !== undefined;

// Processes this file started, by PID (the fixture's afterEach removes the rest).
afterEach(() => {
  for (const child of sleepers.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

/** The two-sandbox network most tests start from; s1 publishes a port. */
async function webWithTwo(api: NetctlApi): Promise<void> {
  await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.66.0.0/24' }] } });
  await api.createSandbox({ name: 's1' });
  await api.createSandbox({ name: 's2' });
  await api.connect({
    network: 'web',
    sandbox: 's1',
    ipv4: '10.66.0.11',
    portMappings: [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }],
  });
  await api.connect({ network: 'web', sandbox: 's2', ipv4: '10.66.0.12' });
}

async function removeAll(api: NetctlApi): Promise<void> {
  for (const s of await api.listSandboxes()) await api.deleteSandbox(s.id);
  for (const n of await api.listNetworks()) await api.deleteNetwork(n.id);
}

/** Change a sandbox record in the store directly (as another boot or a bug would have left it). */
async function editSandbox(dir: string, name: string, change: Record<string, unknown>): Promise<void> {
  const kv = await openStore(stateUrl(dir));
  try {
    const state = new State(kv);
    const id = (await state.sandboxIdByName(name)) as string;
    await state.updateSandbox(id, (s) => ({ ...s, ...change }));
  } finally {
    await kv.close();
  }
}

/** gc --dry-run names exactly `before`→`now`'s leftovers (each with a reason) and changes nothing. */
async function expectDryRun(dir: string, before: Inventory) {
  const now = await daemonInventory(dir);
  const actions = await gcCli(dir, true);
  expect(actionKeys(actions)).toEqual(leftoverKeys(before, now));
  for (const a of actions) expect(a.reason).not.toBe('');
  expect(await daemonInventory(dir)).toEqual(now);
  return actions;
}

/** The gc keys of the claims owner holds (they go with its record). */
const claimKeysOf = (inv: Inventory, owner: string) =>
  inv.claims.filter((c) => c.endsWith(` ${owner}`)).map((c) => `claim ${c.split(' ')[0]}`);

describe('sandboxes the runtime never deleted', () => {
  it('netns deleted by hand while a process still holds it: endpoint, address, host veth and rules are freed', async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    const s1 = (await records(dir)).sandboxes.find((s) => s.name === 's1');
    // A process inside keeps the namespace (and so the veth) alive after its path is gone.
    const holder = spawn('nsenter', [`--net=${s1?.key}`, 'sleep', '120'], { stdio: 'ignore' });
    sleepers.push(holder);
    await new Promise((r) => setTimeout(r, 100));
    const before = await daemonInventory(dir);
    sh('ip', 'netns', 'del', 'netctl-s1');

    const actions = await gcCli(dir, true);
    const ep = (await records(dir)).endpoints.find((e) => e.sandboxId === s1?.id);
    expect(actions.filter((a) => a.kind === 'sandbox' || a.kind === 'endpoint')).toEqual([
      {
        kind: 'sandbox',
        name: 's1',
        owner: `sb:${s1?.id}`,
        action: 'remove',
        reason: 'netns /run/netns/netctl-s1 is gone',
      },
      {
        kind: 'endpoint',
        name: 's1',
        owner: `ep:${ep?.id}`,
        action: 'remove',
        reason: 'its sandbox s1 is removed: netns /run/netns/netctl-s1 is gone',
      },
    ]);
    // Everything s1 held, and nothing else.
    expect(actionKeys(actions)).toEqual(
      [
        `sandbox sb:${s1?.id}`,
        `dir sb:${s1?.id}`,
        `endpoint ep:${ep?.id}`,
        `link ${ep?.driverData.hostIfname}`,
        'address 10.66.0.11/24',
        ...before.rules
          .filter((r) => r.includes(`ep:${ep?.id}`))
          .map((r) => `rule ${r.slice(r.indexOf('-A '))}`),
        ...claimKeysOf(before, `ep:${ep?.id}`),
      ].sort(),
    );
    expect(actionKeys(await gcCli(dir, false))).toEqual(actionKeys(actions));
    await expectMatchesRecords(dir);
    expect((await records(dir)).sandboxes.map((s) => s.name)).toEqual(['s2']);
    expect(await ping('/run/netns/netctl-s2', '10.66.0.1')).toBe(true);
    expect(await gcCli(dir, true)).toEqual([]);
    holder.kill('SIGKILL');
    await withLocal(dir, removeAll);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('a record from before the last boot is freed at daemon start; the netns and process now at its key and pid are left alone', async () => {
    const dir = testDir();
    // A runtime's netns (CNI style: netctl attaches, does not own it).
    sh('ip', 'netns', 'add', 'rt-old');
    const sleep = sleeper();
    await withLocal(dir, async (api) => {
      await webWithTwo(api);
      await api.createSandbox({ name: 'old', key: '/run/netns/rt-old' });
      await api.connect({ network: 'web', sandbox: 'old', ipv4: '10.66.0.13' });
      await api.setSandboxPid('old', sleep.pid as number);
    });
    await editSandbox(dir, 'old', { bootId: 'an-earlier-boot' });

    const before = await daemonInventory(dir);
    const dry = await gcCli(dir, true);
    expect(dry.find((a) => a.kind === 'sandbox')).toMatchObject({
      name: 'old',
      action: 'remove',
      reason: 'made before the last boot',
    });
    const old = (await records(dir)).sandboxes.find((s) => s.name === 'old');
    const ep = (await records(dir)).endpoints.find((e) => e.sandboxId === old?.id);
    expect(actionKeys(dry)).toEqual(
      [
        `sandbox sb:${old?.id}`,
        `endpoint ep:${ep?.id}`,
        `link ${ep?.driverData.hostIfname}`,
        'address 10.66.0.13/24',
        ...claimKeysOf(before, `ep:${ep?.id}`),
      ].sort(),
    );
    expect(await daemonInventory(dir)).toEqual(before);

    const daemon = await Daemon.start(dir);
    expect(daemon.reconcileActions()).toEqual(dry);
    await expectMatchesRecords(dir, { netns: ['rt-old'] });
    expect((await records(dir)).sandboxes.map((s) => s.name).sort()).toEqual(['s1', 's2']);
    expect((await daemonInventory(dir)).netns).toContain('rt-old'); // not netctl's to delete
    expect(alive(sleep.pid as number)).toBe(true); // pid of an earlier boot: not ours to kill
    expect(await ping('/run/netns/netctl-s1', '10.66.0.12')).toBe(true);
    await removeAll(daemon.api);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    sh('ip', 'netns', 'del', 'rt-old');
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('a netns path reused by a new namespace is not the old sandbox: gc frees the sandbox, leaves the new netns', async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    const s1 = (await records(dir)).sandboxes.find((s) => s.name === 's1');
    sh('ip', 'netns', 'del', 'netctl-s1');
    sh('ip', 'netns', 'add', 'netctl-s1'); // someone else's now, same path
    sh('ip', '-n', 'netctl-s1', 'link', 'add', 'theirs', 'type', 'veth', 'peer', 'name', 'theirs-p');

    const dry = await gcCli(dir, true);
    expect(dry.find((a) => a.kind === 'sandbox')).toEqual({
      kind: 'sandbox',
      name: 's1',
      owner: `sb:${s1?.id}`,
      action: 'remove',
      reason: 'netns /run/netns/netctl-s1 is another namespace now',
    });
    expect(dry.some((a) => a.kind === 'netns')).toBe(false);
    expect(actionKeys(await gcCli(dir, false))).toEqual(actionKeys(dry));
    await expectMatchesRecords(dir, { netns: ['netctl-s1'] });
    expect(sh('ip', '-n', 'netctl-s1', '-br', 'link')).toContain('theirs');

    // The name's netns is taken by someone else: creating s1 again fails,
    // and its undo must not delete the stranger's netns.
    await withLocal(dir, async (api) => {
      await expect(api.createSandbox({ name: 's1' })).rejects.toThrow(/EEXIST|exists/);
    });
    expect(sh('ip', '-n', 'netctl-s1', '-br', 'link')).toContain('theirs');
    await expectMatchesRecords(dir, { netns: ['netctl-s1'] });
    sh('ip', 'netns', 'del', 'netctl-s1');
    await withLocal(dir, async (api) => {
      await api.createSandbox({ name: 's1' });
      await api.connect({ network: 'web', sandbox: 's1', ipv4: '10.66.0.11' });
      expect(await ping('/run/netns/netctl-s1', '10.66.0.12')).toBe(true);
      await removeAll(api);
    });
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it("deleteSandbox stops the sandbox's own process, never another that got its pid", async () => {
    const dir = testDir();
    const own = sleeper();
    const stranger = sleeper();
    await withLocal(dir, async (api) => {
      await api.createSandbox({ name: 'a' });
      await api.createSandbox({ name: 'b' });
      await api.setSandboxPid('a', own.pid as number);
      await api.setSandboxPid('b', stranger.pid as number);
    });
    // b's process "died" and its pid went to another process: same pid, another start time.
    await editSandbox(dir, 'b', { pidStart: (processStart(stranger.pid as number) as number) - 1 });
    await withLocal(dir, async (api) => {
      await api.deleteSandbox('a');
      await api.deleteSandbox('b');
    });
    await new Promise((r) => (own.exitCode === null && own.signalCode === null ? own.once('exit', r) : r(0)));
    expect(own.signalCode).toBe('SIGKILL');
    expect(alive(stranger.pid as number)).toBe(true);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });
});

describe('gc in one process, operations in others', () => {
  it('never frees what an operation in flight holds: intents, and kernel state listed before records', async () => {
    const dir = testDir();
    const n = 5;
    await withLocal(dir, async (api) => {
      await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.66.0.0/24' }] } });
      for (let i = 0; i < n; i++) await api.createSandbox({ name: `c${i}` });
    });
    // No daemon: each CLI runs the controller in its own process, over one store.
    const runs = await Promise.all(
      Array.from({ length: n }, (_, i) => [
        netctl(dir, ['network', 'connect', '-p', `${9000 + i}:80`, 'web', `c${i}`]),
        netctl(dir, ['gc', '--format', 'json']),
      ]).flat(),
    );
    for (const r of runs) expect(r).toMatchObject({ status: 0, stderr: '' });
    await expectMatchesRecords(dir);
    expect((await records(dir)).endpoints).toHaveLength(n);
    expect(await gcCli(dir, true)).toEqual([]);
    await withLocal(dir, removeAll);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });
});

describe('kernel state removed by hand', () => {
  it("a sandbox's /etc/hosts left stale (a refresh after a commit failed): gc rewrites it from the records", async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    const s1 = (await records(dir)).sandboxes.find((s) => s.name === 's1');
    const hosts = join(SANDBOX_RUN_DIR, s1?.id as string, 'etc', 'hosts');
    const good = readFileSync(hosts, 'utf8');
    expect(good).toContain('10.66.0.12\ts2');
    writeFileSync(hosts, good.replace('10.66.0.12\ts2\n', ''));

    const dry = await gcCli(dir, true);
    expect(dry).toEqual([
      {
        kind: 'sandbox',
        name: 's1',
        owner: `sb:${s1?.id}`,
        action: 'restore',
        reason: '/etc/hosts does not list its peers as the records have them',
      },
    ]);
    expect(await gcCli(dir, false)).toEqual(dry);
    expect(readFileSync(hosts, 'utf8')).toBe(good);
    expect(await gcCli(dir, true)).toEqual([]);
    await withLocal(dir, removeAll);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('bridge deleted: gc restores it (same MAC, gateway, rules) and re-attaches the veths; traffic flows again', async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    const before = await daemonInventory(dir);
    const web = (await records(dir)).networks[0];
    const bridge = web?.driverData.bridge as string;
    const mac = JSON.parse(sh('ip', '-j', 'link', 'show', bridge))[0].address;
    sh('ip', 'link', 'del', bridge);
    expect(await ping('/run/netns/netctl-s1', '10.66.0.12', 1)).toBe(false);

    const dry = await gcCli(dir, true);
    expect(dry).toEqual([
      {
        kind: 'network',
        name: 'web',
        owner: `net:${web?.id}`,
        action: 'restore',
        reason: expect.stringMatching(new RegExp(`^missing: bridge ${bridge}, .*not up on the bridge`)),
      },
    ]);
    expect(await gcCli(dir, false)).toEqual(dry);
    expect(await daemonInventory(dir)).toEqual(before);
    expect(JSON.parse(sh('ip', '-j', 'link', 'show', bridge))[0].address).toBe(mac);
    expect(await ping('/run/netns/netctl-s1', '10.66.0.12')).toBe(true);
    expect(await ping('/run/netns/netctl-s2', '10.66.0.1')).toBe(true);
    expect(await gcCli(dir, true)).toEqual([]);
    await withLocal(dir, removeAll);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it("rules flushed and a veth detached: a daemon restart puts back the network's and the published port's rules", async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    const before = await daemonInventory(dir);
    const s2 = (await records(dir)).endpoints.find((e) => e.ipv4 === '10.66.0.12/24');
    sh('iptables', '-F', 'NETCTL-BRIDGE');
    sh('iptables', '-t', 'nat', '-F', 'NETCTL-POSTROUTING');
    sh('iptables', '-t', 'nat', '-F', 'NETCTL-PREROUTING');
    sh('ip', 'link', 'set', s2?.driverData.hostIfname as string, 'nomaster');
    const dry = await gcCli(dir, true);
    expect(dry).toHaveLength(1);
    expect(dry[0]?.reason).toMatch(/^missing: \d+ firewall rule\(s\), vn[0-9a-f]+ not up on the bridge$/);

    const daemon = await Daemon.start(dir);
    expect(daemon.reconcileActions()).toEqual(dry);
    expect(await daemonInventory(dir)).toEqual(before);
    expect(await ping('/run/netns/netctl-s1', '10.66.0.12')).toBe(true);
    await removeAll(daemon.api);
    await daemon.stop();
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });
});

describe('orphans: tagged as netctl, owned by no record', () => {
  it('gc removes exactly those, with the reason, and leaves untagged links, rules and netns alone', async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    // Not netctl's: a veth pair without an alias, a rule without a tag, a netns nobody claims.
    sh('ip', 'link', 'add', 'mine-a', 'type', 'veth', 'peer', 'name', 'mine-b');
    sh('iptables', '-A', 'FORWARD', '-i', 'mine-a', '-j', 'ACCEPT');
    sh('ip', 'netns', 'add', 'mine');
    const unrelated = await daemonInventory(dir);

    // netctl's, without records.
    const ep = `ep:${hex(32)}`;
    const net = `net:${hex(32)}`;
    const sb = hex(32);
    // Its peer sits in another netns, so the host sees one link, as with an endpoint's veth.
    sh('ip', 'link', 'add', 'vnorphan', 'type', 'veth', 'peer', 'name', 'vnorphan-p', 'netns', 'mine');
    sh('ip', 'link', 'set', 'vnorphan', 'alias', `netctl:${ep}`);
    sh('ip', 'link', 'add', 'nc-orphan', 'type', 'bridge');
    sh('ip', 'link', 'set', 'nc-orphan', 'alias', `netctl:${net}`);
    sh(
      'iptables',
      '-t',
      'nat',
      '-A',
      'NETCTL-POSTROUTING',
      '-s',
      '10.99.0.0/24',
      '-m',
      'comment',
      '--comment',
      `netctl:${net}/0123abcd`,
      '-j',
      'MASQUERADE',
    );
    sh('ip', 'netns', 'add', 'netctl-orphan');
    mkdirSync(sandboxRunDir(sb), { recursive: true });
    writeFileSync(join(SANDBOX_RUN_DIR, sb, 'netns'), '/run/netns/netctl-orphan\n');
    const kv = await openStore(stateUrl(dir));
    try {
      const ipam = new Ipam(kv);
      const web = (await ipam.listPools()).find((p) => p.subnet === '10.66.0.0/24');
      await ipam.requestAddress(web?.poolId as string, { owner: ep, address: '10.66.0.99' });
      const pool = await ipam.requestPool({ subnet: '10.99.0.0/24', owner: net, gateway: false });
      await ipam.requestAddress(pool.poolId, { owner: net, address: '10.99.0.1' });
    } finally {
      await kv.close();
    }

    const dry = await expectDryRun(dir, unrelated);
    for (const a of dry) expect(a.reason).toBe(`${a.owner} has no record`);
    expect(dry.map((a) => `${a.kind} ${a.owner}`).sort()).toEqual(
      [
        `link ${ep}`,
        `link ${net}`,
        `rule ${net}`,
        `netns sb:${sb}`,
        `address ${ep}`,
        `address ${net}`,
        `pool ${net}`,
      ].sort(),
    );
    expect(actionKeys(await gcCli(dir, false))).toEqual(actionKeys(dry));
    expect(await daemonInventory(dir)).toEqual(unrelated);
    await expectMatchesRecords(dir, { links: ['mine-a', 'mine-b'], netns: ['mine'] });
    expect(await ping('/run/netns/netctl-s1', '10.66.0.12')).toBe(true);

    sh('ip', 'link', 'del', 'mine-a');
    sh('iptables', '-D', 'FORWARD', '-i', 'mine-a', '-j', 'ACCEPT');
    sh('ip', 'netns', 'del', 'mine');
    await withLocal(dir, removeAll);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('a network record lost with endpoints on it: everything of the network and its endpoints goes, the sandboxes stay', async () => {
    const dir = testDir();
    await withLocal(dir, webWithTwo);
    const kv = await openStore(stateUrl(dir));
    try {
      const state = new State(kv);
      const [web] = await state.networks();
      if (web) await state.deleteNetwork(web);
    } finally {
      await kv.close();
    }
    const { endpoints } = await records(dir);
    const now = await daemonInventory(dir);
    const dry = await gcCli(dir, true);
    // Every netctl link, rule, chain, address and pool, and both endpoint records.
    const expected = leftoverKeys(
      { ...EMPTY, netns: now.netns, sandboxDirs: now.sandboxDirs, sandboxes: now.sandboxes },
      now,
    );
    expect(actionKeys(dry)).toEqual(expected);
    for (const e of endpoints) {
      expect(dry).toContainEqual(
        expect.objectContaining({ kind: 'endpoint', owner: `ep:${e.id}`, reason: 'its network is gone' }),
      );
    }
    // The endpoints' own removal cannot unplug without their network's
    // record: a second pass sweeps their veths and rules by owner.
    expect(actionKeys(await gcCli(dir, false))).toEqual(expected);
    await expectMatchesRecords(dir);
    expect((await records(dir)).sandboxes.map((s) => s.name).sort()).toEqual(['s1', 's2']);
    expect(await gcCli(dir, true)).toEqual([]);
    await withLocal(dir, removeAll);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('the intent of a process that died before doing anything is dropped', async () => {
    const dir = testDir();
    const dead = spawn('true');
    await new Promise((r) => dead.once('exit', r));
    const kv = await openStore(stateUrl(dir));
    try {
      await new State(kv).putIntent({
        id: hex(8),
        op: 'connect',
        kind: 'create',
        owners: [`ep:${hex(32)}`],
        pid: dead.pid as number,
        pidStart: 1,
        bootId: 'whatever',
        started: new Date().toISOString(),
      });
    } finally {
      await kv.close();
    }
    const dry = await gcCli(dir, true);
    expect(dry).toEqual([
      expect.objectContaining({
        kind: 'intent',
        name: 'connect',
        action: 'undo',
        reason: `pid ${dead.pid} died mid-connect`,
      }),
    ]);
    expect(await gcCli(dir, false)).toEqual(dry);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });
});
