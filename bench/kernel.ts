/**
 * bench/kernel: src/kernel against the `ip`/`bridge` commands a user would
 * type, side by side in one run (issue 3).
 *
 * (a) Configuration operations one by one, in a throwaway named netns:
 *     address add, link up, MTU, route add, neighbour add, FDB append on a
 *     vxlan device. Each iteration measures ours and the command (order
 *     alternating), then resets the state untimed. Target: ours ≤ 0.1× ref.
 * (b) The veth lifecycle of a container: host side created with its peer
 *     directly in the container netns, address and up inside it, then
 *     delete. Target: ours ≤ 0.5× the `ip` sequence. Our linkDel returns
 *     once the link is unregistered (gone, name free: checked untimed after
 *     every iteration); the kernel's RCU wait after that runs on a native
 *     thread, where `ip link del` sits through it.
 * (c) Where a veth delete's time goes: the kernel unregisters the pair in
 *     well under a millisecond, then waits for an RCU grace period and the
 *     last device references (netdev_run_todo) before it acks. The delete
 *     is timed in each way the API allows, and against the moment another
 *     thread sees the link gone (RTM_DELLINK notification).
 * (d) Many deletes: by one request (a link group), they share that wait;
 *     sent at once from several threads, the waits overlap.
 *
 * Links are named as a user names them on both sides (our verbs resolve a
 * name to an index with one RTM_GETLINK where the request needs an index,
 * as `ip` does with its own lookup).
 */
import { release } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ifla, rt } from 'netlink';
import {
  addrAdd,
  addrDel,
  createNetns,
  deleteNetns,
  fdbAppend,
  fdbDel,
  linkAdd,
  linkDel,
  linkIndex,
  linkList,
  linkSetDown,
  linkSetMtu,
  linkSetUp,
  Netlink,
  neighAdd,
  neighDel,
  routeAdd,
  routeDel,
} from '../src/kernel/index.js';
import { withCleanup } from './lib/cleanup.js';
import { bridge, ip, runCommand } from './lib/command.js';
import { type Figures, round } from './lib/figures.js';
import type { LinkDeleted } from './lib/link-delete.js';
import type { LinkGone } from './lib/link-watch.js';
import { geomean, type Summary } from './lib/stats.js';
import { fixed, printTable, times } from './lib/table.js';
import { elapsedMs, iterations, Samples } from './lib/timing.js';

export const description = 'src/kernel vs ip(8): config operations one by one, and the veth lifecycle';

const DEFAULT_ITERATIONS = 200;
/** Untimed rounds first, so neither side pays for cold caches or JIT. */
const WARMUP = 5;
/** Samples for the delete study and the spawn floor (informational). */
const STUDY_SAMPLES = 50;

// Per-process names: several runs may share a machine (each in its own
// isolated namespace, but the prefix also makes leftovers recognisable).
const PREFIX = `nbk${process.pid.toString(36)}`;

interface ConfigOp {
  /** Figure key, e.g. "addr_add". */
  key: string;
  label: string;
  /** The reference command, as a user types it. */
  command: string[];
  ours(): Promise<unknown>;
  ref(): Promise<unknown>;
  /** Undo the operation (untimed, through our API). */
  reset(): Promise<unknown>;
}

