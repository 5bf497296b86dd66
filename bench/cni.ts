/**
 * bench/cni: per-container CNI ADD and DEL latency (issue 7).
 *
 * Every plugin is exec'd exactly as a container runtime execs it (libcni's
 * invoke): fork/exec of the binary by path, CNI_* in the environment, the
 * configuration on stdin, timed from the spawn to the exit. Per container
 * a netns is made untimed beforehand (the runtime's job), as for the
 * reference.
 *
 *   - reference: /usr/lib/cni/bridge with host-local as its ipam (which
 *     bridge execs in turn), isGateway and ipMasq, as netctl's networks are;
 *   - netctl: the netctl-cni shim (native/cni) forwarding to a running
 *     `netctl daemon` (started as users start it, bin/netctl.js);
 *   - standalone: the same shim with no daemon, so it runs the plugin in a
 *     Node process of its own (the fallback).
 *
 * N containers (default 50, `--iterations N`): ADD one after another, then
 * DEL last first. Reference and netctl are interleaved container by
 * container (which of the two goes first alternates), so both see the same
 * machine; standalone runs before the daemon starts. A few untimed rounds
 * first warm caches (page cache, JIT). Targets (DESIGN.md "Budgets"):
 * ADD and DEL medians ≤ 0.5× the reference.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, deleteNetns, linkDel, Netlink } from '../src/kernel/index.js';
import { packageRoot } from '../src/paths.js';
import { type Cleanup, withCleanup } from './lib/cleanup.js';
import { processCpuMs, startDaemon } from './lib/daemon.js';
import { type Figures, round } from './lib/figures.js';
import { bridgeHostLocalConfig, CNI_PATH, type CniCall, execCni, havePlugin } from './lib/reference-cni.js';
import { median, p95 } from './lib/stats.js';
import { fixed, printTable, times } from './lib/table.js';
import { iterations, timeMs } from './lib/timing.js';

export const description =
  'CNI ADD/DEL per container: netctl-cni shim + daemon, and standalone, vs bridge + host-local';

const DEFAULT_CONTAINERS = 50;
const WARMUP = 3;
const TARGET = 0.5;

const TAG = process.pid.toString(36);
const SHIM = join(packageRoot, 'native', 'build', 'Release', 'netctl-cni');

type Mode = 'reference' | 'netctl' | 'standalone';
const MODES: readonly Mode[] = ['reference', 'netctl', 'standalone'];

interface Samples {
  add: number[];
  del: number[];
}

interface Plugin {
  mode: Mode;
  path: string;
  config: object;
  cniPath: string;
  env: Record<string, string>;
}

/** A short, unique netns name and container id per mode and container. */
const netnsName = (mode: Mode, i: number) => `bc${TAG}${mode[0]}${i}`;
const containerId = (mode: Mode, i: number) => `bench-cni-${TAG}-${mode}-${i}`;

function call(command: 'ADD' | 'DEL', mode: Mode, i: number, netns: string): CniCall {
  return { command, containerId: containerId(mode, i), netns, ifname: 'eth0' };
}

/** The containers of one plugin: ADD'ed and not yet DEL'ed ones are DEL'ed by the cleanup. */
class Containers {
  private readonly netns = new Map<number, string>();
  private readonly added = new Set<number>();

  constructor(
    private readonly plugin: Plugin,
    cleanup: Cleanup,
  ) {
    cleanup.defer(`DEL ${plugin.mode} containers and delete their netns`, async () => {
      for (const i of [...this.added].reverse()) await this.run('DEL', i);
      for (const path of this.netns.values()) deleteNetns(path);
    });
  }

  private run(command: 'ADD' | 'DEL', i: number): Promise<string> {
    const { path, config, cniPath, env, mode } = this.plugin;
    return execCni(path, config, call(command, mode, i, this.netns.get(i) ?? ''), { cniPath, env });
  }

