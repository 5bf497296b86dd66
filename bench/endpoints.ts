/**
 * bench/endpoints: how endpoints scale on one bridge network (issue 5).
 *
 * A real `netctl daemon` runs as a child process (state in a temp dir),
 * driven over its unix socket with the CLI's HTTP client, as a user drives
 * it. One bridge network; then, one after another, N sandboxes (default
 * 1,000) are created and joined to it — "create+join" is `POST /v1/sandboxes`
 * (a fresh named netns, like `netctl sandbox create`) plus `POST
 * /v1/networks/NET/connect` (veth, address, routes, records) — and at the
 * end each is disconnected and deleted, last first ("leave+delete"). Each
 * operation is timed on its own, so the cost of endpoint #i is known for
 * every i. Reported:
 *   - create+join and leave+delete per endpoint, median and p95;
 *   - growth: the median of the last window of endpoints (951-1,000) over
 *     the first (1-50), and of a narrow window around the 10th (6-15)
 *     against the last ten. For leave+delete, window k is the deletions
 *     made while k endpoints exist (deletion is last-in first-out, so
 *     endpoint #k goes when there are k). Target: last ≤ 1.5× first;
 *   - iptables rules (iptables-save + ip6tables-save, lines `-A`), relative
 *     to before the network existed: after creating the network, with N
 *     endpoints (must be the same: endpoints cost no rule), and after 100
 *     more endpoints that publish one port each (must grow by exactly the
 *     rules of one port, two, per endpoint);
 *   - the daemon's VmRSS/VmHWM (/proc/PID/status) idle and with N
 *     endpoints. Target: ≤ 80 MiB with 1,000;
 *   - where the time goes: one HTTP round trip on the socket (GET
 *     /v1/networks, a one-record listing) as the floor under every call.
 * Reference, same run: the CNI reference plugins (bridge + host-local,
 * /usr/lib/cni) exec'd as a runtime does, per container, for min(N, 300)
 * containers, each with its own named netns made and removed untimed;
 * ADD and DEL timed, also at the start against after a few hundred exist.
 * Compared with our join (connect) and leave (disconnect) of endpoints at
 * the same counts: the same per-container work (veth, address, bridge port,
 * route). The reference's masquerade rules left behind by a DEL whose
 * netns is already gone (a known bug of the bridge plugin) are checked and
 * reported, then removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpApi } from '../src/cli/client.js';
import { createNetns, deleteNetns, linkDel, Netlink, netnsPath } from '../src/kernel/index.js';
import { withCleanup } from './lib/cleanup.js';
import { runCommand, runCommandWithInput } from './lib/command.js';
import { type Daemon, type Memory, startDaemon } from './lib/daemon.js';
import { type Figures, round } from './lib/figures.js';
import { execPlugin, havePlugin } from './lib/reference-cni.js';
import { median, p95 } from './lib/stats.js';
import { fixed, printTable, times } from './lib/table.js';
import { iterations, timeMs } from './lib/timing.js';

export const description =
  'endpoints on one bridge network via the daemon: 1st vs 1,000th create+join/leave+delete, rules, RSS; vs CNI bridge';

const DEFAULT_ENDPOINTS = 1000;
/** Endpoints that publish one port each, for the rule count per port. */
const PUBLISHED = 100;
/** Untimed create+join+leave+delete rounds first (JIT, first-use caches). */
const WARMUP = 5;
/** Round trips timed for the HTTP floor. */
const FLOOR_SAMPLES = 100;
/** Reference containers (ADD'ed one after another, then DEL'ed). */
const REF_MAX = 300;
/** Reference containers whose netns goes before their DEL (the known leak). */
const REF_LEAK_PROBE = 3;
/** Targets (DESIGN.md "Budgets"). */
const GROWTH_TARGET = 1.5;
const RSS_TARGET_MIB = 80;

