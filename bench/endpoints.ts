/**
 * bench/endpoints: how endpoints scale on one bridge network (issue 5).
 *
 * A real `netctl daemon` runs as a child process (state in a temp dir),
 * driven over its unix socket with the CLI's HTTP client, as users drive
 * it. One bridge network; then, one after another, N sandboxes (default
 * 1,000) are created and joined to it — "create+join" is `POST
 * /v1/sandboxes` plus `POST /v1/networks/NET/connect` (IPAM, veth with its
 * peer in the netns, address, route, records) — and then each is
 * disconnected and deleted, last first ("leave+delete"). Every call is
 * timed, so the cost of endpoint #i is known for every i. Two series of N:
 *   - attached: sandboxes on a netns the runtime made (`key`), as CNI and
 *     Docker sandboxes are; the netns is made and removed untimed, as for
 *     the reference. This is the per-container path of a host with 1,000
 *     containers, and the headline figures;
 *   - owned: netctl makes the netns and the sandbox's /etc files (`netctl
 *     sandbox create`, `netctl run`), and keeps /etc/hosts of each of them
 *     naming every peer: figures prefixed owned_.
 * Reported:
 *   - create+join and leave+delete per endpoint, median and p95;
 *   - growth: the median of the last window of endpoints (951-1,000) over
 *     the first (1-50), and of the ten around the 10th against the last ten.
 *     Leave+delete of endpoint #k happens while k endpoints exist (last in,
 *     first out). Target: last ≤ 1.5× first;
 *   - iptables rules (iptables-save + ip6tables-save, `-A` lines) relative to
 *     before the network: after creating it, with N endpoints of each series
 *     (must be the same: an endpoint costs no rule), and with 100 of them
 *     publishing one port each (must grow by exactly two rules per port).
 *     A Linux bridge takes at most 1,023 ports (BR_MAX_PORTS), so the 100
 *     are made once 100 of the attached series have left;
 *   - the daemon's memory (/proc/PID/status: VmRSS, split into RssAnon and
 *     RssFile, and VmHWM) idle and with N endpoints. Target: ≤ 80 MiB with
 *     1,000. BENCH_DAEMON_NODE_OPTIONS, if set, is the daemon's
 *     NODE_OPTIONS (e.g. --max-semi-space-size=1), to see what V8 flags buy;
 *   - where the time goes: one HTTP round trip on the socket (GET
 *     /v1/networks, a one-record listing) as the floor under every call.
 * Reference, same run: the CNI reference plugins (bridge + host-local,
 * /usr/lib/cni) exec'd as a runtime does, per container, for min(N, 300)
 * containers, each with its own named netns made and removed untimed; ADD
 * and DEL timed, at the start against after a few hundred exist. Compared
 * with our join (connect) and leave (disconnect) of attached endpoints at
 * the same counts: the same per-container work (veth, address, bridge
 * port, route). The masquerade rules the bridge plugin leaves behind when
 * a DEL comes after the netns is gone (a known bug) are counted, reported
 * and removed.
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
import { bridgeHostLocalConfig, execPlugin, havePlugin } from './lib/reference-cni.js';
import { median, p95 } from './lib/stats.js';
import { fixed, printTable, times } from './lib/table.js';
import { iterations, timeMs } from './lib/timing.js';

export const description =
  'endpoints on one bridge network via the daemon: 1st vs 1,000th create+join/leave+delete, rules, RSS; vs CNI bridge';

const DEFAULT_ENDPOINTS = 1000;
/** NODE_OPTIONS of the daemon (default: none, as `netctl daemon` runs). */
const DAEMON_NODE_OPTIONS = process.env.BENCH_DAEMON_NODE_OPTIONS || undefined;
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
/** Warm-up sandboxes are numbered from here (never clashing with the measured ones). */
const WARMUP_BASE = 1_000_000;
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
  from: number;
  to: number;
}