  /** ADD container i (its netns made untimed first); returns ms and the address it got. */
  async add(i: number): Promise<{ ms: number; address: string }> {
    this.netns.set(i, createNetns(netnsName(this.plugin.mode, i)));
    let out = '';
    const ms = await timeMs(async () => {
      out = await this.run('ADD', i);
    });
    this.added.add(i);
    const address = (JSON.parse(out) as { ips?: { address: string }[] }).ips?.[0]?.address;
    if (!address) throw new Error(`${this.plugin.mode} ADD of container ${i} gave no address: ${out}`);
    return { ms, address };
  }

  /** DEL container i, then delete its netns untimed; returns ms. */
  async del(i: number): Promise<number> {
    const ms = await timeMs(() => this.run('DEL', i));
    this.added.delete(i);
    const path = this.netns.get(i);
    if (path) deleteNetns(path);
    this.netns.delete(i);
    return ms;
  }
}

/**
 * ADD n containers of each plugin, one after another, then DEL them last
 * first; the plugins take turns per container, alternating who goes first.
 */
async function measure(plugins: Plugin[], n: number, cleanup: Cleanup): Promise<Map<Mode, Samples>> {
  const containers = plugins.map((p) => new Containers(p, cleanup));
  const samples = new Map(plugins.map((p) => [p.mode, { add: [] as number[], del: [] as number[] }]));
  const turn = (i: number) => (i % 2 === 0 ? plugins.keys() : [...plugins.keys()].reverse());
  for (let w = 0; w < WARMUP; w++) {
    for (const c of containers) await c.add(n + w);
    for (const c of containers) await c.del(n + w);
  }
  const addresses = plugins.map(() => new Set<string>());
  for (let i = 0; i < n; i++) {
    for (const k of turn(i)) {
      const { ms, address } = await containers[k]!.add(i);
      samples.get(plugins[k]!.mode)!.add.push(ms);
      addresses[k]!.add(address);
    }
  }
  plugins.forEach((p, k) => {
    if (addresses[k]!.size !== n)
      throw new Error(`${p.mode}: ${n} ADDs gave ${addresses[k]!.size} addresses`);
  });
  for (let i = n - 1; i >= 0; i--) {
    for (const k of turn(i)) samples.get(plugins[k]!.mode)!.del.unshift(await containers[k]!.del(i));
  }
  return samples;
}