/** Run a or b first depending on the iteration, so order effects cancel out. */
async function alternate(i: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<void> {
  if (i % 2 === 0) {
    await a();
    await b();
  } else {
    await b();
    await a();
  }
}

const us = (ms: number): number => ms * 1000;

function configOps(h: Netlink, ns: string): ConfigOp[] {
  const addr = '10.78.0.1/24';
  const route = { dst: '198.51.100.0/24', gateway: '10.77.0.2', link: 'a0' };
  const neigh = { link: 'a0', ip: '10.77.0.9', mac: '02:00:00:00:00:09' };
  const fdb = { link: 'vx0', mac: '02:00:00:00:00:0a', dst: '192.0.2.2' };
  const ops: Omit<ConfigOp, 'ref'>[] = [
    {
      key: 'addr_add',
      label: 'address add',
      command: ['ip', '-n', ns, 'addr', 'add', addr, 'brd', '+', 'dev', 'a0'],
      ours: () => addrAdd(h, 'a0', addr),
      reset: () => addrDel(h, 'a0', addr),
    },
    {
      key: 'link_up',
      label: 'link up',
      command: ['ip', '-n', ns, 'link', 'set', 'b0', 'up'],
      ours: () => linkSetUp(h, 'b0'),
      reset: () => linkSetDown(h, 'b0'),
    },
    {
      key: 'mtu',
      label: 'MTU set',
      command: ['ip', '-n', ns, 'link', 'set', 'b0', 'mtu', '1400'],
      ours: () => linkSetMtu(h, 'b0', 1400),
      reset: () => linkSetMtu(h, 'b0', 1500),
    },
    {
      key: 'route_add',
      label: 'route add',
      command: ['ip', '-n', ns, 'route', 'add', route.dst, 'via', route.gateway, 'dev', route.link],
      ours: () => routeAdd(h, route),
      reset: () => routeDel(h, route),
    },
    {
      key: 'neigh_add',
      label: 'neighbour add',
      command: [
        'ip',
        '-n',
        ns,
        'neigh',
        'add',
        neigh.ip,
        'lladdr',
        neigh.mac,
        'dev',
        neigh.link,
        'nud',
        'permanent',
      ],
      ours: () => neighAdd(h, neigh),
      reset: () => neighDel(h, neigh),
    },
    {
      key: 'fdb_append',
      label: 'FDB append (vxlan)',
      command: [
        'bridge',
        '-n',
        ns,
        'fdb',
        'append',
        fdb.mac,
        'dev',
        fdb.link,
        'dst',
        fdb.dst,
        'self',
        'permanent',
      ],
      ours: () => fdbAppend(h, fdb),
      reset: () => fdbDel(h, fdb),
    },
  ];
  return ops.map((op) => ({ ...op, ref: () => runCommand(op.command[0]!, op.command.slice(1)) }));
}

interface ConfigResult {
  ops: { op: ConfigOp; ours: Summary; ref: Summary; ratio: number }[];
  oursSumUs: number;
  refSumUs: number;
  ratio: number;
  geomeanRatio: number;
}

async function benchConfigOps(n: number): Promise<ConfigResult> {
  return withCleanup(async (cleanup) => {
    const name = `${PREFIX}cfg`;
    const path = createNetns(name);
    cleanup.defer(`delete netns ${name}`, () => deleteNetns(name));
    const h = Netlink.open(path);
    cleanup.defer('close netlink handle', () => h.close());

    // a0: up, 10.77.0.1/24 (routes and neighbours hang off it); b0: down
    // (up/MTU toggle it); vx0: the overlay's kind of vxlan device, for FDB.
    await linkAdd(h, { kind: 'veth', name: 'a0', up: true, peer: { name: 'a1' } });
    await linkSetUp(h, 'a1');
    await addrAdd(h, 'a0', '10.77.0.1/24');
    await linkAdd(h, { kind: 'veth', name: 'b0', peer: { name: 'b1' } });
    await linkAdd(h, { kind: 'vxlan', name: 'vx0', vni: 4242, local: '192.0.2.1' });

    const ops = configOps(h, name);
    const samples = new Samples();
    for (let i = -WARMUP; i < n; i++) {
      for (const op of ops) {
        // Warm-up rounds (i < 0) run the same work but are not recorded.
        const record = (side: string, ms: number) => {
          if (i >= 0) samples.add(`${op.key}.${side}`, ms);
        };
        await alternate(
          i,
          async () => {
            const start = process.hrtime.bigint();
            await op.ours();
            record('ours', elapsedMs(start));
            await op.reset();
          },
          async () => {
            const start = process.hrtime.bigint();
            await op.ref();
            record('ref', elapsedMs(start));
            await op.reset();
          },
        );
      }
    }

    const results = ops.map((op) => {
      const ours = samples.summary(`${op.key}.ours`);
      const ref = samples.summary(`${op.key}.ref`);
      return { op, ours, ref, ratio: ours.median / ref.median };
    });
    const oursSumUs = us(results.reduce((sum, r) => sum + r.ours.median, 0));
    const refSumUs = us(results.reduce((sum, r) => sum + r.ref.median, 0));
    return {
      ops: results,
      oursSumUs,
      refSumUs,
      ratio: oursSumUs / refSumUs,
      geomeanRatio: geomean(results.map((r) => r.ratio)),
    };
  });
}

const OURS_STEPS = ['create', 'addr', 'up', 'delete'] as const;
const REF_STEPS = ['create', 'addr', 'up_ctr', 'up_host', 'delete'] as const;

interface VethResult {
  ours: Summary;
  ref: Summary;
  ratio: number;
  oursSteps: Record<(typeof OURS_STEPS)[number], Summary>;
  refSteps: Record<(typeof REF_STEPS)[number], Summary>;
  /** How long linkDel's synchronous part blocks the JS thread. */
  deleteBlocking: Summary;
  refCommands: string[][];
}

async function benchVethLifecycle(n: number): Promise<VethResult> {
  return withCleanup(async (cleanup) => {
    // The host side lives in this process's namespace (isolate.sh's private
    // one), as on a real host; one container netns per side, made up front:
    // creating a netns is not part of a container's veth lifecycle.
    const host = Netlink.open();
    cleanup.defer('close host netlink handle', () => host.close());
    const oursNs = `${PREFIX}co`;
    const refNs = `${PREFIX}cr`;
    const [oursPath] = [oursNs, refNs].map((ns) => {
      const path = createNetns(ns);
      cleanup.defer(`delete netns ${ns}`, () => deleteNetns(ns));
      return path;
    });
    const ctr = Netlink.open(oursPath!);
    cleanup.defer('close container netlink handle', () => ctr.close());
    const oursLink = `${PREFIX}o`;
    const refLink = `${PREFIX}r`;
    // Whatever happens, leave no veth behind in this namespace.
    cleanup.defer('delete leftover veths', async () => {
      await linkDel(host, oursLink);
      await linkDel(host, refLink);
    });
    const cidr = '10.79.0.2/24';

    const refCommands = [
      ['ip', 'link', 'add', refLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', refNs],
      ['ip', '-n', refNs, 'addr', 'add', cidr, 'brd', '+', 'dev', 'eth0'],
      ['ip', '-n', refNs, 'link', 'set', 'eth0', 'up'],
      ['ip', 'link', 'set', refLink, 'up'],
      ['ip', 'link', 'del', refLink],
    ];

    const samples = new Samples();
    const ours = async (record: boolean) => {
      const steps: number[] = [];
      const start = process.hrtime.bigint();
      let t = start;
      const lap = () => {
        const now = process.hrtime.bigint();
        steps.push(Number(now - t) / 1e6);
        t = now;
      };
      // Host side up in the create request itself; the peer is born in the
      // container netns (no move: a move costs another unregister).
      await linkAdd(host, {
        kind: 'veth',
        name: oursLink,
        up: true,
        peer: { name: 'eth0', netns: ctr.netns },
      });
      lap();
      await addrAdd(ctr, 'eth0', cidr);
      lap();
      await linkSetUp(ctr, 'eth0');
      lap();
      // How long the JS thread is held before linkDel even returns its promise.
      const deleting = linkDel(host, oursLink);
      const blocking = elapsedMs(t);
      await deleting;
      lap();
      const total = elapsedMs(start);
      // Untimed: the link must really be gone when linkDel resolves.
      if ((await linkList(host)).some((l) => l.name === oursLink)) {
        throw new Error(`${oursLink} still exists after linkDel resolved`);
      }
      if (!record) return;
      samples.add('ours', total);
      samples.add('ours.delete_blocking', blocking);
      for (const [k, step] of OURS_STEPS.entries()) samples.add(`ours.${step}`, steps[k]!);
    };
    const ref = async (record: boolean) => {
      const start = process.hrtime.bigint();
      for (const [k, [file, ...args]] of refCommands.entries()) {
        const t = process.hrtime.bigint();
        await runCommand(file!, args);
        if (record) samples.add(`ref.${REF_STEPS[k]}`, elapsedMs(t));
      }
      if (record) samples.add('ref', elapsedMs(start));
    };

    for (let i = -WARMUP; i < n; i++) {
      await alternate(
        i,
        () => ours(i >= 0),
        () => ref(i >= 0),
      );
    }

    // Same end state on both sides: no veth anywhere (the container
    // namespaces are ours alone; in this one, look for our names only).
    const left = [
      ...(await linkList(host)).filter((l) => l.name === oursLink || l.name === refLink),
      ...(await linkList(ctr)).filter((l) => l.name !== 'lo'),
    ].map((l) => l.name);
    for (const line of (await ip('-n', refNs, '-o', 'link', 'show')).split('\n')) {
      const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
      if (name && name !== 'lo') left.push(`${name} (in ${refNs})`);
    }
    if (left.length) throw new Error(`veth lifecycle left links behind: ${left.join(', ')}`);

    const oursTotal = samples.summary('ours');
    const refTotal = samples.summary('ref');
    return {
      ours: oursTotal,
      ref: refTotal,
      ratio: oursTotal.median / refTotal.median,
      oursSteps: Object.fromEntries(
        OURS_STEPS.map((s) => [s, samples.summary(`ours.${s}`)]),
      ) as VethResult['oursSteps'],
      refSteps: Object.fromEntries(
        REF_STEPS.map((s) => [s, samples.summary(`ref.${s}`)]),
      ) as VethResult['refSteps'],
      deleteBlocking: samples.summary('ours.delete_blocking'),
      refCommands,
    };
  });
}

const DELETE_WAYS = ['by_name', 'by_index', 'ctr_side', 'down_first'] as const;
type DeleteWay = (typeof DELETE_WAYS)[number];
const DELETE_LABELS: Record<DeleteWay, string> = {
  by_name: 'host side, by name (as in the lifecycle)',
  by_index: 'host side, by index',
  ctr_side: 'container side (eth0), by name',
  down_first: 'both ends down first, then delete (total)',
};

interface DeleteStudy {
  ways: Record<DeleteWay, Summary>;
  /** by_name deletes: from sending the DELLINK until the link is announced gone. */
  gone: Summary;
}

/** Wait for the link-watch worker to report name gone at or after since. */
function linkGone(worker: Worker, name: string, since: bigint): Promise<bigint> {
  return new Promise((resolve) => {
    const listener = (message: LinkGone) => {
      // A late notice from an earlier delete of the same name is older than since.
      if (message.name !== name || message.at < since) return;
      worker.off('message', listener);
      resolve(message.at);
    };
    worker.on('message', listener);
  });
}

/** Start a worker from bench/lib and wait until it says it is ready. */
async function startWorker(file: string): Promise<Worker> {
  // Started from this thread, a worker is in this thread's namespace.
  const worker = new Worker(new URL(`./lib/${file}`, import.meta.url));
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return worker;
}

/**
 * Ask a worker to close its netlink socket and exit. terminate() would tear
 * its environment down under a socket that may still be receiving, which
 * the `netlink` package's native code does not survive.
 */
async function stopWorker(worker: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage('stop');
  await exited;
}

/**
 * Time a veth delete in each way the API allows, interleaved, and for the
 * plain delete also when the link is gone as another thread sees it.
 */
async function benchDeleteWays(n: number): Promise<DeleteStudy> {
  return withCleanup(async (cleanup) => {
    const host = Netlink.open();
    cleanup.defer('close host netlink handle', () => host.close());
    const ns = `${PREFIX}cd`;
    const path = createNetns(ns);
    cleanup.defer(`delete netns ${ns}`, () => deleteNetns(ns));
    const ctr = Netlink.open(path);
    cleanup.defer('close container netlink handle', () => ctr.close());
    const link = `${PREFIX}d`;
    cleanup.defer('delete leftover veth', () => linkDel(host, link));
    const watch = await startWorker('link-watch.js');
    cleanup.defer('stop link-watch worker', () => stopWorker(watch));

    const ways: Record<DeleteWay, (index: number) => Promise<unknown>> = {
      by_name: () => linkDel(host, link),
      by_index: (index) => linkDel(host, index),
      ctr_side: () => linkDel(ctr, 'eth0'),
      down_first: async () => {
        await linkSetDown(host, link);
        await linkSetDown(ctr, 'eth0');
        await linkDel(host, link);
      },
    };
    const samples = new Samples();
    for (let i = 0; i < n; i++) {
      // Rotate the order so no way always follows the same one.
      for (let k = 0; k < DELETE_WAYS.length; k++) {
        const way = DELETE_WAYS[(i + k) % DELETE_WAYS.length]!;
        await linkAdd(host, { kind: 'veth', name: link, up: true, peer: { name: 'eth0', netns: ctr.netns } });
        await addrAdd(ctr, 'eth0', '10.79.0.2/24');
        await linkSetUp(ctr, 'eth0');
        // The index is looked up before the clock starts: a caller would hold it.
        const index = await linkIndex(host, link);
        const start = process.hrtime.bigint();
        const gone = way === 'by_name' ? linkGone(watch, link, start) : undefined;
        await ways[way](index);
        samples.add(way, elapsedMs(start));
        if (gone) samples.add('gone', Number((await gone) - start) / 1e6);
      }
    }
    return {
      ways: Object.fromEntries(DELETE_WAYS.map((w) => [w, samples.summary(w)])) as Record<DeleteWay, Summary>,
      gone: samples.summary('gone'),
    };
  });
}

const BATCH_SIZES = [1, 10, 50] as const;
// Any group but 0: every link is in group 0, and `del group 0` would take them all.
const BATCH_GROUP = 4242;

/**
 * Many veths deleted by one request: RTM_DELLINK with IFLA_GROUP (as `ip
 * link del group N`) unregisters them in one batch, with one RCU wait.
 * src/kernel has no verb for link groups yet, so the requests are built here.
 */
async function benchBatchDelete(
  rounds: number,
): Promise<{ size: number; total: Summary; perVeth: number }[]> {
  return withCleanup(async (cleanup) => {
    const host = Netlink.open();
    cleanup.defer('close host netlink handle', () => host.close());
    const ns = `${PREFIX}cb`;
    const path = createNetns(ns);
    cleanup.defer(`delete netns ${ns}`, () => deleteNetns(ns));
    const ctr = Netlink.open(path);
    cleanup.defer('close container netlink handle', () => ctr.close());
    const names = Array.from({ length: Math.max(...BATCH_SIZES) }, (_, j) => `${PREFIX}b${j}`);
    cleanup.defer('delete leftover veths', async () => {
      for (const name of names) await linkDel(host, name);
    });

    const linkRequest = (type: number, attrs: ifla.LinkAttrs) =>
      host.request(type, (out) => rt.formatLinkMessage({ kind: 'link', data: { index: 0 }, attrs }, out));
    const samples = new Samples();
    for (let r = 0; r < rounds; r++) {
      for (const size of BATCH_SIZES) {
        for (const [j, name] of names.slice(0, size).entries()) {
          await linkAdd(host, { kind: 'veth', name, up: true, peer: { name: `eth${j}`, netns: ctr.netns } });
          await addrAdd(ctr, `eth${j}`, `10.80.${j}.2/24`);
          await linkSetUp(ctr, `eth${j}`);
          await linkRequest(rt.MessageType.SETLINK, { ifname: name, group: BATCH_GROUP });
        }
        await samples.time(`batch${size}`, () => linkRequest(rt.MessageType.DELLINK, { group: BATCH_GROUP }));
        const left = [
          ...(await linkList(host)).filter((l) => names.includes(l.name)),
          ...(await linkList(ctr)).filter((l) => l.name !== 'lo'),
        ];
        if (left.length) throw new Error(`group delete left ${left.map((l) => l.name).join(' ')}`);
      }
    }
    return BATCH_SIZES.map((size) => {
      const total = samples.summary(`batch${size}`);
      return { size, total, perVeth: total.median / size };
    });
  });
}

const CONCURRENT = 8;

/** Ask a link-delete worker to delete name; resolves on its ack. */
function deleteInWorker(worker: Worker, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const listener = (message: LinkDeleted) => {
      if (message.name !== name) return;
      worker.off('message', listener);
      if ('error' in message) reject(new Error(message.error));
      else resolve();
    };
    worker.on('message', listener);
    worker.postMessage({ name });
  });
}