// Short per-process names: a sandbox's netns is netctl-<name>, bridges and
// chains are recognisable if anything were ever left behind.
const TAG = process.pid.toString(36);
const NETWORK = `nbe${TAG}`;
const sandboxName = (i: number) => `nbe${TAG}-${i}`;
const portSandboxName = (i: number) => `nbe${TAG}-p${i}`;
const warmupName = (i: number) => `nbe${TAG}-w${i}`;
const REF_NETWORK = `nbref${TAG}`;
const REF_BRIDGE = `nbr${TAG}`.slice(0, 15);
const refNetns = (i: number) => `nbr${TAG}-${i}`;
const refContainerId = (i: number) => `nbr${TAG}c${i.toString().padStart(6, '0')}`;

const PUBLISHED_HOST_PORT = 20_000;
/** Rules one published tcp port costs on an IPv4-only network: a DNAT and an ACCEPT (src/firewall/bridge.ts). */
const RULES_PER_PORT = 2;

interface Rules {
  v4: number;
  v6: number;
}
const totalRules = (r: Rules) => r.v4 + r.v6;

/** `iptables-save` and `ip6tables-save`: how many rules (`-A` lines) each holds. */
async function countRules(): Promise<Rules> {
  const count = (text: string) => text.split('\n').filter((line) => line.startsWith('-A ')).length;
  const [v4, v6] = await Promise.all([runCommand('iptables-save', []), runCommand('ip6tables-save', [])]);
  return { v4: count(v4), v6: count(v6) };
}

/** Window [from, to) of per-endpoint samples (index i = endpoint #i+1). */
interface Window {
  label: string;
  from: number;
  to: number;
}

function window(label: string, from: number, to: number): Window {
  return { label, from, to };
}

function windowMedian(samples: readonly number[], w: Window): number {
  return median(samples.slice(w.from, w.to));
}

function windowP95(samples: readonly number[], w: Window): number {
  return p95(samples.slice(w.from, w.to));
}

const range = (w: Window) => `${w.from + 1}-${w.to}`;

/** Per endpoint #i (0-based): how long each part took, ms. */
interface EndpointTimes {
  sandbox: number[];
  connect: number[];
  createJoin: number[];
  disconnect: number[];
  deleteSandbox: number[];
  leaveDelete: number[];
}

interface Ours {
  n: number;
  times: EndpointTimes;
  rules: { base: Rules; network: Rules; full: Rules; published: Rules; afterPorts: Rules; end: Rules };
  memory: { started: Memory; idle: Memory; full: Memory; published: Memory };
  floor: { networks0: number[]; health0: number[]; networksN: number[]; healthN: number[] };
  published: { createJoin: number[]; leaveDelete: number[] };
  daemonExit: string;
}

async function roundTrips(n: number, call: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await timeMs(call));
  return out;
}

/** Remove our sandboxes and network through the API, whatever state a failed run left. */
async function removeLeftovers(api: HttpApi): Promise<void> {
  for (const sandbox of await api.listSandboxes()) {
    if (sandbox.name.startsWith(`nbe${TAG}-`)) await api.deleteSandbox(sandbox.id);
  }
  if ((await api.listNetworks()).some((n) => n.name === NETWORK)) await api.deleteNetwork(NETWORK);
}

function progress(what: string, i: number, n: number): void {
  if ((i + 1) % 100 === 0 || i + 1 === n) process.stderr.write(`bench endpoints: ${what} ${i + 1}/${n}\n`);
}