function window(from: number, to: number): Window {
  return { from, to };
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

/**
 * attached: the sandbox is a netns the runtime made (`key`), as CNI and
 * Docker sandboxes are; the netns is made and removed untimed, as for the
 * reference. owned: netctl makes the netns and the sandbox's /etc files and
 * keeps its /etc/hosts naming the peers on its networks
 * (`netctl sandbox create`, `netctl run`).
 */
type Kind = 'attached' | 'owned';
const KINDS: readonly Kind[] = ['attached', 'owned'];

interface Series {
  kind: Kind;
  times: EndpointTimes;
  /** Rules and daemon memory with all N endpoints of the series joined. */
  rules: Rules;
  memory: Memory;
  /** Round trips with all N joined: GET /v1/networks, GET /v1/health. */
  networksN: number[];
  healthN: number[];
}

interface Ours {
  n: number;
  series: Series[];
  rules: { base: Rules; network: Rules; published: Rules; afterPorts: Rules; end: Rules };
  memory: { started: Memory; idle: Memory; published: Memory; peak: Memory };
  floor: { networks0: number[]; health0: number[] };
  published: { count: number; createJoin: number[]; leaveDelete: number[] };
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

/** Netns made by the benchmark for attached sandboxes (removed at the end whatever happens). */
class RuntimeNetns {
  private readonly made = new Set<string>();

  create(name: string): string {
    const path = createNetns(name);
    this.made.add(name);
    return path;
  }

  delete(name: string): void {
    deleteNetns(name);
    this.made.delete(name);
  }

  deleteAll(): void {
    for (const name of [...this.made]) this.delete(name);
  }
}

/** Sandbox i of a kind: created (untimed netns first if attached), then timed create and join. */
function sandboxOps(kind: Kind, api: HttpApi, runtime: RuntimeNetns) {
  const name = (i: number) => `nbe${TAG}-${kind[0]}${i}`;
  return {
    name,
    async create(i: number): Promise<number> {
      if (kind === 'owned') return timeMs(() => api.createSandbox({ name: name(i) }));
      const key = runtime.create(name(i));
      return timeMs(() => api.createSandbox({ name: name(i), key }));
    },
    join: (i: number) => timeMs(() => api.connect({ network: NETWORK, sandbox: name(i) })),
    leave: (i: number) => timeMs(() => api.disconnect(NETWORK, name(i))),
    async delete(i: number): Promise<number> {
      const ms = await timeMs(() => api.deleteSandbox(name(i)));
      if (kind === 'attached') runtime.delete(name(i));
      return ms;
    },
  };
}

async function runSeries(
  kind: Kind,
  n: number,
  daemon: Daemon,
  runtime: RuntimeNetns,
  /** Run while the series is leaving, once `at` endpoints are left. */
  meanwhile?: { at: number; run: () => Promise<void> },
): Promise<Series> {
  const { api } = daemon;
  const ops = sandboxOps(kind, api, runtime);
  const times: EndpointTimes = {
    sandbox: [],
    connect: [],
    createJoin: [],
    disconnect: [],
    deleteSandbox: [],
    leaveDelete: [],
  };
  for (let i = 0; i < n; i++) {
    const sandbox = await ops.create(i);
    const connect = await ops.join(i);
    times.sandbox.push(sandbox);
    times.connect.push(connect);
    times.createJoin.push(sandbox + connect);
    progress(`${kind}: create+join`, i, n);
  }
  const memory = daemon.memory();
  const rules = await countRules();
  const networksN = await roundTrips(FLOOR_SAMPLES, () => api.listNetworks());
  const healthN = await roundTrips(FLOOR_SAMPLES, () => api.health());

  // Leave+delete, last in first out: endpoint #i goes while i exist.
  times.disconnect = new Array<number>(n);
  times.deleteSandbox = new Array<number>(n);
  for (let i = n - 1; i >= 0; i--) {
    if (meanwhile && i + 1 === meanwhile.at) await meanwhile.run();
    times.disconnect[i] = await ops.leave(i);
    times.deleteSandbox[i] = await ops.delete(i);
    progress(`${kind}: leave+delete`, n - 1 - i, n);
  }
  if (meanwhile?.at === 0) await meanwhile.run();
  times.leaveDelete = times.disconnect.map((ms, i) => ms + (times.deleteSandbox[i] as number));
  return { kind, times, rules, memory, networksN, healthN };
}

async function benchOurs(n: number): Promise<Ours> {
  let daemonExit = '';
  const ours = await withCleanup(async (cleanup): Promise<Omit<Ours, 'daemonExit'>> => {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-bench-endpoints-'));
    cleanup.defer('remove temp dir', () => rmSync(dir, { recursive: true, force: true }));
    const runtime = new RuntimeNetns();
    cleanup.defer('delete the netns made for attached sandboxes', () => runtime.deleteAll());
    const rulesBase = await countRules();

    const daemon: Daemon = await startDaemon(dir, DAEMON_NODE_OPTIONS);
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
      for (const kind of KINDS) {
        const ops = sandboxOps(kind, api, runtime);
        const w = WARMUP_BASE + i;
        await ops.create(w);
        await ops.join(w);
        await ops.leave(w);
        await ops.delete(w);
      }
    }
    const idle = daemon.memory();

    // Endpoints that publish one port each, attached sandboxes as in the
    // first series (only the ports differ), made once that series has left
    // room for them: a Linux bridge takes at most 1,023 ports
    // (BR_MAX_PORTS, net/bridge/br_private.h), so N + 100 may not fit.
    const published = {
      count: Math.min(PUBLISHED, n),
      createJoin: [] as number[],
      leaveDelete: [] as number[],
    };
    let rulesPublished = rulesNetwork;
    let rulesAfterPorts = rulesNetwork;
    let withPorts = idle;
    const publish = async () => {
      const name = (i: number) => `nbe${TAG}-p${i}`;
      for (let i = 0; i < published.count; i++) {
        const key = runtime.create(name(i));
        const port = { proto: 'tcp' as const, hostPort: PUBLISHED_HOST_PORT + i, containerPort: 80 };
        published.createJoin.push(
          await timeMs(async () => {
            await api.createSandbox({ name: name(i), key });
            await api.connect({ network: NETWORK, sandbox: name(i), portMappings: [port] });
          }),
        );
      }
      rulesPublished = await countRules();
      withPorts = daemon.memory();
      for (let i = published.count - 1; i >= 0; i--) {
        published.leaveDelete.push(
          await timeMs(async () => {
            await api.disconnect(NETWORK, name(i));
            await api.deleteSandbox(name(i));
          }),
        );
        runtime.delete(name(i));
      }
      rulesAfterPorts = await countRules();
    };

    const series: Series[] = [];
    for (const kind of KINDS) {
      const meanwhile = series.length === 0 ? { at: n - published.count, run: publish } : undefined;
      series.push(await runSeries(kind, n, daemon, runtime, meanwhile));
    }

    await api.deleteNetwork(NETWORK);
    const rulesEnd = await countRules();
    return {
      n,
      series,
      rules: {
        base: rulesBase,
        network: rulesNetwork,
        published: rulesPublished,
        afterPorts: rulesAfterPorts,
        end: rulesEnd,
      },
      memory: { started, idle, published: withPorts, peak: daemon.memory() },
      floor: { networks0, health0 },
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
    const config = bridgeHostLocalConfig({
      name: REF_NETWORK,
      bridge: REF_BRIDGE,
      subnet: '10.101.0.0/20',
      dataDir: join(dir, 'host-local'),
    });
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

const KIND_LABEL: Record<Kind, string> = {
  attached: "attached sandboxes (the runtime's netns, as CNI and Docker)",
  owned: 'netctl-made sandboxes (netns, /etc files, peers in /etc/hosts)',
};

const growth = (samples: readonly number[], a: Window, b: Window) =>
  windowMedian(samples, b) / windowMedian(samples, a);
const verdict = (ratio: number) => (ratio <= GROWTH_TARGET ? 'ok' : 'FAIL');

function report(ours: Ours, ref: Reference | undefined): Figures {
  const { n } = ours;
  const w = Math.max(1, Math.min(50, Math.floor(n / 10)));
  const first = window(0, w);
  const last = window(n - w, n);
  const narrowFirst = n >= 30 ? window(5, 15) : first;
  const narrowLast = n >= 30 ? window(n - 10, n) : last;
  const deciles: Window[] = [];
  const step = Math.max(1, Math.floor(n / 10));
  for (let from = 0; from < n; from += step) deciles.push(window(from, Math.min(n, from + step)));

  for (const { kind, times: t } of ours.series) {
    printTable({
      title: `${KIND_LABEL[kind]}: cost of endpoint #i through the daemon's API (ms, median of the window)`,
      head: [
        'endpoints',
        'create+join',
        'p95',
        '  sandbox',
        '  connect',
        'leave+delete',
        'p95',
        '  disconnect',
        '  delete',
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
        'create+join = POST /v1/sandboxes + POST /v1/networks/NET/connect; leave+delete = POST .../disconnect +',
        'DELETE /v1/sandboxes/NAME; timed at the client. Endpoint #i leaves while i endpoints exist (last first).',
      ],
    });
  }

  const growthRows = ours.series.flatMap(({ kind, times: t }) => {
    const row = (label: string, samples: number[], a: Window, b: Window, judged: boolean) => [
      `${kind}: ${label}`,
      range(a),
      fixed(windowMedian(samples, a)),
      range(b),
      fixed(windowMedian(samples, b)),
      times(growth(samples, a, b)),
      judged ? verdict(growth(samples, a, b)) : '',
    ];
    return [
      row('create+join', t.createJoin, first, last, true),
      row('create+join', t.createJoin, narrowFirst, narrowLast, true),
      row('  connect only', t.connect, first, last, false),
      row('leave+delete', t.leaveDelete, first, last, true),
      row('leave+delete', t.leaveDelete, narrowFirst, narrowLast, true),
      row('  disconnect only', t.disconnect, first, last, false),
    ];
  });
  printTable({
    title: `Growth from the first endpoints to the ${n}th (target: last ≤ ${GROWTH_TARGET}× first)`,
    head: ['operation', 'window A', 'median ms', 'window B', 'median ms', 'B/A', 'target'],
    rows: growthRows,
    notes: [`Windows of ${w} and of 10 endpoints; single endpoints are too noisy to compare.`],
  });

  const { rules: r } = ours;
  const rel = (x: Rules) => totalRules(x) - totalRules(r.base);
  const ports = ours.published.count;
  const [attached, owned] = ours.series as [Series, Series];
  const perPort = ports ? (totalRules(r.published) - totalRules(attached.rules)) / ports : 0;
  const rulesFlat = ours.series.every((x) => rel(x.rules) === rel(r.network));
  const check = (ok: boolean) => (ok ? 'ok' : 'FAIL');
  printTable({
    title: 'iptables rules (iptables-save + ip6tables-save, `-A` lines), relative to before the network',
    head: ['when', 'IPv4', 'IPv6', 'added', 'expected', 'check'],
    rows: [
      ['before the network (absolute)', r.base.v4, r.base.v6, 0, '', ''],
      ['network created', r.network.v4, r.network.v6, rel(r.network), '(base chains + network)', ''],
      ...ours.series.map((x) => [
        `${n} ${x.kind} endpoints, no ports`,
        x.rules.v4,
        x.rules.v6,
        rel(x.rules),
        rel(r.network),
        check(rel(x.rules) === rel(r.network)),
      ]),
      [
        `${n - ports} attached + ${ports} with 1 port each`,
        r.published.v4,
        r.published.v6,
        rel(r.published),
        rel(attached.rules) + RULES_PER_PORT * ports,
        check(perPort === RULES_PER_PORT),
      ],
      [
        'ported endpoints removed',
        r.afterPorts.v4,
        r.afterPorts.v6,
        rel(r.afterPorts),
        rel(attached.rules),
        check(rel(r.afterPorts) === rel(attached.rules)),
      ],
      ['everything removed', r.end.v4, r.end.v6, rel(r.end), 0, check(rel(r.end) === 0)],
    ],
    notes: [
      `Rules per published port: ${perPort} (a DNAT in NETCTL-PREROUTING, an ACCEPT in NETCTL-PUBLISH).`,
    ],
  });

  const m = ours.memory;
  const rssFull = Math.max(...ours.series.map((x) => x.memory.rssMiB));
  const mem = (label: string, x: Memory) => [
    label,
    fixed(x.rssMiB, 1),
    fixed(x.anonMiB, 1),
    fixed(x.fileMiB, 1),
    fixed(x.hwmMiB, 1),
  ];
  printTable({
    title: `Daemon memory, MiB (/proc/PID/status); target ≤ ${RSS_TARGET_MIB} MiB with 1,000 endpoints`,
    head: ['when', 'VmRSS', 'RssAnon', 'RssFile', 'VmHWM'],
    rows: [
      mem('just started', m.started),
      mem('network made, after warm-up, 0 endpoints', m.idle),
      mem(`${n} attached endpoints`, attached.memory),
      mem(`${n - ports} attached + ${ports} with ports`, m.published),
      mem(`${n} owned endpoints`, owned.memory),
      mem('end (all removed)', m.peak),
    ],
    notes: [
      `With ${n} endpoints: ${fixed(rssFull, 1)} MiB, ${rssFull <= RSS_TARGET_MIB ? 'within' : 'OVER'} the target` +
        ` (idle: ${fixed(m.idle.rssMiB, 1)} MiB, so ${fixed(rssFull - m.idle.rssMiB, 1)} MiB more for the endpoints).`,
      "RssFile is mostly the node binary's own pages and the LMDB file; RssAnon the V8 heap (young generation",
      'included) and native memory.' +
        (DAEMON_NODE_OPTIONS
          ? ` Daemon NODE_OPTIONS: ${DAEMON_NODE_OPTIONS}.`
          : ' Daemon started without NODE_OPTIONS.'),
    ],
  });

  const f = ours.floor;
  const part = (label: string, pick: (t: EndpointTimes) => number[]) =>
    ours.series.map(({ kind, times: t }) => [
      `${kind}: ${label}`,
      fixed(windowMedian(pick(t), first)),
      fixed(windowMedian(pick(t), last)),
    ]);
  printTable({
    title: `Where the time goes (medians, ms; windows ${range(first)} and ${range(last)})`,
    head: ['what', 'first endpoints', `last (${n} there)`],
    rows: [
      [
        'HTTP round trip: GET /v1/networks (the floor)',
        fixed(median(f.networks0), 3),
        fixed(median(attached.networksN), 3),
      ],
      [
        'GET /v1/health (lists every record)',
        fixed(median(f.health0), 3),
        fixed(median(attached.healthN), 3),
      ],
      ...part('create sandbox', (t) => t.sandbox),
      ...part('connect', (t) => t.connect),
      ...part('disconnect', (t) => t.disconnect),
      ...part('delete sandbox', (t) => t.deleteSandbox),
      [`create+join with one published port (${ports})`, '', fixed(median(ours.published.createJoin))],
      [`leave+delete with one published port (${ports})`, '', fixed(median(ours.published.leaveDelete))],
    ],
    notes: [
      "attached create sandbox: records only (the netns is the runtime's); owned: netns, lo up, /etc files.",
      'connect: IPAM, veth made with its peer in the netns, address, route, records (owned: /etc/hosts of peers).',
      "disconnect: veth delete (the kernel's RCU wait), release by owner, records (owned: /etc/hosts of peers).",
      `The two HTTP round trips are ${fixed((2 * median(f.networks0) * 100) / median(attached.times.createJoin), 1)} % of an attached create+join.`,
      'A published port adds an iptables-save + iptables-restore per family to connect and to disconnect.',
    ],
  });

  const t = attached.times;
  const o = owned.times;
  const figures: Figures = {
    bench: 'endpoints',
    endpoints: n,
    create_join_median_ms: round(median(t.createJoin)),
    create_join_p95_ms: round(p95(t.createJoin)),
    leave_delete_median_ms: round(median(t.leaveDelete)),
    leave_delete_p95_ms: round(p95(t.leaveDelete)),
    first_window_ms: round(windowMedian(t.createJoin, first)),
    last_window_ms: round(windowMedian(t.createJoin, last)),
    growth_ratio: round(growth(t.createJoin, first, last)),
    growth_ratio_10th: round(growth(t.createJoin, narrowFirst, narrowLast)),
    leave_delete_first_window_ms: round(windowMedian(t.leaveDelete, first)),
    leave_delete_last_window_ms: round(windowMedian(t.leaveDelete, last)),
    leave_delete_growth_ratio: round(growth(t.leaveDelete, first, last)),
    owned_create_join_median_ms: round(median(o.createJoin)),
    owned_create_join_p95_ms: round(p95(o.createJoin)),
    owned_leave_delete_median_ms: round(median(o.leaveDelete)),
    owned_leave_delete_p95_ms: round(p95(o.leaveDelete)),
    owned_first_window_ms: round(windowMedian(o.createJoin, first)),
    owned_last_window_ms: round(windowMedian(o.createJoin, last)),
    owned_growth_ratio: round(growth(o.createJoin, first, last)),
    owned_leave_delete_growth_ratio: round(growth(o.leaveDelete, first, last)),
    http_floor_ms: round(median(f.networks0)),
    rules_network: rel(r.network),
    rules_1000_endpoints: Math.max(...ours.series.map((x) => rel(x.rules))),
    rules_flat: rulesFlat ? 'yes' : 'no',
    rules_per_published_port: round(perPort),
    rules_left: rel(r.end),
    published_create_join_median_ms: round(median(ours.published.createJoin)),
    rss_idle_mib: round(m.idle.rssMiB),
    rss_1000_mib: round(rssFull),
    rss_1000_anon_mib: round(Math.max(...ours.series.map((x) => x.memory.anonMiB))),
    hwm_peak_mib: round(m.peak.hwmMiB),
    daemon_node_options: DAEMON_NODE_OPTIONS ?? '',
    daemon_exit: ours.daemonExit,
  };

  if (ref) {
    const k = ref.n;
    const rw = Math.max(1, Math.min(50, Math.floor(k / 5)));
    const rFirst = window(0, rw);
    const rLast = window(k - rw, k);
    // Ours at the same counts of endpoints as the reference had containers.
    const oursConnect = t.connect.slice(0, k);
    const oursDisconnect = t.disconnect.slice(0, k);
    const addRatio = median(oursConnect) / median(ref.add);
    const delRatio = median(oursDisconnect) / median(ref.del);
    const row = (label: string, ours: number[], refs: number[]) => [
      label,
      fixed(median(ours)),
      fixed(p95(ours)),
      fixed(median(refs)),
      fixed(p95(refs)),
      times(median(ours) / median(refs)),
    ];
    printTable({
      title: `Per container, side by side: ours (attached, through the daemon) vs CNI bridge + host-local exec'd (${k} each, ms)`,
      head: ['operation', 'ours median', 'p95', 'reference median', 'p95', 'ours/ref'],
      rows: [
        row('join (connect) vs ADD', oursConnect, ref.add),
        row('leave (disconnect) vs DEL', oursDisconnect, ref.del),
        row('create+join vs ADD', t.createJoin.slice(0, k), ref.add),
        row('leave+delete vs DEL', t.leaveDelete.slice(0, k), ref.del),
      ],
      notes: [
        'Same per-container work: veth with its peer in the netns, address, default route, bridge port (and',
        'the reference: its masquerade rules). The netns is made and removed untimed on both sides.',
      ],
    });
    const refRow = (label: string, refs: number[], oursSamples: number[]) => [
      label,
      fixed(windowMedian(refs, rFirst)),
      fixed(windowMedian(refs, rLast)),
      times(growth(refs, rFirst, rLast)),
      fixed(windowMedian(oursSamples, rFirst)),
      fixed(windowMedian(oursSamples, rLast)),
      times(growth(oursSamples, rFirst, rLast)),
    ];
    printTable({
      title: `Reference growth: containers ${range(rFirst)} vs ${range(rLast)} (ms, medians)`,
      head: [
        'operation',
        `ref ${range(rFirst)}`,
        `ref ${range(rLast)}`,
        'ratio',
        `ours ${range(rFirst)}`,
        `ours ${range(rLast)}`,
        'ratio',
      ],
      rows: [refRow('ADD / connect', ref.add, t.connect), refRow('DEL / disconnect', ref.del, t.disconnect)],
      notes: [
        `Reference rules per container (ipMasq): ${round(ref.addRulesPerContainer)}; ours: 0 without published ports.`,
        `Reference rules left after DEL with the netns present: ${ref.leftAfterDel}; after DEL of ${REF_LEAK_PROBE} ` +
          `containers whose netns was already gone: ${ref.leftAfterDelWithoutNetns}` +
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