/**
 * CONCURRENT veth deletes one after another on this thread, against as many
 * sent at once from as many worker threads. The kernel's RCU wait comes
 * after RTNL is released, so waits that overlap share grace periods.
 */
async function benchConcurrentDelete(rounds: number): Promise<{ sequential: Summary; threads: Summary }> {
  return withCleanup(async (cleanup) => {
    const host = Netlink.open();
    cleanup.defer('close host netlink handle', () => host.close());
    const ns = `${PREFIX}cc`;
    const path = createNetns(ns);
    cleanup.defer(`delete netns ${ns}`, () => deleteNetns(ns));
    const ctr = Netlink.open(path);
    cleanup.defer('close container netlink handle', () => ctr.close());
    const names = Array.from({ length: CONCURRENT }, (_, j) => `${PREFIX}c${j}`);
    cleanup.defer('delete leftover veths', async () => {
      for (const name of names) await linkDel(host, name);
    });
    const workers: Worker[] = [];
    cleanup.defer('stop link-delete workers', () => Promise.all(workers.map(stopWorker)));
    for (const _ of names) workers.push(await startWorker('link-delete.js'));

    const make = async () => {
      for (const [j, name] of names.entries()) {
        await linkAdd(host, { kind: 'veth', name, up: true, peer: { name: `eth${j}`, netns: ctr.netns } });
        await addrAdd(ctr, `eth${j}`, `10.81.${j}.2/24`);
        await linkSetUp(ctr, `eth${j}`);
      }
    };
    const samples = new Samples();
    for (let r = 0; r < rounds; r++) {
      await alternate(
        r,
        async () => {
          await make();
          await samples.time('sequential', async () => {
            for (const name of names) await linkDel(host, name);
          });
        },
        async () => {
          await make();
          await samples.time('threads', () =>
            Promise.all(names.map((name, j) => deleteInWorker(workers[j]!, name))),
          );
        },
      );
      const left = (await linkList(host)).filter((l) => names.includes(l.name));
      if (left.length) throw new Error(`concurrent delete left ${left.map((l) => l.name).join(' ')}`);
    }
    return { sequential: samples.summary('sequential'), threads: samples.summary('threads') };
  });
}