async function benchOurs(n: number): Promise<Ours> {
  let daemonExit = '';
  const ours = await withCleanup(async (cleanup): Promise<Omit<Ours, 'daemonExit'>> => {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-bench-endpoints-'));
    cleanup.defer('remove temp dir', () => rmSync(dir, { recursive: true, force: true }));
    const rulesBase = await countRules();

    const daemon: Daemon = await startDaemon(dir);
    cleanup.defer('stop the daemon', async () => {
      daemonExit = await daemon.stop();
      if (daemonExit !== 'SIGTERM' && daemonExit !== 'exit 0') {
        throw new Error(`netctl daemon did not exit cleanly on SIGTERM (${daemonExit}):\n${daemon.log()}`);
      }
    });
    const { api } = daemon;
    cleanup.defer('delete sandboxes and network through the API', () => removeLeftovers(api));
    const started = daemon.memory();

    // The floor: one request that does next to nothing in the daemon.
    const networks0 = await roundTrips(FLOOR_SAMPLES, () => api.listNetworks());
    const health0 = await roundTrips(FLOOR_SAMPLES, () => api.health());

    // Room for N + ports + warm-up endpoints and the gateway.
    const subnet = n + PUBLISHED + WARMUP + 2 <= 4094 ? '10.100.0.0/20' : '10.100.0.0/16';
    await api.createNetwork({ name: NETWORK, driver: 'bridge', ipam: { config: [{ subnet }] } });
    const rulesNetwork = await countRules();

    for (let i = 0; i < WARMUP; i++) {
      await api.createSandbox({ name: warmupName(i) });
      await api.connect({ network: NETWORK, sandbox: warmupName(i) });
      await api.disconnect(NETWORK, warmupName(i));
      await api.deleteSandbox(warmupName(i));
    }
    const idle = daemon.memory();

    const times: EndpointTimes = {
      sandbox: [],
      connect: [],
      createJoin: [],
      disconnect: [],
      deleteSandbox: [],
      leaveDelete: [],
    };
    for (let i = 0; i < n; i++) {
      const name = sandboxName(i);
      const sandbox = await timeMs(() => api.createSandbox({ name }));
      const connect = await timeMs(() => api.connect({ network: NETWORK, sandbox: name }));
      times.sandbox.push(sandbox);
      times.connect.push(connect);
      times.createJoin.push(sandbox + connect);
      progress('create+join', i, n);
    }
    const full = daemon.memory();
    const rulesFull = await countRules();
    const networksN = await roundTrips(FLOOR_SAMPLES, () => api.listNetworks());
    const healthN = await roundTrips(FLOOR_SAMPLES, () => api.health());

    // Endpoints that publish one port each.
    const published = { createJoin: [] as number[], leaveDelete: [] as number[] };
    const ports = Math.min(PUBLISHED, n);
    for (let i = 0; i < ports; i++) {
      const name = portSandboxName(i);
      published.createJoin.push(
        await timeMs(async () => {
          await api.createSandbox({ name });
          await api.connect({
            network: NETWORK,
            sandbox: name,
            portMappings: [{ proto: 'tcp', hostPort: PUBLISHED_HOST_PORT + i, containerPort: 80 }],
          });
        }),
      );
    }
    const rulesPublished = await countRules();
    const withPorts = daemon.memory();
    for (let i = ports - 1; i >= 0; i--) {
      const name = portSandboxName(i);
      published.leaveDelete.push(
        await timeMs(async () => {
          await api.disconnect(NETWORK, name);
          await api.deleteSandbox(name);
        }),
      );
    }
    const rulesAfterPorts = await countRules();

    // Leave+delete, last in first out: endpoint #i goes while i exist.
    const leave = new Array<number>(n);
    const del = new Array<number>(n);
    for (let i = n - 1; i >= 0; i--) {
      const name = sandboxName(i);
      leave[i] = await timeMs(() => api.disconnect(NETWORK, name));
      del[i] = await timeMs(() => api.deleteSandbox(name));
      progress('leave+delete', n - 1 - i, n);
    }
    times.disconnect = leave;
    times.deleteSandbox = del;
    times.leaveDelete = leave.map((ms, i) => ms + (del[i] as number));

    await api.deleteNetwork(NETWORK);
    const rulesEnd = await countRules();
    const peak = daemon.memory();

    return {
      n,
      times,
      rules: {
        base: rulesBase,
        network: rulesNetwork,
        full: rulesFull,
        published: rulesPublished,
        afterPorts: rulesAfterPorts,
        end: rulesEnd,
      },
      memory: { started, idle, full: { rssMiB: full.rssMiB, hwmMiB: peak.hwmMiB }, published: withPorts },
      floor: { networks0, health0, networksN, healthN },
      published,
    };
  });
  return { ...ours, daemonExit };
}

