/**
 * bench/overlay: netctl's overlay (VXLAN between hosts, peers from the
 * shared store) against a hand-built VXLAN on the same two simulated hosts
 * (bench/lib/cluster.ts: a netns per host on an underlay bridge, MTU 1500,
 * one Redis).
 *
 *   - reference: in each host's netns a vxlan `vxref` (id 42, dstport 4789,
 *     local = the host's underlay address, nolearning) on a bridge `brref`,
 *     MTU 1450 on both and on a veth into a sandbox netns (10.98.0.1/24 on
 *     h1, 10.98.0.2/24 on h2); each side's peer written by hand with `ip`
 *     and `bridge`: a static FDB entry (the peer's MAC → the other host's
 *     underlay address) and a permanent neighbour in the sandbox.
 *   - ours: `netctl network create -d overlay --subnet 10.97.0.0/24
 *     ovbench` on h1, a sandbox on each host connected to it through the
 *     API; netctl sets the MTU.
 *
 * Measured, in one run:
 *   - throughput: iperf3, one TCP stream for 5 s, from h1's sandbox to
 *     h2's (`iperf3 -s -1` there), ours and the reference taking turns, 3
 *     runs each; the median Gbit/s (received), and ours/reference.
 *   - convergence: N joins (`--iterations N`, default 50) of a new sandbox
 *     on h1 at an address asked for in advance (10.97.0.100+k), while h2's
 *     sandbox pings it every 2 ms (busybox ping): from connect's return to
 *     the first echo reply. The probing sandbox resolves neighbours every
 *     10 ms rather than every second (its retrans_time_ms), so the probe's
 *     own ARP retries do not dominate what is measured; a negative figure is
 *     a reply before connect returned.
 *   - withdraw: the same endpoint's disconnect, from its return until h2's
 *     vxlan device no longer has the FDB entry of the endpoint's MAC
 *     (rtnetlink dumps in h2's netns, polled every ms; the end of the dump
 *     that finds it gone counts, so ~1 ms is the floor).
 *   Both also from the call's start (the join or leave as its caller sees
 *   it), and how many were done before the call returned: a figure from
 *   the return is then the probe's floor, not the overlay's time.
 *   - join vs bridge: on h1, connect's wall time (the API call) of a new
 *     sandbox to the overlay and to a bridge network (`--subnet
 *     10.96.0.0/24 brbench`), alternating, 0.6 N of each; ratio of medians.
 *
 * Targets (DESIGN.md): throughput ≥ 0.95× the hand-built VXLAN; convergence
 * p95 ≤ 100 ms (3 hosts; here 2).
 *
 * While netctl has no overlay driver the reference runs and prints alone,
 * and the benchmark then fails saying why ours could not run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  createNetns,
  deleteNetns,
  fdbList,
  type Link,
  linkList,
  Netlink,
  sysctlSet,
} from '../src/kernel/index.js';
import { type Cleanup, withCleanup } from './lib/cleanup.js';
import { type Cluster, type ClusterHost, startCluster } from './lib/cluster.js';
import { runCommand } from './lib/command.js';
import { type Figures, round } from './lib/figures.js';
import { median, p95 } from './lib/stats.js';
import { fixed, printTable, times } from './lib/table.js';
import { elapsedMs, iterations } from './lib/timing.js';

export const description =
  'overlay on 2 simulated hosts: iperf3 vs a hand-built VXLAN, convergence, withdraw, join vs bridge';

const DEFAULT_SAMPLES = 50;
const THROUGHPUT_RUNS = 3;
const IPERF_SECONDS = 5;
const CONVERGE_WARMUP = 3;
const JOIN_WARMUP = 2;
const THROUGHPUT_TARGET = 0.95;
const CONVERGE_TARGET_MS = 100;

const OVERLAY = 'ovbench';
const OVERLAY_SUBNET = '10.97.0.0/24';
const BRIDGE = 'brbench';
const BRIDGE_SUBNET = '10.96.0.0/24';
/** The reference's VXLAN, as the brief for a hand-built one has it. */
const REF = { vni: 42, port: 4789, mtu: 1450, vxlan: 'vxref', bridge: 'brref', subnet: '10.98.0' };
/** How long the probe runs before the join: busybox ping is sending by then. */
const PROBE_LEAD_MS = 50;
/** How long a join may take to answer pings, and a leave to withdraw its FDB entry. */
const CONVERGE_TIMEOUT_MS = 10_000;
/** A probe's neighbour resolution retries (the kernel's floor is 10 ms; the default 1 s). */
const PROBE_RETRANS_MS = '10';