async function bench(n: number): Promise<{
  samples: Map<Mode, Samples>;
  daemonExit: string;
  daemonCpuMs: { user: number; system: number };
}> {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-bench-cni-'));
  try {
    return await withCleanup(async (cleanup) => {
      const binDir = join(dir, 'bin');
      mkdirSync(binDir);
      // As `netctl cni install` puts it in a runtime's plugin dir.
      symlinkSync(SHIM, join(binDir, 'netctl-cni'));
      const stateDir = join(dir, 'state');
      const ourEnv = { NETCTL_STATE_DIR: stateDir, NETCTL_SOCKET: join(stateDir, 'api.sock') };
      const ours = (mode: Mode, subnet: string): Plugin => ({
        mode,
        path: join(binDir, 'netctl-cni'),
        config: { cniVersion: '1.0.0', name: `bc${TAG}${mode[0]}`, type: 'netctl-cni', subnet },
        cniPath: `${binDir}:${CNI_PATH}`,
        env: ourEnv,
      });
      const refBridge = `bcr${TAG}`.slice(0, 15);
      const reference: Plugin = {
        mode: 'reference',
        path: join(CNI_PATH, 'bridge'),
        config: bridgeHostLocalConfig({
          name: `bc${TAG}r`,
          bridge: refBridge,
          subnet: '10.111.0.0/24',
          dataDir: join(dir, 'host-local'),
        }),
        cniPath: CNI_PATH,
        env: {},
      };
      const host = Netlink.open();
      cleanup.defer('close netlink handle', () => host.close());
      // The reference plugin leaves its bridge behind after the last DEL.
      cleanup.defer('remove the reference bridge', () => linkDel(host, refBridge));

      // Standalone first, with no daemon on the socket: the shim runs node.
      const standalone = ours('standalone', '10.113.0.0/24');
      const first = await measure([standalone], n, cleanup);

      const daemon = await startDaemon(stateDir);
      let daemonExit = '';
      cleanup.defer('stop the daemon', async () => {
        daemonExit = await daemon.stop();
      });
      const netctl = ours('netctl', '10.112.0.0/24');
      // Registered after the daemon's stop, so it runs before it.
      cleanup.defer('remove the netctl networks', async () => {
        for (const p of [netctl, standalone])
          await daemon.api.deleteNetwork((p.config as { name: string }).name);
      });
      const cpuBefore = processCpuMs(daemon.pid);
      const second = await measure([reference, netctl], n, cleanup);
      const cpuAfter = processCpuMs(daemon.pid);
      const daemonCpuMs = {
        user: cpuAfter.user - cpuBefore.user,
        system: cpuAfter.system - cpuBefore.system,
      };
      await cleanup.runAll();
      return { samples: new Map([...first, ...second]), daemonExit, daemonCpuMs };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function run(): Promise<Figures> {
  if (!havePlugin('bridge') || !havePlugin('host-local')) {
    throw new Error(`bench cni needs the reference bridge and host-local plugins in ${CNI_PATH}`);
  }
  const n = iterations(DEFAULT_CONTAINERS);
  const { samples, daemonExit, daemonCpuMs } = await bench(n);
  // ADD and DEL of each container, warm-up ones included.
  const user = daemonCpuMs.user / (n + WARMUP);
  const system = daemonCpuMs.system / (n + WARMUP);
  const s = (mode: Mode) => samples.get(mode)!;
  const ref = s('reference');
  const stat = (mode: Mode, verb: keyof Samples) => ({
    median: median(s(mode)[verb]),
    p95: p95(s(mode)[verb]),
  });
  const rows = (['add', 'del'] as const).flatMap((verb) =>
    MODES.map((mode) => {
      const { median: m, p95: p } = stat(mode, verb);
      const ratio = m / median(ref[verb]);
      const judged = mode === 'netctl' ? (ratio <= TARGET ? 'ok' : 'OVER') : '';
      return [
        `${verb.toUpperCase()} ${mode}`,
        fixed(m),
        fixed(p),
        mode === 'reference' ? '' : times(ratio),
        mode === 'netctl' ? `≤ ${TARGET}×` : '',
        judged,
      ];
    }),
  );
  printTable({
    title: `CNI ADD and DEL per container, ${n} containers (ms, spawn to exit)`,
    head: ['verb / plugin', 'median', 'p95', 'ratio (median)', 'target', ''],
    rows,
    notes: [
      'reference: /usr/lib/cni/bridge + host-local; netctl: the netctl-cni shim + a running daemon;',
      'standalone: the shim with no daemon, running the plugin in a node process of its own.',
      `Daemon CPU time per container, ADD and DEL: ${fixed(user)} ms user + ${fixed(system)} ms system.`,
      `Daemon stopped: ${daemonExit}.`,
    ],
  });
  const figures: Figures = {
    containers: n,
    ours_daemon_user_ms_per_container: round(user),
    ours_daemon_system_ms_per_container: round(system),
  };
  for (const mode of MODES) {
    const prefix = mode === 'netctl' ? 'ours' : mode === 'reference' ? 'ref' : 'standalone';
    for (const verb of ['add', 'del'] as const) {
      const { median: m, p95: p } = stat(mode, verb);
      figures[`${prefix}_${verb}_ms`] = round(m);
      figures[`${prefix}_${verb}_p95_ms`] = round(p);
    }
  }
  for (const verb of ['add', 'del'] as const) {
    figures[`${verb}_ratio`] = round(stat('netctl', verb).median / stat('reference', verb).median);
    figures[`${verb}_p95_ratio`] = round(stat('netctl', verb).p95 / stat('reference', verb).p95);
    figures[`standalone_${verb}_ratio`] = round(
      stat('standalone', verb).median / stat('reference', verb).median,
    );
  }
  return figures;
}