interface Reference {
  n: number;
  add: number[];
  /** del[k]: the DEL made while k+1 containers existed (last in, first out). */
  del: number[];
  /** Rules left after every container was DEL'ed with its netns still there. */
  leftAfterDel: number;
  /** Rules left after DELs whose netns was already gone (REF_LEAK_PROBE containers). */
  leftAfterDelWithoutNetns: number;
  addRulesPerContainer: number;
}

/** Remove rules and chains in the nat table that carry the reference network's comment. */
async function removeReferenceRules(): Promise<number> {
  const save = await runCommand('iptables-save', ['-t', 'nat']);
  const marker = `name: \\"${REF_NETWORK}\\"`;
  const lines = save.split('\n').filter((line) => line.startsWith('-A ') && line.includes(marker));
  if (!lines.length) return 0;
  const chains = new Set<string>();
  const script = ['*nat'];
  for (const line of lines) {
    script.push(line.replace(/^-A /, '-D '));
    const target = / -j (CNI-[0-9a-f]+)\b/.exec(line)?.[1];
    if (target) chains.add(target);
  }
  for (const chain of chains) script.push(`-F ${chain}`, `-X ${chain}`);
  script.push('COMMIT', '');
  await runCommandWithInput('iptables-restore', ['--noflush', '--wait'], script.join('\n'));
  return lines.length;
}

async function benchReference(n: number, dir: string): Promise<Reference> {
  return withCleanup(async (cleanup) => {
    const config = {
      cniVersion: '1.0.0',
      name: REF_NETWORK,
      type: 'bridge',
      bridge: REF_BRIDGE,
      isGateway: true,
      ipMasq: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.101.0.0/20' }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: join(dir, 'host-local'),
      },
    };
    const call = (command: 'ADD' | 'DEL', i: number, netns: string) =>
      execPlugin('bridge', config, { command, containerId: refContainerId(i), netns, ifname: 'eth0' });
    const made = new Set<number>();
    const added = new Set<number>();
    const host = Netlink.open();
    cleanup.defer('close netlink handle', () => host.close());
    // The plugin leaves its bridge in place after the last DEL.
    cleanup.defer('remove reference bridge', () => linkDel(host, REF_BRIDGE));
    cleanup.defer('remove reference rules', () => removeReferenceRules());
    cleanup.defer('DEL reference containers and delete their netns', async () => {
      for (const i of added) await call('DEL', i, netnsPath(refNetns(i)));
      for (const i of made) deleteNetns(refNetns(i));
    });

    const rulesBefore = totalRules(await countRules());
    const add: number[] = [];
    for (let i = 0; i < n; i++) {
      createNetns(refNetns(i));
      made.add(i);
      add.push(await timeMs(() => call('ADD', i, netnsPath(refNetns(i)))));
      added.add(i);
      progress('reference ADD', i, n);
    }
    const addRulesPerContainer = (totalRules(await countRules()) - rulesBefore) / n;
    const del = new Array<number>(n);
    for (let i = n - 1; i >= 0; i--) {
      del[i] = await timeMs(() => call('DEL', i, netnsPath(refNetns(i))));
      added.delete(i);
      deleteNetns(refNetns(i));
      made.delete(i);
    }
    const leftAfterDel = totalRules(await countRules()) - rulesBefore;

    // The order a runtime may well use after a crash: the netns is gone first.
    for (let k = 0; k < REF_LEAK_PROBE; k++) {
      const i = n + k;
      createNetns(refNetns(i));
      made.add(i);
      await call('ADD', i, netnsPath(refNetns(i)));
      deleteNetns(refNetns(i));
      made.delete(i);
      await call('DEL', i, netnsPath(refNetns(i)));
    }
    const leftAfterDelWithoutNetns = totalRules(await countRules()) - rulesBefore - leftAfterDel;
    return { n, add, del, leftAfterDel, leftAfterDelWithoutNetns, addRulesPerContainer };
  });
}