/** One sandbox end of a path: a netns and its address there. */
interface End {
  netns: string;
  address: string;
}

/** Two sandboxes on h1 and h2 connected by one of the two overlays. */
interface Path {
  label: 'ours' | 'reference';
  a: End;
  b: End;
  /** The MTU of the sandbox's interface (1450 for the reference). */
  mtu: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `ARGV` inside the netns at path. */
function inNetns(path: string, file: string, ...args: string[]): Promise<string> {
  return runCommand('nsenter', [`--net=${path}`, '--', file, ...args]);
}

async function mtuOf(netns: string, ifname: string): Promise<number> {
  const [link] = JSON.parse(await inNetns(netns, 'ip', '-j', 'link', 'show', ifname)) as { mtu: number }[];
  if (!link) throw new Error(`no ${ifname} in ${netns}`);
  return link.mtu;
}

async function macOf(netns: string, ifname: string): Promise<string> {
  const [link] = JSON.parse(await inNetns(netns, 'ip', '-j', 'link', 'show', ifname)) as {
    address: string;
  }[];
  if (!link) throw new Error(`no ${ifname} in ${netns}`);
  return link.address;
}

/** One echo answered within a few tries: the path works before it is measured. */
async function expectPing(from: End, to: End, label: string): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 5; i++) {
    try {
      await inNetns(from.netns, 'busybox', 'ping', '-c', '1', '-W', '1', to.address);
      return;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`${label}: ${from.address} cannot ping ${to.address}`, { cause: last });
}

// ------------------------------------------------------------------ reference

/** A command line of ours (fixed words and addresses, no user input) as its argument vector. */
const words = (line: string) => line.split(' ');

/**
 * The hand-built VXLAN between h1 and h2: `ip` and `bridge` commands, as an
 * operator would type them (one process each, bench/lib/command.ts).
 */
async function buildReference(cluster: Cluster, cleanup: Cleanup): Promise<Path> {
  const hosts = cluster.hosts.slice(0, 2);
  const { vxlan, bridge, mtu } = REF;
  const ends: End[] = [];
  for (const [i, host] of hosts.entries()) {
    const ip = (line: string) => host.exec('ip', words(line));
    await ip(
      `link add ${vxlan} type vxlan id ${REF.vni} dstport ${REF.port} local ${host.address} nolearning`,
    );
    await ip(`link add ${bridge} type bridge`);
    await ip(`link set ${vxlan} mtu ${mtu} master ${bridge} up`);
    await ip(`link set ${bridge} mtu ${mtu} up`);

    const name = `${cluster.tag}-ref${i + 1}`;
    cleanup.defer(`delete netns ${name}`, () => deleteNetns(name));
    const netns = createNetns(name);
    const port = `vref${i + 1}`;
    const address = `${REF.subnet}.${i + 1}`;
    await ip(`link add ${port} mtu ${mtu} type veth peer name eth0 netns ${netns}`);
    await ip(`link set ${port} master ${bridge} up`);
    const sandboxIp = (line: string) => inNetns(netns, 'ip', ...words(line));
    await sandboxIp(`link set eth0 mtu ${mtu} up`);
    await sandboxIp('link set lo up');
    await sandboxIp(`addr add ${address}/24 dev eth0`);
    ends.push({ netns, address });
  }
  // Each side learns the other's sandbox by hand: no learning, no flooding.
  for (const [i, host] of hosts.entries()) {
    const peer = ends[1 - i]!;
    const peerMac = await macOf(peer.netns, 'eth0');
    await host.exec(
      'bridge',
      words(`fdb append ${peerMac} dev ${vxlan} dst ${hosts[1 - i]!.address} self permanent`),
    );
    await inNetns(
      ends[i]!.netns,
      'ip',
      ...words(`neigh add ${peer.address} lladdr ${peerMac} dev eth0 nud permanent`),
    );
  }
  const path: Path = {
    label: 'reference',
    a: ends[0]!,
    b: ends[1]!,
    mtu: await mtuOf(ends[0]!.netns, 'eth0'),
  };
  await expectPing(path.a, path.b, 'reference');
  await expectPing(path.b, path.a, 'reference');
  return path;
}

