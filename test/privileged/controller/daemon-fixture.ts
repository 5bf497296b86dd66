/**
 * Fixtures for tests of the real daemon: `node bin/netctl.js daemon` as a
 * child process with its own socket and state dir (a temp dir per test),
 * driven over its socket with HttpApi or through the CLI, and what netctl
 * left behind in its store and this namespace's kernel
 * (test/helpers/inventory.ts), to compare before and after a crash.
 *
 * Everything a test starts is killed by PID and everything it made is
 * removed in afterEach, even when the test fails; the namespace is the
 * private one of scripts/isolate.sh, shared with no other test file at the
 * same time (the privileged project runs files one by one).
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, expect } from 'vitest';
import { HttpApi } from '../../../src/cli/client.js';
import type { NetctlApi } from '../../../src/controller/api.js';
import { State } from '../../../src/controller/state.js';
import type { Endpoint, Network, Sandbox } from '../../../src/core/model.js';
import { createLocalApi } from '../../../src/daemon/compose.js';
import { type KvStore, openStore } from '../../../src/kv/index.js';
import { packageRoot, SANDBOX_RUN_DIR } from '../../../src/paths.js';
import { probeSocket } from '../../../src/server/listen.js';
import { added, type Inventory, inventory } from '../../helpers/inventory.js';
import { killAll, killSpawned, spawnCollected } from '../../helpers/spawned.js';
import { ipJson } from '../../helpers/tools.js';

const BIN = join(packageRoot, 'bin', 'netctl.js');

/**
 * The daemon runs from dist/ (built by `npm test`'s ensure step or `npm run
 * build`): every source file must have been built at least once.
 */
export function assertBuilt(): void {
  const missing = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) return missing(p);
      if (!entry.name.endsWith('.ts')) return [];
      const built = join(packageRoot, 'dist', relative(packageRoot, p)).replace(/\.ts$/, '.js');
      return existsSync(built) ? [] : [p];
    });
  const unbuilt = missing(join(packageRoot, 'src'));
  if (unbuilt.length)
    throw new Error(`dist/ lacks ${unbuilt[0]}: run \`npm run build\` first (npm test does)`);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const running = new Set<ChildProcess>();
const dirs: string[] = [];

/** A temp dir for one test: the daemon's socket and its state (LMDB). Removed after the test. */
export function testDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-crash-'));
  dirs.push(dir);
  return dir;
}

const socketOf = (dir: string) => join(dir, 'api.sock');
const stateDirOf = (dir: string) => join(dir, 'state');

export class Daemon {
  readonly api: HttpApi;
  readonly exited: Promise<Exit>;
  stderr = '';