/** What one process costs before it does any kernel work. */
async function benchSpawnFloor(n: number): Promise<{ label: string; key: string; summary: Summary }[]> {
  return withCleanup(async (cleanup) => {
    const ns = `${PREFIX}cs`;
    createNetns(ns);
    cleanup.defer(`delete netns ${ns}`, () => deleteNetns(ns));
    const probes = [
      { key: 'spawn_true', label: '/bin/true', argv: ['/bin/true'] },
      { key: 'ip_version', label: 'ip -V', argv: ['ip', '-V'] },
      // -n switches netns (and remounts /sys in a new mount ns) before -V exits.
      { key: 'ip_netns_version', label: `ip -n NS -V`, argv: ['ip', '-n', ns, '-V'] },
    ];
    const samples = new Samples();
    for (let i = 0; i < n; i++) {
      for (const probe of probes) {
        await samples.time(probe.key, () => runCommand(probe.argv[0]!, probe.argv.slice(1)));
      }
    }
    return probes.map((p) => ({ label: p.label, key: p.key, summary: samples.summary(p.key) }));
  });
}

export default async function run(): Promise<Figures> {
  const n = iterations(DEFAULT_ITERATIONS);
  const study = Math.min(n, STUDY_SAMPLES);
  const rounds = Math.max(3, Math.min(10, Math.floor(study / 5)));
  // Fail early, before any measurement, if a reference tool is missing.
  await ip('-V');
  await bridge('-V');

  process.stderr.write(`bench kernel: configuration operations, ${n} iterations each side...\n`);
  const config = await benchConfigOps(n);
  process.stderr.write(`bench kernel: veth lifecycle, ${n} iterations each side...\n`);
  const veth = await benchVethLifecycle(n);
  process.stderr.write(
    `bench kernel: veth deletes: ${study} samples each way, ${rounds} rounds of many...\n`,
  );
  const deletes = await benchDeleteWays(study);
  const batches = await benchBatchDelete(rounds);
  const concurrent = await benchConcurrentDelete(rounds);
  const spawn = await benchSpawnFloor(study);

  const configMet = config.ratio <= 0.1 && config.ops.every((o) => o.ratio <= 0.1);
  printTable({
    title: `(a) configuration operations, one by one: ${n} iterations each side, µs`,
    head: ['operation', 'ours median', 'ours p95', 'ip median', 'ip p95', 'ours/ip', 'speed-up'],
    rows: [
      ...config.ops.map(({ op, ours, ref, ratio }) => [
        op.label,
        fixed(us(ours.median), 1),
        fixed(us(ours.p95), 1),
        fixed(us(ref.median), 1),
        fixed(us(ref.p95), 1),
        times(ratio),
        `${fixed(1 / ratio, 1)}×`,
      ]),
      [
        'all six (sum of medians)',
        fixed(config.oursSumUs, 1),
        '',
        fixed(config.refSumUs, 1),
        '',
        times(config.ratio),
        `${fixed(1 / config.ratio, 1)}×`,
      ],
    ],
    notes: [
      `target ≤ 0.1× (≥ 10× faster), overall and for each operation: ${configMet ? 'met' : 'NOT met'} ` +
        `(geometric mean of the six ratios: ${times(config.geomeanRatio)})`,
      'ours: one rtnetlink request each, plus one RTM_GETLINK where a link name must become an index',
      '(address, route, neighbour, FDB); ip: one process each, spawned without a shell:',
      ...config.ops.map(({ op }) => `  ${op.command.join(' ')}`),
    ],
  });

  const step = (s: Summary) => [fixed(s.median), fixed(s.p95)];
  const oursDelete = veth.oursSteps.delete.median;
  const refDelete = veth.refSteps.delete.median;
  const oursRest = veth.ours.median - oursDelete;
  const refRest = veth.ref.median - refDelete;
  const spawnTrue = spawn.find((s) => s.key === 'spawn_true')!.summary.median;
  printTable({
    title: `(b) veth lifecycle of a container: ${n} iterations each side, ms`,
    head: ['step', 'ours median', 'ours p95', 'ip median', 'ip p95'],
    rows: [
      [
        'create (peer born in the container netns)',
        ...step(veth.oursSteps.create),
        ...step(veth.refSteps.create),
      ],
      ['address on eth0', ...step(veth.oursSteps.addr), ...step(veth.refSteps.addr)],
      ['eth0 up', ...step(veth.oursSteps.up), ...step(veth.refSteps.up_ctr)],
      ['host side up', 'in create', '', ...step(veth.refSteps.up_host)],
      ['delete', ...step(veth.oursSteps.delete), ...step(veth.refSteps.delete)],
      ['whole lifecycle', ...step(veth.ours), ...step(veth.ref)],
    ],
    notes: [
      `ours/ip (medians): ${times(veth.ratio)}; target ≤ 0.5×: ${veth.ratio <= 0.5 ? 'met' : 'NOT met'}`,
      `where the time goes: the delete is ${fixed((100 * oursDelete) / veth.ours.median, 0)}% of ours ` +
        `(${fixed(oursDelete)} of ${fixed(veth.ours.median)} ms) and ` +
        `${fixed((100 * refDelete) / veth.ref.median, 0)}% of ip's (${fixed(refDelete)} ms).`,
      '  Ours returns when the pair is unregistered (gone from both namespaces, names free; verified after each',
      "  iteration); the kernel's RCU wait that follows (see (c), (d)) runs on a native thread. `ip link del` waits for it.",
      `  Without the delete: ours ${fixed(oursRest)} ms, ip ${fixed(refRest)} ms (${times(oursRest / refRest)}), ` +
        `ip's being mostly 5 process start-ups (${fixed(spawnTrue)} ms each for /bin/true here).`,
      `linkDel holds the JavaScript thread for ${fixed(veth.deleteBlocking.median)} ms (median): ` +
        'the DELLINK is sent from a native thread, so the event loop never waits for the kernel.',
      'ip sequence:',
      ...veth.refCommands.map((c) => `  ${c.join(' ')}`),
    ],
  });

  printTable({
    title: `(c) one veth delete, each way the API allows: ${study} samples each (interleaved), ms`,
    head: ['way', 'median', 'p95', 'min'],
    rows: [
      ...DELETE_WAYS.map((w) => [
        DELETE_LABELS[w],
        fixed(deletes.ways[w].median),
        fixed(deletes.ways[w].p95),
        fixed(deletes.ways[w].min),
      ]),
      [
        'link gone: RTM_DELLINK seen by another thread',
        fixed(deletes.gone.median),
        fixed(deletes.gone.p95),
        fixed(deletes.gone.min),
      ],
    ],
    notes: [
      `The pair is unregistered (gone from both namespaces, its names free) ${fixed(deletes.gone.median)} ms after the request;`,
      'the kernel then runs netdev_run_todo: rcu_barrier() and waiting for the last device references, in the',
      "sender's thread, before the ack (see (d), one request for 1 veth). linkDel resolves at the unregistration and",
      'leaves that wait to its native thread, whichever way the link is named.',
    ],
  });

  printTable({
    title: `(d) many veth deletes: ${rounds} rounds, ms`,
    head: ['how', 'veths', 'median', 'p95', 'per veth'],
    rows: [
      ...batches.map((b) => [
        'one request (RTM_DELLINK by IFLA_GROUP)',
        b.size,
        fixed(b.total.median),
        fixed(b.total.p95),
        fixed(b.perVeth),
      ]),
      [
        'one after another, on the JS thread',
        CONCURRENT,
        fixed(concurrent.sequential.median),
        fixed(concurrent.sequential.p95),
        fixed(concurrent.sequential.median / CONCURRENT),
      ],
      [
        `at once, from ${CONCURRENT} worker threads`,
        CONCURRENT,
        fixed(concurrent.threads.median),
        fixed(concurrent.threads.p95),
        fixed(concurrent.threads.median / CONCURRENT),
      ],
    ],
    notes: [
      'A group delete (`ip link del group N`) unregisters all in one batch with one RCU wait; deletes sent from',
      'several threads overlap their waits. On one thread, each delete waits alone and blocks everything else.',
    ],
  });

  printTable({
    title: `spawn floor: one process, no kernel work: ${study} samples, ms`,
    head: ['command', 'median', 'p95'],
    rows: spawn.map((s) => [s.label, fixed(s.summary.median), fixed(s.summary.p95)]),
  });

  const figures: Figures = {
    iterations: n,
    kernel: release(),
    config_ours_median_us: round(config.oursSumUs),
    config_ref_median_us: round(config.refSumUs),
    config_ratio: round(config.ratio),
    config_geomean_ratio: round(config.geomeanRatio),
  };
  for (const { op, ours, ref, ratio } of config.ops) {
    figures[`${op.key}_ours_median_us`] = round(us(ours.median));
    figures[`${op.key}_ours_p95_us`] = round(us(ours.p95));
    figures[`${op.key}_ref_median_us`] = round(us(ref.median));
    figures[`${op.key}_ref_p95_us`] = round(us(ref.p95));
    figures[`${op.key}_ratio`] = round(ratio);
  }
  Object.assign(figures, {
    veth_ours_median_ms: round(veth.ours.median),
    veth_ours_p95_ms: round(veth.ours.p95),
    veth_ref_median_ms: round(veth.ref.median),
    veth_ref_p95_ms: round(veth.ref.p95),
    veth_ratio: round(veth.ratio),
    veth_ratio_without_delete: round(oursRest / refRest),
    veth_create_median_ms: round(veth.oursSteps.create.median),
    veth_addr_median_ms: round(veth.oursSteps.addr.median),
    veth_up_median_ms: round(veth.oursSteps.up.median),
    veth_delete_median_ms: round(oursDelete),
    veth_delete_p95_ms: round(veth.oursSteps.delete.p95),
    veth_delete_blocking_median_ms: round(veth.deleteBlocking.median),
    veth_ref_create_median_ms: round(veth.refSteps.create.median),
    veth_ref_delete_median_ms: round(refDelete),
  });
  for (const w of DELETE_WAYS) figures[`delete_${w}_median_ms`] = round(deletes.ways[w].median);
  figures.delete_gone_median_ms = round(deletes.gone.median);
  for (const b of batches) figures[`delete_batch${b.size}_per_veth_ms`] = round(b.perVeth);
  figures[`delete_sequential${CONCURRENT}_per_veth_ms`] = round(concurrent.sequential.median / CONCURRENT);
  figures[`delete_threads${CONCURRENT}_per_veth_ms`] = round(concurrent.threads.median / CONCURRENT);
  for (const s of spawn) figures[`${s.key}_median_ms`] = round(s.summary.median);
  return figures;
}