// ------------------------------------------------------------------ ours

const hostAddress = (cidr: string | undefined, what: string): string => {
  if (!cidr) throw new Error(`${what} got no IPv4 address`);
  return cidr.slice(0, cidr.indexOf('/'));
};

/**
 * netctl's overlay between h1 and h2: the network made with the CLI on h1,
 * a sandbox on each host connected through its daemon's API. Throws, saying
 * why, when netctl cannot make it.
 */
async function buildOurs(cluster: Cluster): Promise<Path & { probe: { ifname: string } }> {
  const [h1, h2] = cluster.hosts as [ClusterHost, ClusterHost];
  const made = await h1.cli(['network', 'create', '-d', 'overlay', '--subnet', OVERLAY_SUBNET, OVERLAY]);
  if (made.code !== 0) {
    throw new Error(
      `\`netctl network create -d overlay --subnet ${OVERLAY_SUBNET} ${OVERLAY}\` on h1 failed (exit ${made.code}): ${made.stderr.trim()}`,
    );
  }
  const ends: End[] = [];
  let ifname = 'eth0';
  for (const host of [h1, h2]) {
    const sandbox = await host.api.createSandbox({ name: host.sandboxName('ov') });
    const endpoint = await host.api.connect({ network: OVERLAY, sandbox: sandbox.name });
    ifname = endpoint.ifname ?? 'eth0';
    ends.push({ netns: sandbox.key, address: hostAddress(endpoint.ipv4, `${host.name}'s overlay endpoint`) });
  }
  const path = {
    label: 'ours' as const,
    a: ends[0]!,
    b: ends[1]!,
    mtu: await mtuOf(ends[0]!.netns, ifname),
    probe: { ifname },
  };
  await expectPing(path.a, path.b, 'ours');
  await expectPing(path.b, path.a, 'ours');
  return path;
}

// ------------------------------------------------------------------ throughput

/** Children still running (iperf3 servers, ping probes): killed by PID by the cleanup. */
const children = new Set<ChildProcess>();

function spawnTracked(file: string, args: string[]): ChildProcess {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killChildren(): Promise<void> {
  const waits = [...children].map((child) => {
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    return gone;
  });
  return Promise.all(waits).then(() => undefined);
}

function exitOf(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? `exit ${child.exitCode}`);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
}

/** iperf3 from a to b, one TCP stream: Gbit/s as the receiver counted it. */
async function iperf(path: Path): Promise<number> {
  const server = spawnTracked('nsenter', [
    `--net=${path.b.netns}`,
    '--',
    'iperf3',
    '-s',
    '-1',
    '-B',
    path.b.address,
  ]);
  let serverOutput = '';
  server.stderr?.on('data', (chunk) => {
    serverOutput += chunk;
  });
  try {
    // The server listens within milliseconds; until then the client is refused.
    for (let attempt = 0; ; attempt++) {
      const out = await inNetns(
        path.a.netns,
        'iperf3',
        '-c',
        path.b.address,
        '-t',
        String(IPERF_SECONDS),
        '-J',
      );
      const report = JSON.parse(out) as {
        error?: string;
        end?: { sum_received?: { bits_per_second?: number } };
      };
      const bps = report.end?.sum_received?.bits_per_second;
      if (bps) return bps / 1e9;
      const refused = report.error !== undefined && /refused/i.test(report.error);
      if (!refused || attempt >= 100 || server.exitCode !== null) {
        throw new Error(
          `iperf3 (${path.label}) reported no throughput: ${report.error ?? out.slice(0, 500)}`,
        );
      }
      await sleep(20);
    }
  } finally {
    const how = await Promise.race([exitOf(server), sleep(2000).then(() => undefined)]);
    if (how === undefined) {
      server.kill('SIGKILL');
      await exitOf(server);
    }
    if (server.exitCode !== null && server.exitCode !== 0)
      process.stderr.write(`bench overlay: iperf3 server (${path.label}) ${serverOutput}\n`);
  }
}