  private constructor(
    readonly dir: string,
    readonly proc: ChildProcess,
  ) {
    this.api = new HttpApi(socketOf(dir));
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    proc.stderr?.on('data', (chunk) => {
      this.stderr += chunk;
    });
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  /**
   * Start a daemon on dir's socket and state; resolves once it answers (after its start-up reconcile).
   * `kv`: its --kv (the embedded store in dir's state dir when absent).
   */
  static async start(dir: string, options: { crashAt?: string; kv?: string } = {}): Promise<Daemon> {
    const kv = options.kv ? ['--kv', options.kv] : [];
    const proc = spawn(process.execPath, [BIN, 'daemon', '--socket', socketOf(dir), ...kv], {
      env: {
        PATH: process.env.PATH,
        NETCTL_STATE_DIR: stateDirOf(dir),
        NETCTL_LOG_LEVEL: 'info',
        ...(options.crashAt ? { NETCTL_CRASH_AT: options.crashAt } : {}),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    const daemon = new Daemon(dir, proc);
    let gone = false;
    void daemon.exited.then(() => {
      gone = true;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (gone) throw new Error(`daemon exited before it answered:\n${daemon.stderr}`);
      if (existsSync(socketOf(dir)) && (await probeSocket(socketOf(dir), 200)) === 'live') return daemon;
      if (Date.now() > deadline) throw new Error(`daemon did not answer within 10 s:\n${daemon.stderr}`);
      await sleep(10);
    }
  }

  /** What its start-up reconcile did (logged one action per line). */
  reconcileActions(): { kind: string; name: string; owner: string; action: string; reason: string }[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.includes('"msg":"reconcile"'))
      .map((l) => JSON.parse(l).action);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exited;
  }
}

/**
 * Run fn against a controller in this process over dir's store: the same
 * code as the daemon, without its ~1 s start, for setting up preconditions.
 */
export async function withLocal<T>(dir: string, fn: (api: NetctlApi) => Promise<T>): Promise<T> {
  const local = await createLocalApi({ kv: `lmdb://${stateDirOf(dir)}/state.lmdb` });
  try {
    return await fn(local.api);
  } finally {
    await local.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run the real `netctl` CLI against dir's socket and state; no daemon needs to run. */
export function netctl(
  dir: string,
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return spawnCollected(process.execPath, [BIN, '--socket', socketOf(dir), ...args], {
    env: { PATH: process.env.PATH, NETCTL_STATE_DIR: stateDirOf(dir), NETCTL_LOG_LEVEL: 'warn' },
  });
}

export interface GcActionJson {
  kind: string;
  name: string;
  owner: string;
  action: string;
  reason: string;
}

/** `netctl gc [--dry-run] --format json`, parsed; fails the test on a non-zero exit. */
export async function gcCli(dir: string, dryRun: boolean): Promise<GcActionJson[]> {
  const r = await netctl(dir, ['gc', ...(dryRun ? ['--dry-run'] : []), '--format', 'json']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const report = JSON.parse(r.stdout) as { dryRun: boolean; actions: GcActionJson[] };
  expect(report.dryRun).toBe(dryRun);
  return report.actions;
}

// ------------------------------------------------------------------ inventory

/** Run fn on the store of the daemon of dir (its embedded one), opened afresh and closed after. */
async function withDaemonStore<T>(dir: string, fn: (kv: KvStore) => Promise<T>): Promise<T> {
  const kv = await openStore(undefined, { stateDir: stateDirOf(dir) });
  try {
    return await fn(kv);
  } finally {
    await kv.close();
  }
}

/** inventory() of this namespace's kernel and of the store of the daemon of dir. */
export function daemonInventory(dir: string): Promise<Inventory> {
  return withDaemonStore(dir, (kv) => inventory(kv));
}

/** The records (for expectations derived from them). */
export function records(
  dir: string,
): Promise<{ networks: Network[]; endpoints: Endpoint[]; sandboxes: Sandbox[] }> {
  return withDaemonStore(dir, async (kv) => {
    const state = new State(kv);
    return {
      networks: await state.networks(),
      endpoints: await state.endpoints(),
      sandboxes: await state.sandboxes(),
    };
  });
}

/**
 * The kernel and the IPAM hold exactly what the records say, no more, no
 * less: a bridge (with its rules and pool and gateway) per bridge network,
 * a veth on that bridge and an address per endpoint (and rules per
 * published port), a netns and run dir per sandbox netctl made, no intent.
 * `others` are the links and netns the test made itself, which are not netctl's.
 */
export async function expectMatchesRecords(
  dir: string,
  others: { links?: string[]; netns?: string[] } = {},
): Promise<void> {
  const inv = await daemonInventory(dir);
  const { networks, endpoints, sandboxes } = await records(dir);
  const bridges = new Map(
    networks.filter((n) => n.driver === 'bridge').map((n) => [n.id, n.driverData.bridge as string]),
  );
  const prefix = (cidr: string) => cidr.slice(cidr.indexOf('/'));
  const plugged = endpoints.filter((e) => bridges.has(e.networkId));
  expect(inv.links.filter((l) => !others.links?.includes(l.split(' ')[0] as string))).toEqual(
    [
      ...[...bridges].map(([id, name]) => `${name} netctl:net:${id} master=-`),
      ...plugged.map(
        (e) => `${e.driverData.hostIfname} netctl:ep:${e.id} master=${bridges.get(e.networkId)}`,
      ),
    ].sort(),
  );
  expect(inv.netns.filter((n) => !others.netns?.includes(n))).toEqual(
    sandboxes
      .filter((s) => s.ownsNetns)
      .map((s) => s.key.replace('/run/netns/', ''))
      .sort(),
  );
  expect(inv.sandboxDirs).toEqual(
    sandboxes
      .filter((s) => s.ownsNetns)
      .map((s) => s.id)
      .sort(),
  );
  expect(inv.addresses).toEqual(
    [
      ...networks.flatMap((n) =>
        n.ipam.config.map((c) => `${c.gateway}${prefix(c.subnet)} owner=net:${n.id}`),
      ),
      ...endpoints.filter((e) => e.ipv4).map((e) => `${e.ipv4} owner=ep:${e.id}`),
    ].sort(),
  );
  expect(inv.pools).toEqual(
    networks
      .flatMap((n) =>
        n.ipam.config.map(
          (c) =>
            `${c.subnet} owner=net:${n.id} allocated=${1 + endpoints.filter((e) => e.networkId === n.id).length}`,
        ),
      )
      .sort(),
  );
  const ruleOwners = new Set(
    inv.rules
      .map((r) => /--comment "?netctl:([^/]+)\//.exec(r)?.[1])
      .filter((o) => o !== undefined && o !== 'base'),
  );
  expect([...ruleOwners].sort()).toEqual(
    [
      ...[...bridges.keys()].map((id) => `net:${id}`),
      ...plugged.filter((e) => e.portMappings.length).map((e) => `ep:${e.id}`),
    ].sort(),
  );
  expect(inv.chains.length > 0).toBe(bridges.size > 0);
  expect(inv.intents).toEqual([]);
  for (const s of sandboxes) {
    expect([...s.endpointIds].sort()).toEqual(
      endpoints
        .filter((e) => e.sandboxId === s.id)
        .map((e) => e.id)
        .sort(),
    );
  }
}

/**
 * What gc must report for the leftovers `after` holds beyond `before`, one
 * key per thing: `<kind> <name>` for kernel objects and reservations,
 * `<kind> <owner>` for records. A sandbox's run dir goes with its netns (or
 * alone, as kind run-dir); the sandbox side of a veth goes with the host side.
 */
export function leftoverKeys(before: Inventory, after: Inventory): string[] {
  const extra = added(before, after);
  const known = (lines: string[], token: string) => lines.some((l) => l.includes(token));
  const keys = [
    ...(extra.links ?? []).map((l) => `link ${l.split(' ')[0]}`),
    // netctl's base rules (jumps into its chains) go with the chains.
    ...(extra.rules ?? [])
      .filter((l) => !l.includes('"netctl:base/'))
      .map((l) => `rule ${l.slice(l.indexOf('-A '))}`),
    ...(extra.chains?.length ? ['chains'] : []),
    ...(extra.netns ?? []).map((n) => `netns /run/netns/${n}`),
    ...(extra.sandboxDirs ?? []).map((id) => `dir sb:${id}`),
    // A pool whose count only changed is not a leftover: its addresses are.
    ...(extra.pools ?? [])
      .map((l) => l.split(' ')[0] as string)
      .filter((subnet) => !known(before.pools, `${subnet} `))
      .map((subnet) => `pool ${subnet}`),
    ...(extra.addresses ?? []).map((l) => `address ${l.split(' ')[0]}`),
    ...(extra.intents ?? []).map((l) => `intent ${l.split(' ')[0]}`),
    ...(extra.claims ?? []).map((l) => `claim ${l.split(' ')[0]}`),
    ...(extra.networks ?? []).map((l) => `network ${l.split(' ')[1]}`),
    ...(extra.endpoints ?? []).map((l) => `endpoint ${l.split(' ')[0]}`),
    // A sandbox whose record only changed (its endpoint list) is not a leftover.
    ...(extra.sandboxes ?? [])
      .map((l) => l.split(' ')[1] as string)
      .filter((owner) => !known(before.sandboxes, owner))
      .map((owner) => `sandbox ${owner}`),
  ];
  return keys.sort();
}

/** The same keys for what a gc report lists. */
export function actionKeys(actions: GcActionJson[]): string[] {
  const keys = actions.flatMap((a) => {
    switch (a.kind) {
      case 'network':
      case 'endpoint':
      case 'sandbox':
        return a.action === 'remove' ? [`${a.kind} ${a.owner}`] : [`${a.kind} ${a.action} ${a.owner}`];
      case 'chains':
        return ['chains'];
      case 'netns':
        return [`netns ${a.name}`, `dir ${a.owner}`];
      case 'run-dir':
        return [`dir ${a.owner}`];
      default:
        return [`${a.kind} ${a.name}`];
    }
  });
  return keys.sort();
}

// ------------------------------------------------------------------ cleanup

const RESTORES = [
  'iptables-restore',
  'ip6tables-restore',
  'iptables-legacy-restore',
  'ip6tables-legacy-restore',
];

/**
 * Kill what the test started (by PID), then remove whatever is left in the
 * run's namespace and the temp dirs. The tests assert an empty inventory
 * themselves; this only keeps a failed test from breaking the next one.
 */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  // Every phase runs even when an earlier one fails; the first error is reported after.
  const phase = async (fn: () => unknown) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  await phase(async () => {
    await killAll(running);
    running.clear();
    await killSpawned();
  });
  await phase(() => {
    for (const ns of readdirSync('/run/netns')) execFileSync('ip', ['netns', 'del', ns]);
  });
  await phase(() => {
    for (let tries = 0; tries < 100; tries++) {
      const link = ipJson<{ ifname: string }[]>(['link', 'show']).find((l) => l.ifname !== 'lo');
      if (!link) break;
      try {
        execFileSync('ip', ['link', 'del', link.ifname], { stdio: 'ignore' });
      } catch {
        // Gone meanwhile: a veth goes with its peer's netns.
      }
    }
  });
  await phase(() => {
    for (const restore of RESTORES) {
      execFileSync(restore, { input: '*filter\nCOMMIT\n*nat\nCOMMIT\n*mangle\nCOMMIT\n*raw\nCOMMIT\n' });
    }
  });
  await phase(() => rmSync(SANDBOX_RUN_DIR, { recursive: true, force: true }));
  for (const dir of dirs.splice(0)) await phase(() => rmSync(dir, { recursive: true, force: true }));
  if (errors.length) throw errors[0];
}

afterEach(cleanupAll, 30_000);