function report(ours: Ours, ref: Reference | undefined): Figures {
  const { n, times: t } = ours;
  const w = Math.max(1, Math.min(50, Math.floor(n / 10)));
  const first = window('first', 0, w);
  const last = window('last', n - w, n);
  const narrowFirst = n >= 30 ? window('~10th', 5, 15) : first;
  const narrowLast = n >= 30 ? window(`~${n}th`, n - 10, n) : last;

  // Growth, decile by decile.
  const deciles: Window[] = [];
  const step = Math.max(1, Math.floor(n / 10));
  for (let from = 0; from < n; from += step) deciles.push(window('', from, Math.min(n, from + step)));
  printTable({
    title: `Endpoints on one bridge network, through the daemon's API: cost of endpoint #i (ms, median of the window)`,
    head: [
      'endpoints',
      'create+join',
      'p95',
      '  sandbox',
      '  connect',
      'leave+delete',
      'p95',
      '  disconnect',
      '  delete sandbox',
    ],
    rows: deciles.map((d) => [
      range(d),
      fixed(windowMedian(t.createJoin, d)),
      fixed(windowP95(t.createJoin, d)),
      fixed(windowMedian(t.sandbox, d)),
      fixed(windowMedian(t.connect, d)),
      fixed(windowMedian(t.leaveDelete, d)),
      fixed(windowP95(t.leaveDelete, d)),
      fixed(windowMedian(t.disconnect, d)),
      fixed(windowMedian(t.deleteSandbox, d)),
    ]),
    notes: [
      'create+join = POST /v1/sandboxes (new named netns) + POST /v1/networks/NET/connect, timed at the client.',
      'leave+delete of endpoint #i happens while i endpoints exist (removed last first).',
    ],
  });

  const growth = (samples: number[], a: Window, b: Window) =>
    windowMedian(samples, b) / windowMedian(samples, a);
  const cjGrowth = growth(t.createJoin, first, last);
  const ldGrowth = growth(t.leaveDelete, first, last);
  const verdict = (ratio: number) => (ratio <= GROWTH_TARGET ? 'ok' : 'FAIL');
  printTable({
    title: `Growth from the first endpoints to the ${n}th (target: last ≤ ${GROWTH_TARGET}× first)`,
    head: ['operation', 'window A', 'median ms', 'window B', 'median ms', 'B/A', 'target'],
    rows: [
      [
        'create+join',
        range(first),
        fixed(windowMedian(t.createJoin, first)),
        range(last),
        fixed(windowMedian(t.createJoin, last)),
        times(cjGrowth),
        verdict(cjGrowth),
      ],
      [
        'create+join',
        range(narrowFirst),
        fixed(windowMedian(t.createJoin, narrowFirst)),
        range(narrowLast),
        fixed(windowMedian(t.createJoin, narrowLast)),
        times(growth(t.createJoin, narrowFirst, narrowLast)),
        verdict(growth(t.createJoin, narrowFirst, narrowLast)),
      ],
      [
        '  connect only',
        range(first),
        fixed(windowMedian(t.connect, first)),
        range(last),
        fixed(windowMedian(t.connect, last)),
        times(growth(t.connect, first, last)),
        '',
      ],
      [
        'leave+delete',
        range(first),
        fixed(windowMedian(t.leaveDelete, first)),
        range(last),
        fixed(windowMedian(t.leaveDelete, last)),
        times(ldGrowth),
        verdict(ldGrowth),
      ],
      [
        'leave+delete',
        range(narrowFirst),
        fixed(windowMedian(t.leaveDelete, narrowFirst)),
        range(narrowLast),
        fixed(windowMedian(t.leaveDelete, narrowLast)),
        times(growth(t.leaveDelete, narrowFirst, narrowLast)),
        verdict(growth(t.leaveDelete, narrowFirst, narrowLast)),
      ],
      [
        '  disconnect only',
        range(first),
        fixed(windowMedian(t.disconnect, first)),
        range(last),
        fixed(windowMedian(t.disconnect, last)),
        times(growth(t.disconnect, first, last)),
        '',
      ],
    ],
    notes: [
      `Windows of ${w} endpoints; single endpoints are too noisy to compare (and the narrow windows are noisier).`,
    ],
  });

  const { rules: r } = ours;
  const rel = (x: Rules) => totalRules(x) - totalRules(r.base);
  const ports = ours.published.createJoin.length;
  const perPort = ports ? (totalRules(r.published) - totalRules(r.full)) / ports : 0;
  const rulesFlat = rel(r.full) === rel(r.network);
  const portsExact = perPort === RULES_PER_PORT;
  printTable({
    title: 'iptables rules (iptables-save + ip6tables-save, `-A` lines), relative to before the network',
    head: ['when', 'IPv4', 'IPv6', 'netctl added', 'expected', 'check'],
    rows: [
      ['before the network (absolute)', r.base.v4, r.base.v6, 0, '', ''],
      ['network created', r.network.v4, r.network.v6, rel(r.network), 'base + network rules', ''],
      [
        `${n} endpoints, no ports`,
        r.full.v4,
        r.full.v6,
        rel(r.full),
        rel(r.network),
        rulesFlat ? 'ok' : 'FAIL',
      ],
      [
        `+ ${ports} endpoints, 1 port each`,
        r.published.v4,
        r.published.v6,
        rel(r.published),
        rel(r.full) + RULES_PER_PORT * ports,
        portsExact ? 'ok' : 'FAIL',
      ],
      [
        'ported endpoints removed',
        r.afterPorts.v4,
        r.afterPorts.v6,
        rel(r.afterPorts),
        rel(r.full),
        rel(r.afterPorts) === rel(r.full) ? 'ok' : 'FAIL',
      ],
      ['everything removed', r.end.v4, r.end.v6, rel(r.end), 0, rel(r.end) === 0 ? 'ok' : 'FAIL'],
    ],
    notes: [
      `Rules per published port: ${perPort} (a DNAT in NETCTL-PREROUTING and an ACCEPT in NETCTL-PUBLISH).`,
    ],
  });

  const m = ours.memory;
  const rssOk = m.full.rssMiB <= RSS_TARGET_MIB;
  printTable({
    title: `Daemon memory (/proc/PID/status), target ≤ ${RSS_TARGET_MIB} MiB with 1,000 endpoints`,
    head: ['when', 'VmRSS MiB', 'VmHWM MiB'],
    rows: [
      ['just started', fixed(m.started.rssMiB, 1), fixed(m.started.hwmMiB, 1)],
      ['network + warm-up, 0 endpoints', fixed(m.idle.rssMiB, 1), fixed(m.idle.hwmMiB, 1)],
      [`${n} endpoints`, fixed(m.full.rssMiB, 1), ''],
      [`${n} + ${ports} with ports`, fixed(m.published.rssMiB, 1), fixed(m.published.hwmMiB, 1)],
      ['peak over the run', '', fixed(m.full.hwmMiB, 1)],
    ],
    notes: [`With ${n} endpoints: ${fixed(m.full.rssMiB, 1)} MiB, ${rssOk ? 'within' : 'OVER'} the target.`],
  });

  const f = ours.floor;
  const cjMedian = median(t.createJoin);
  printTable({
    title: 'Where the time goes (medians, ms)',
    head: ['what', 'at 0 endpoints', `at ${n}`],
    rows: [
      [
        'HTTP round trip: GET /v1/networks (the floor)',
        fixed(median(f.networks0), 3),
        fixed(median(f.networksN), 3),
      ],
      ['GET /v1/health (lists every record)', fixed(median(f.health0), 3), fixed(median(f.healthN), 3)],
      [
        'create sandbox (netns, lo up, /etc files, records)',
        fixed(windowMedian(t.sandbox, first)),
        fixed(windowMedian(t.sandbox, last)),
      ],
      [
        'connect (IPAM, veth into netns, address, route, records, hosts)',
        fixed(windowMedian(t.connect, first)),
        fixed(windowMedian(t.connect, last)),
      ],
      [
        'disconnect (veth delete, release, records, hosts)',
        fixed(windowMedian(t.disconnect, first)),
        fixed(windowMedian(t.disconnect, last)),
      ],
      [
        'delete sandbox (netns, /etc files, records)',
        fixed(windowMedian(t.deleteSandbox, first)),
        fixed(windowMedian(t.deleteSandbox, last)),
      ],
      ['create+join with one published port', '', fixed(median(ours.published.createJoin))],
      ['leave+delete with one published port', '', fixed(median(ours.published.leaveDelete))],
    ],
    notes: [
      `The two HTTP round trips of create+join are ${fixed((2 * median(f.networks0) * 100) / cjMedian, 1)} % of its median; the rest is the daemon's work.`,
      'A published port adds one iptables-save + iptables-restore per family to connect and to disconnect.',
    ],
  });

  const figures: Figures = {
    bench: 'endpoints',
    endpoints: n,
    create_join_median_ms: round(cjMedian),
    create_join_p95_ms: round(p95(t.createJoin)),
    leave_delete_median_ms: round(median(t.leaveDelete)),
    leave_delete_p95_ms: round(p95(t.leaveDelete)),
    first_window_ms: round(windowMedian(t.createJoin, first)),
    last_window_ms: round(windowMedian(t.createJoin, last)),
    growth_ratio: round(cjGrowth),
    growth_ratio_10th: round(growth(t.createJoin, narrowFirst, narrowLast)),
    leave_delete_first_window_ms: round(windowMedian(t.leaveDelete, first)),
    leave_delete_last_window_ms: round(windowMedian(t.leaveDelete, last)),
    leave_delete_growth_ratio: round(ldGrowth),
    connect_median_ms: round(median(t.connect)),
    disconnect_median_ms: round(median(t.disconnect)),
    http_floor_ms: round(median(f.networks0)),
    rules_network: rel(r.network),
    rules_1000_endpoints: rel(r.full),
    rules_per_published_port: round(perPort),
    rules_left: rel(r.end),
    rss_idle_mib: round(m.idle.rssMiB),
    rss_1000_mib: round(m.full.rssMiB),
    hwm_peak_mib: round(m.full.hwmMiB),
    daemon_exit: ours.daemonExit,
  };

  if (ref) {
    const k = ref.n;
    const rw = Math.max(1, Math.min(50, Math.floor(k / 5)));
    const rFirst = window('first', 0, rw);
    const rLast = window('last', k - rw, k);
    // Ours at the same counts of endpoints as the reference had containers.
    const oursConnect = t.connect.slice(0, k);
    const oursDisconnect = t.disconnect.slice(0, k);
    const addRatio = median(oursConnect) / median(ref.add);
    const delRatio = median(oursDisconnect) / median(ref.del);
    printTable({
      title: `Per container, side by side: ours through the daemon vs CNI bridge + host-local exec'd (${k} containers each, ms)`,
      head: ['operation', 'ours median', 'p95', 'reference median', 'p95', 'ours/ref'],
      rows: [
        [
          'join (connect) vs ADD',
          fixed(median(oursConnect)),
          fixed(p95(oursConnect)),
          fixed(median(ref.add)),
          fixed(p95(ref.add)),
          times(addRatio),
        ],
        [
          'leave (disconnect) vs DEL',
          fixed(median(oursDisconnect)),
          fixed(p95(oursDisconnect)),
          fixed(median(ref.del)),
          fixed(p95(ref.del)),
          times(delRatio),
        ],
        [
          'create+join (with netns) vs ADD',
          fixed(median(t.createJoin.slice(0, k))),
          fixed(p95(t.createJoin.slice(0, k))),
          fixed(median(ref.add)),
          fixed(p95(ref.add)),
          times(median(t.createJoin.slice(0, k)) / median(ref.add)),
        ],
        [
          'leave+delete (with netns) vs DEL',
          fixed(median(t.leaveDelete.slice(0, k))),
          fixed(p95(t.leaveDelete.slice(0, k))),
          fixed(median(ref.del)),
          fixed(p95(ref.del)),
          times(median(t.leaveDelete.slice(0, k)) / median(ref.del)),
        ],
      ],
      notes: [
        'The reference gets its netns made and removed untimed (as a runtime does before ADD / after DEL); ours',
        'join/leave compare the same work; create+join/leave+delete also make and remove the netns.',
      ],
    });
    printTable({
      title: `Reference growth: containers ${range(rFirst)} vs ${range(rLast)} (ms, medians)`,
      head: [
        'operation',
        range(rFirst),
        range(rLast),
        'ratio',
        `ours ${range(rFirst)}`,
        `ours ${range(rLast)}`,
        'ratio',
      ],
      rows: [
        [
          'ADD / connect',
          fixed(windowMedian(ref.add, rFirst)),
          fixed(windowMedian(ref.add, rLast)),
          times(growth(ref.add, rFirst, rLast)),
          fixed(windowMedian(t.connect, rFirst)),
          fixed(windowMedian(t.connect, rLast)),
          times(growth(t.connect, rFirst, rLast)),
        ],
        [
          'DEL / disconnect',
          fixed(windowMedian(ref.del, rFirst)),
          fixed(windowMedian(ref.del, rLast)),
          times(growth(ref.del, rFirst, rLast)),
          fixed(windowMedian(t.disconnect, rFirst)),
          fixed(windowMedian(t.disconnect, rLast)),
          times(growth(t.disconnect, rFirst, rLast)),
        ],
      ],
      notes: [
        `Reference rules per container (ipMasq): ${round(ref.addRulesPerContainer)}; ours: 0 without published ports.`,
        `Reference rules left after DEL with the netns present: ${ref.leftAfterDel}; after DEL of ${REF_LEAK_PROBE} containers whose netns was already gone: ${ref.leftAfterDelWithoutNetns}` +
          (ref.leftAfterDelWithoutNetns > 0
            ? ' (the known masquerade leak; removed by this benchmark).'
            : '.'),
      ],
    });
    Object.assign(figures, {
      ref_containers: k,
      ref_add_median_ms: round(median(ref.add)),
      ref_del_median_ms: round(median(ref.del)),
      ref_add_growth_ratio: round(growth(ref.add, rFirst, rLast)),
      ref_del_growth_ratio: round(growth(ref.del, rFirst, rLast)),
      ref_rules_per_container: round(ref.addRulesPerContainer),
      ref_rules_leaked_netns_gone: ref.leftAfterDelWithoutNetns,
      ours_vs_ref_add: round(addRatio),
      ours_vs_ref_del: round(delRatio),
    });
  }
  return figures;
}

export default async function run(): Promise<Figures> {
  const n = iterations(DEFAULT_ENDPOINTS);
  const ours = await benchOurs(n);
  let ref: Reference | undefined;
  if (havePlugin('bridge') && havePlugin('host-local')) {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-bench-endpoints-ref-'));
    try {
      ref = await benchReference(Math.min(n, REF_MAX), dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else {
    process.stderr.write('bench endpoints: no bridge/host-local in /usr/lib/cni: reference skipped\n');
  }
  return report(ours, ref);
}