/** THROUGHPUT_RUNS of each path, taking turns (who goes first alternates). */
async function throughput(paths: Path[]): Promise<Map<Path['label'], number[]>> {
  const runs = new Map(paths.map((p) => [p.label, [] as number[]]));
  for (let r = 0; r < THROUGHPUT_RUNS; r++) {
    const order = r % 2 === 0 ? paths : [...paths].reverse();
    for (const path of order) runs.get(path.label)!.push(await iperf(path));
  }
  return runs;
}

// ------------------------------------------------------------------ convergence

/** busybox ping every 2 ms from inside netns; resolves the time of the first reply. */
function startProbe(netns: string, address: string): { firstReply: Promise<bigint>; stop(): void } {
  const child = spawnTracked('nsenter', [
    `--net=${netns}`,
    '--',
    'busybox',
    'ping',
    '-i',
    '0.002',
    '-w',
    String(CONVERGE_TIMEOUT_MS / 1000 + 5),
    address,
  ]);
  let stdout = '';
  const firstReply = new Promise<bigint>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const at = process.hrtime.bigint();
      stdout += chunk.toString('utf8');
      if (/bytes from/.test(stdout)) resolve(at);
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`ping ${address} ended (${signal ?? code}) without a reply: ${stdout.slice(-300)}`)),
    );
  });
  firstReply.catch(() => {});
  return { firstReply, stop: () => child.kill('SIGKILL') };
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The vxlan device of netctl's overlay in a host's netns (the one that is not the reference's). */
async function overlayVxlan(nl: Netlink): Promise<Link> {
  const found = (await linkList(nl)).filter((l) => l.kind === 'vxlan' && l.name !== REF.vxlan);
  if (found.length !== 1) {
    throw new Error(
      `expected one netctl vxlan device${nl.place}, found ${found.length}: ${found.map((l) => l.name).join(' ')}`,
    );
  }
  return found[0]!;
}

/**
 * Poll (every ms) until the FDB entry of mac on link is there (want true)
 * or gone (want false); true when the first look found it so.
 */
async function untilFdb(nl: Netlink, link: Link, mac: string, want: boolean): Promise<boolean> {
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
  for (let first = true; ; first = false) {
    const has = (await fdbList(nl, { link: link.index })).some((e) => e.mac === mac);
    if (has === want) return first;
    if (Date.now() > deadline) {
      throw new Error(
        `the FDB entry of ${mac} on ${link.name}${nl.place} is ${want ? 'not there' : 'still there'} after ${CONVERGE_TIMEOUT_MS} ms`,
      );
    }
    await sleep(1);
  }
}

interface ConvergeContext {
  a: ClusterHost;
  /** h2's sandbox, pinging. */
  probe: End;
  /** rtnetlink in h2's netns, and the overlay's vxlan device there. */
  nl: Netlink;
  vxlan: Link;
}

/** One join on h1 seen from h2 (converge), then its leave (withdraw); ms each. */
async function convergeSample(ctx: ConvergeContext, name: string, address: string) {
  const { a } = ctx;
  await a.api.createSandbox({ name });
  const probe = startProbe(ctx.probe.netns, address);
  let converge: number;
  let convergeFromCall: number;
  let mac: string;
  try {
    await sleep(PROBE_LEAD_MS);
    const called = process.hrtime.bigint();
    const endpoint = await a.api.connect({ network: OVERLAY, sandbox: name, ipv4: address });
    const joined = process.hrtime.bigint();
    mac = endpoint.mac;
    const replied = await within(
      probe.firstReply,
      CONVERGE_TIMEOUT_MS,
      `h2 pinging ${address} after its join`,
    );
    converge = Number(replied - joined) / 1e6;
    convergeFromCall = Number(replied - called) / 1e6;
  } finally {
    probe.stop();
  }
  // It answered, so h2 has the way to it; withdrawn is when that goes.
  await untilFdb(ctx.nl, ctx.vxlan, mac, true);
  const leaving = process.hrtime.bigint();
  await a.api.disconnect(OVERLAY, name);
  const left = process.hrtime.bigint();
  // The end of the dump that found it gone: an upper bound (one dump, ~1 ms).
  const goneAtReturn = await untilFdb(ctx.nl, ctx.vxlan, mac, false);
  const gone = process.hrtime.bigint();
  await a.api.deleteSandbox(name);
  return {
    converge,
    convergeFromCall,
    withdraw: Number(gone - left) / 1e6,
    withdrawFromCall: Number(gone - leaving) / 1e6,
    goneAtReturn,
  };
}

async function convergence(cluster: Cluster, ours: Path & { probe: { ifname: string } }, n: number) {
  const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
  sysctlSet(`net.ipv4.neigh.${ours.probe.ifname}.retrans_time_ms`, PROBE_RETRANS_MS, ours.b.netns);
  const nl = Netlink.open(b.netns);
  try {
    const ctx: ConvergeContext = { a, probe: ours.b, nl, vxlan: await overlayVxlan(nl) };
    for (let w = 0; w < CONVERGE_WARMUP; w++)
      await convergeSample(ctx, a.sandboxName(`cw${w}`), `10.97.0.${200 + w}`);
    const samples = {
      converge: [] as number[],
      convergeFromCall: [] as number[],
      withdraw: [] as number[],
      withdrawFromCall: [] as number[],
    };
    let goneAtReturn = 0;
    for (let k = 0; k < n; k++) {
      // A fresh address each time: no neighbour entry of an earlier sample on h2.
      const sample = await convergeSample(ctx, a.sandboxName(`cv${k}`), `10.97.0.${100 + (k % 100)}`);
      for (const key of ['converge', 'convergeFromCall', 'withdraw', 'withdrawFromCall'] as const)
        samples[key].push(sample[key]);
      if (sample.goneAtReturn) goneAtReturn++;
    }
    return { ...samples, goneAtReturn };
  } finally {
    nl.close();
  }
}

// ------------------------------------------------------------------ join vs bridge

/** connect's wall time on h1, overlay and bridge alternating, each into a new sandbox. */
async function joins(host: ClusterHost, n: number) {
  const { api } = host;
  const samples = { overlay: [] as number[], bridge: [] as number[] };
  const nets = [
    { key: 'overlay' as const, network: OVERLAY },
    { key: 'bridge' as const, network: BRIDGE },
  ];
  for (let i = -JOIN_WARMUP; i < n; i++) {
    const order = i % 2 === 0 ? nets : [...nets].reverse();
    for (const { key, network } of order) {
      const name = host.sandboxName(`j${key[0]}${i + JOIN_WARMUP}`);
      await api.createSandbox({ name });
      const start = process.hrtime.bigint();
      await api.connect({ network, sandbox: name });
      if (i >= 0) samples[key].push(elapsedMs(start));
      await api.disconnect(network, name);
      await api.deleteSandbox(name);
    }
  }
  return samples;
}

// ------------------------------------------------------------------ report

function printThroughput(runs: Map<Path['label'], number[]>, paths: Path[]): void {
  const ref = runs.get('reference')!;
  const ours = runs.get('ours');
  printTable({
    title: `Throughput h1 → h2, iperf3 TCP, 1 stream, ${IPERF_SECONDS} s (Gbit/s received)`,
    head: ['path', 'MTU', ...ref.map((_, i) => `run ${i + 1}`), 'median', 'ratio', 'target'],
    rows: paths.map((p) => {
      const r = runs.get(p.label)!;
      const ratio = p.label === 'ours' ? times(median(r) / median(ref)) : '';
      const target = p.label === 'ours' ? `≥ ${THROUGHPUT_TARGET}×` : '';
      return [p.label, p.mtu, ...r.map((v) => fixed(v)), fixed(median(r)), ratio, target];
    }),
    notes: [
      `reference: vxlan id ${REF.vni} dstport ${REF.port} nolearning, static FDB and neighbours, MTU ${REF.mtu}; ours: \`-d overlay\`.`,
      ...(ours ? [] : ['ours: not run (see the error below).']),
    ],
  });
}

export default async function run(): Promise<Figures> {
  const n = iterations(DEFAULT_SAMPLES);
  const joinCount = Math.max(1, Math.round(n * 0.6));
  return withCleanup(async (cleanup) => {
    const cluster = await startCluster({ hosts: 2 });
    cleanup.defer('close the cluster', () => cluster.close());
    cleanup.defer('kill iperf3 and ping', () => killChildren());
    const reference = await buildReference(cluster, cleanup);

    let ours: Awaited<ReturnType<typeof buildOurs>> | undefined;
    let oursProblem: unknown;
    try {
      ours = await buildOurs(cluster);
    } catch (err) {
      oursProblem = err;
    }
    const paths: Path[] = ours ? [ours, reference] : [reference];
    const runs = await throughput(paths);
    printThroughput(runs, paths);
    if (!ours) {
      const why = oursProblem instanceof Error ? oursProblem.message : String(oursProblem);
      throw new Error(`bench overlay: the reference ran (above); ours could not: ${why}`, {
        cause: oursProblem,
      });
    }

    const { converge, convergeFromCall, withdraw, withdrawFromCall, goneAtReturn } = await convergence(
      cluster,
      ours,
      n,
    );
    const repliedBeforeReturn = converge.filter((ms) => ms < 0).length;
    const h1 = cluster.hosts[0]!;
    const bridgeMade = await h1.cli(['network', 'create', '--subnet', BRIDGE_SUBNET, BRIDGE]);
    if (bridgeMade.code !== 0)
      throw new Error(`netctl network create ${BRIDGE}: ${bridgeMade.stderr.trim()}`);
    const join = await joins(h1, joinCount);

    const row = (what: string, ms: number[], target = '') => [
      what,
      fixed(median(ms)),
      fixed(p95(ms)),
      fixed(Math.max(...ms)),
      target,
    ];
    printTable({
      title: `Convergence, h1 joins seen from h2, ${n} joins (ms)`,
      head: ['what', 'median', 'p95', 'max', 'target'],
      rows: [
        row('converge: connect returned → first echo reply', converge, `p95 ≤ ${CONVERGE_TARGET_MS}`),
        row('  (from the connect call)', convergeFromCall),
        row('withdraw: disconnect returned → FDB entry gone on h2', withdraw),
        row('  (from the disconnect call)', withdrawFromCall),
      ],
      notes: [
        `h2's sandbox pings the address every 2 ms from ${PROBE_LEAD_MS} ms before the connect (neighbour retries every ${PROBE_RETRANS_MS} ms);`,
        "the FDB is polled every ms with rtnetlink dumps in h2's netns, each dump's end counting (~1 ms floor).",
        `${repliedBeforeReturn} of ${n} answered before connect returned (negative); ${goneAtReturn} of ${n} were withdrawn by the first dump after disconnect returned.`,
      ],
    });
    const joinRatio = median(join.overlay) / median(join.bridge);
    printTable({
      title: `Join on h1: connect's wall time, ${joinCount} of each, alternating (ms)`,
      head: ['network', 'median', 'p95', 'ratio (median)'],
      rows: [
        ['overlay', fixed(median(join.overlay)), fixed(p95(join.overlay)), times(joinRatio)],
        ['bridge', fixed(median(join.bridge)), fixed(p95(join.bridge)), ''],
      ],
    });

    const oursGbit = median(runs.get('ours')!);
    const refGbit = median(runs.get('reference')!);
    return {
      throughput_ratio: round(oursGbit / refGbit),
      ours_gbit: round(oursGbit),
      ref_gbit: round(refGbit),
      ours_mtu: ours.mtu,
      converge_median_ms: round(median(converge)),
      converge_p95_ms: round(p95(converge)),
      converge_max_ms: round(Math.max(...converge)),
      withdraw_median_ms: round(median(withdraw)),
      withdraw_p95_ms: round(p95(withdraw)),
      converge_from_call_p95_ms: round(p95(convergeFromCall)),
      withdraw_from_call_p95_ms: round(p95(withdrawFromCall)),
      converge_before_return: repliedBeforeReturn,
      withdraw_at_first_look: goneAtReturn,
      join_ratio_vs_bridge: round(joinRatio),
      ours_join_ms: round(median(join.overlay)),
      bridge_join_ms: round(median(join.bridge)),
      converge_samples: n,
      join_samples: joinCount,
    };
  });
}
