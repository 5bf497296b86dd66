/**
 * Faults in the state store (issue 11 "Do no harm", (d); finding 7): a real
 * daemon on a real redis-server, with answers lost and the server killed,
 * and afterwards the question every test asks: did netctl do harm?
 *
 * 1. Lost replies: a TCP proxy (test/helpers/redis-fault-proxy.ts) between
 *    the daemon and Redis loses the answer to one write after Redis ran it
 *    (the connection drops, or stalls past the client's timeout). For
 *    connect, disconnect, network create and network rm, driven by the CLI,
 *    the reply to each of the operation's writes is lost in turn. A write
 *    before the commit: the operation fails clearly (exit 5) and is whole
 *    or undone, nothing half-made (an intent left to reconcile may be
 *    finished: a delete then completes). The commit, or a write after it:
 *    it landed, so the operation reports success and its effect is there.
 * 2. Redis killed (SIGKILL) three times in the middle of connects and
 *    disconnects from three CLI and three REST clients, and restarted on
 *    the same data dir and port (append-only, fsync always: nothing
 *    acknowledged is lost): each operation succeeds or fails clearly, and
 *    once settled the same invariants hold and new operations work.
 *
 * Invariants after every fault, once `gc --dry-run` reports nothing (polled
 * up to 15 s): no address held twice, no record holding an address the IPAM
 * shows free, nothing left that no record owns, the kernel (bridges, veths,
 * the sandboxes' interfaces and addresses) and the sandboxes' /etc/hosts as
 * the records say (test/helpers/store-audit.ts). Findings are soft in the
 * sweep, so one run shows every write that does harm.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { exitStatusOf } from '../../src/cli/exit.js';
import { type DurableRedis, startDurableRedis } from '../helpers/redis-durable.js';
import { type FaultProxy, type Fired, startFaultProxy } from '../helpers/redis-fault-proxy.js';
import type { Spawned } from '../helpers/spawned.js';
import { type Audit, audit } from '../helpers/store-audit.js';
import {
  assertBuilt,
  Daemon,
  type GcActionJson,
  gcCli,
  netctl as netctlIn,
  sleep,
  testDir,
} from '../privileged/controller/daemon-fixture.js';
import { recordFigures } from './figures.js';

/** Each CLI call's deadline (a hang is a failure, not a stuck run). */
const CLI_TIMEOUT_S = 30;
/** How long the store may take to settle after a fault: gc --dry-run reports nothing by then. */
const SETTLE_MS = 15_000;
/** More writes than any of these operations makes: the sweep must end by itself before. */
const MAX_WRITES = 16;
/** NETCTL_STORE_UNAVAILABLE's message, or the store's own (docs/errors.md, "Lower layers"). */
const UNAVAILABLE = /^netctl: (state store .+ is unavailable|redis store unavailable): .+\n$/;

let faults = 0;
let leaks = 0;
let doubleGrants = 0;
const found = new Set<string>();
let redis: DurableRedis | undefined;
let proxy: FaultProxy | undefined;

beforeAll(() => assertBuilt());

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await redis?.destroy();
  redis = undefined;
});

afterAll(() => recordFigures({ faults, leaks, doubleGrants }));

const ms = (since: number) => Math.round(performance.now() - since);

/** `netctl ...` against dir's daemon (or none), with a deadline. */
function netctl(dir: string, args: string[]): Promise<Spawned> {
  return netctlIn(dir, ['--timeout', String(CLI_TIMEOUT_S), ...args]) as Promise<Spawned>;
}

/** Poll `gc --dry-run` (the daemon's REST API) until it reports nothing; what it reported last. */
async function settle(daemon: Daemon): Promise<GcActionJson[]> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    let actions: GcActionJson[];
    try {
      actions = (await daemon.api.gc({ dryRun: true })).actions;
    } catch (err) {
      actions = [{ kind: 'error', name: (err as Error).message, owner: '', action: '', reason: '' }];
    }
    if (!actions.length || Date.now() > deadline) return actions;
    await sleep(200);
  }
}

/** Audit the store and the kernel; count and assert what was found. */
async function expectNoHarm(url: string, context: string): Promise<Audit> {
  const a = await audit(url);
  // Each thing found once, however many audits see it again.
  for (const finding of a.leaks) if (!found.has(finding) && found.add(finding)) leaks++;
  for (const finding of a.doubleGrants) if (!found.has(finding) && found.add(finding)) doubleGrants++;
  expect.soft(a.doubleGrants, `${context}: addresses granted twice`).toEqual([]);
  expect.soft(a.leaks, `${context}: left with no owner`).toEqual([]);
  expect.soft(a.missing, `${context}: records without their kernel side`).toEqual([]);
  expect.soft(a.staleHosts, `${context}: /etc/hosts`).toEqual([]);
  return a;
}

function expectClearFailure(r: Spawned, context: string): void {
  expect.soft(r.stdout, context).toBe('');
  expect.soft(r.stderr, context).toMatch(UNAVAILABLE);
  expect.soft(r.status, `${context}: ${r.stderr}`).toBe(5);
}

// ------------------------------------------------------------ lost replies

interface OpCase<C> {
  name: string;
  /** The write that commits the operation (its record), by its keys. */
  commit: (keys: string[]) => boolean;
  /** Preconditions, through the daemon's REST API, with no fault armed. */
  prepare(daemon: Daemon, i: number): Promise<C>;
  /** The operation, through the CLI. */
  run(dir: string, c: C): Promise<Spawned>;
  /** Its effect is in the records. */
  done(c: C, a: Audit): boolean;
  /** The records are as before it. */
  undone(c: C, a: Audit): boolean;
  /** Remove what prepare and run made, through the REST API. */
  cleanup(daemon: Daemon, c: C, a: Audit): Promise<void>;
}

const NET = 'fnet';
/** A key of that prefix, as the daemon writes it — under its host's root on a shared store (src/kv/scoped.ts). */
const hasKey = (prefix: string) => (keys: string[]) =>
  keys.some((k) => k.replace(/^netctl\/v1\/local\/[^/]+\//, 'netctl/v1/').startsWith(prefix));

/** A netctl sandbox, and (for the hosts files) a peer already on the network. */
interface SandboxCase {
  sandbox: string;
  sandboxId: string;
  before?: { id: string; ipv4?: string; ipv6?: string };
}

const endpointOf = (c: SandboxCase, a: Audit) => a.endpoints.find((e) => e.sandboxId === c.sandboxId);

const CONNECT: OpCase<SandboxCase> = {
  name: 'connect',
  commit: hasKey('netctl/v1/endpoints/'),
  async prepare(daemon, i) {
    const sandbox = `fc${i}`;
    return { sandbox, sandboxId: (await daemon.api.createSandbox({ name: sandbox })).id };
  },
  run: (dir, c) => netctl(dir, ['network', 'connect', NET, c.sandbox]),
  done: (c, a) => endpointOf(c, a) !== undefined,
  undone: (c, a) => endpointOf(c, a) === undefined,
  async cleanup(daemon, c, a) {
    if (endpointOf(c, a)) await daemon.api.disconnect(NET, c.sandbox);
    await daemon.api.deleteSandbox(c.sandbox);
  },
};

const DISCONNECT: OpCase<SandboxCase> = {
  name: 'disconnect',
  commit: hasKey('netctl/v1/endpoints/'),
  async prepare(daemon, i) {
    const sandbox = `fd${i}`;
    const sandboxId = (await daemon.api.createSandbox({ name: sandbox })).id;
    const e = await daemon.api.connect({ network: NET, sandbox });
    return {
      sandbox,
      sandboxId,
      before: { id: e.id, ...(e.ipv4 ? { ipv4: e.ipv4 } : {}), ...(e.ipv6 ? { ipv6: e.ipv6 } : {}) },
    };
  },
  run: (dir, c) => netctl(dir, ['network', 'disconnect', NET, c.sandbox]),
  done: (c, a) => endpointOf(c, a) === undefined,
  undone: (c, a) => {
    const e = endpointOf(c, a);
    return e !== undefined && e.id === c.before?.id && e.ipv4 === c.before.ipv4 && e.ipv6 === c.before.ipv6;
  },
  async cleanup(daemon, c, a) {
    if (endpointOf(c, a)) await daemon.api.disconnect(NET, c.sandbox);
    await daemon.api.deleteSandbox(c.sandbox);
  },
};

interface NetworkCase {
  name: string;
  subnet: string;
}

const networkOf = (c: NetworkCase, a: Audit) => a.networks.find((n) => n.name === c.name);

const CREATE: OpCase<NetworkCase> = {
  name: 'network create',
  commit: hasKey('netctl/v1/names/networks/'),
  prepare: async (_daemon, i) => ({ name: `fn${i}`, subnet: `10.78.${i}.0/24` }),
  run: (dir, c) => netctl(dir, ['network', 'create', '--subnet', c.subnet, c.name]),
  done: (c, a) => networkOf(c, a)?.ipam.config[0]?.subnet === c.subnet,
  undone: (c, a) => networkOf(c, a) === undefined,
  async cleanup(daemon, c, a) {
    if (networkOf(c, a)) await daemon.api.deleteNetwork(c.name);
  },
};

const REMOVE: OpCase<NetworkCase> = {
  name: 'network rm',
  commit: hasKey('netctl/v1/names/networks/'),
  async prepare(daemon, i) {
    const c = { name: `fr${i}`, subnet: `10.79.${i}.0/24` };
    await daemon.api.createNetwork({ name: c.name, ipam: { config: [{ subnet: c.subnet }] } });
    return c;
  },
  run: (dir, c) => netctl(dir, ['network', 'rm', c.name]),
  done: (c, a) => networkOf(c, a) === undefined,
  undone: (c, a) => networkOf(c, a) !== undefined && !networkOf(c, a)?.deleting,
  async cleanup(daemon, c, a) {
    if (networkOf(c, a)) await daemon.api.deleteNetwork(c.name);
  },
};

/** One lost reply: what the CLI said, how the store settled. */
interface Trial {
  write: number;
  fired: Fired;
  status: number | null;
  ms: number;
  outcome: 'done' | 'undone' | 'half-made';
}

/**
 * Lose the reply to write 1 of the operation, then write 2, ... until a run
 * makes fewer writes than that (it must then succeed untouched).
 */
async function sweep<C>(op: OpCase<C>, mode: 'drop' | 'stall'): Promise<Trial[]> {
  redis = await startDurableRedis();
  proxy = await startFaultProxy(redis.socket);
  const dir = testDir();
  // A short command timeout, so a stalled reply times out quickly; the stall outlasts it.
  const daemon = await Daemon.start(dir, { kv: proxy.url('timeout=1000') });
  await daemon.api.createNetwork({
    name: NET,
    enableIPv6: true,
    ipam: { config: [{ subnet: '10.77.0.0/24' }, { subnet: 'fd00:77::/64' }] },
  });
  // A peer on the network: its /etc/hosts must follow every endpoint that comes and goes.
  await daemon.api.createSandbox({ name: 'fpeer' });
  await daemon.api.connect({ network: NET, sandbox: 'fpeer' });

  const trials: Trial[] = [];
  let committed = false;
  for (let write = 1; ; write++) {
    expect(write, `${op.name} never ran clean`).toBeLessThanOrEqual(MAX_WRITES);
    const c = await op.prepare(daemon, write);
    proxy.fault({ nth: write, mode, stallMs: 1500 });
    const started = performance.now();
    const r = await op.run(dir, c);
    const took = ms(started);
    const fired = proxy.disarm();
    const context = `${op.name}, ${mode} the reply to write ${write} (${fired?.keys.slice(2).join(' ') ?? 'none'})`;
    if (fired) faults++;
    committed ||= fired !== undefined && op.commit(fired.keys);
    const actions = await settle(daemon);
    expect.soft(actions, `${context}: gc --dry-run after ${SETTLE_MS / 1000} s`).toEqual([]);
    const a = await expectNoHarm(redis.url, context);
    if (!fired || committed) {
      // Untouched, or the commit landed: success, and its effect is there.
      expect.soft({ status: r.status, stderr: r.stderr }, context).toEqual({ status: 0, stderr: '' });
      expect.soft(op.done(c, a), `${context}: its effect`).toBe(true);
    } else if (r.status === 0) {
      expect.soft(op.done(c, a), `${context}: reported success, its effect`).toBe(true);
    } else {
      // Failed: nothing half-made. Done all the same is whole too: an intent whose
      // write's outcome was unknown is left to reconcile, which finishes a delete.
      expectClearFailure(r, context);
      expect.soft(op.done(c, a) || op.undone(c, a), `${context}: failed, all or nothing`).toBe(true);
    }
    const outcome = op.done(c, a) ? 'done' : op.undone(c, a) ? 'undone' : 'half-made';
    process.stdout.write(
      `${op.name} ${mode} write ${write} [${fired?.keys.slice(2).join(' ') ?? 'none fired'}]: exit ${r.status} in ${took} ms, ${outcome}\n`,
    );
    // What a fault left may refuse its removal: noted, and the sweep goes on with new names.
    await op.cleanup(daemon, c, a).catch((err: Error) => {
      expect.soft({ removal: err.message }, `${context}: removing what it made`).toEqual({});
    });
    if (!fired) break;
    trials.push({ write, fired, status: r.status, ms: took, outcome });
  }
  expect(committed, `${op.name}: the commit's reply was lost once`).toBe(true);

  // The network and its peer taken away through the API: nothing may be left.
  await daemon.api.disconnect(NET, 'fpeer');
  await daemon.api.deleteSandbox('fpeer');
  await daemon.api.deleteNetwork(NET);
  expect(await gcCli(dir, true)).toEqual([]);
  const end = await expectNoHarm(redis.url, `${op.name}: at the end`);
  expect([end.networks, end.endpoints, end.sandboxes, end.allocations]).toEqual([[], [], [], []]);
  await daemon.stop();
  return trials;
}

describe('a reply lost after Redis ran the write', () => {
  for (const op of [CONNECT, DISCONNECT, CREATE, REMOVE] as OpCase<unknown>[]) {
    for (const mode of ['drop', 'stall'] as const) {
      it(`${op.name}: the connection ${mode === 'drop' ? 'drops' : 'stalls past the timeout'} after each write in turn`, async () => {
        const trials = await sweep(op, mode);
        expect(trials.length).toBeGreaterThanOrEqual(2);
        // Each harmful write costs the settle poll's 15 s, and so does the harm it leaves for later writes.
      }, 300_000);
    }
  }
});

// ------------------------------------------------------------ Redis killed

/** What an operation ended with: an exit status (the REST API's errors mapped as the CLI maps them). */
interface Outcome {
  status: number;
  message: string;
}

interface ClientLog {
  ok: number;
  unavailable: number;
  /** A disconnect after an unknown outcome found nothing to disconnect. */
  notThere: number;
  /** A connect after an unknown outcome found the attachment still held (conflict). */
  held: number;
}

/**
 * Connect and disconnect the client's sandboxes in turn, until `more()`
 * says stop; every outcome is a success or a clear failure. After a
 * failure the sandbox's state is unknown until an operation on it
 * succeeds: the next step is a disconnect, which may find nothing to
 * disconnect; and a connect may find the sandbox's attachment still held
 * by the failed connect, until the daemon settles it once Redis is back.
 */
async function streamClient(
  sandboxes: string[],
  op: (verb: 'connect' | 'disconnect', sandbox: string) => Promise<Outcome>,
  more: (done: number) => boolean,
  pauseMs: number,
): Promise<ClientLog> {
  const log: ClientLog = { ok: 0, unavailable: 0, notThere: 0, held: 0 };
  const on = new Map<string, boolean | undefined>(sandboxes.map((s) => [s, false]));
  const uncertain = new Set<string>();
  for (let i = 0; more(i); i++) {
    const sandbox = sandboxes[i % sandboxes.length] as string;
    const belief = on.get(sandbox);
    const verb = belief === false ? 'connect' : 'disconnect';
    const r = await op(verb, sandbox);
    const context = `${verb} ${sandbox} (on the network: ${belief}): exit ${r.status} ${r.message}`;
    if (r.status === 0) {
      log.ok++;
      on.set(sandbox, verb === 'connect');
      uncertain.delete(sandbox);
    } else if (r.status === 5) {
      expect(r.message, context).toMatch(UNAVAILABLE);
      log.unavailable++;
      on.set(sandbox, undefined);
      uncertain.add(sandbox);
    } else if (uncertain.has(sandbox) && verb === 'disconnect' && r.status === 3) {
      // The connect whose outcome was unknown had not landed (or was undone).
      expect(r.message, context).toMatch(/^netctl: endpoint .+ not found\n$/);
      log.notThere++;
      on.set(sandbox, false);
    } else if (uncertain.has(sandbox) && verb === 'connect' && r.status === 4) {
      // The attachment is still held by the connect whose outcome was unknown.
      expect(r.message, context).toMatch(/^netctl: endpoint with name .+ already exists in network knet\n$/);
      log.held++;
      on.set(sandbox, undefined);
    } else {
      expect.fail(`unexpected: ${context}`);
    }
    await sleep(pauseMs);
  }
  return log;
}

describe('Redis killed in the middle of a stream of operations', () => {
  it('connects and disconnects from 3 CLI and 3 REST clients, Redis SIGKILLed 3 times and restarted: clear errors or success, then no harm', async () => {
    redis = await startDurableRedis();
    const dir = testDir();
    const daemon = await Daemon.start(dir, { kv: redis.url });
    await daemon.api.createNetwork({
      name: 'knet',
      enableIPv6: true,
      ipam: { config: [{ subnet: '10.76.0.0/24' }, { subnet: 'fd00:76::/64' }] },
    });
    const cliClients = [0, 1, 2].map((c) => [`kc${c}a`, `kc${c}b`]);
    const apiClients = [0, 1, 2].map((c) => [`ka${c}a`, `ka${c}b`]);
    const sandboxes = [...cliClients, ...apiClients].flat();
    for (const sandbox of sandboxes) await daemon.api.createSandbox({ name: sandbox });

    const CLI_OPS = 14;
    const byCli = async (verb: 'connect' | 'disconnect', sandbox: string): Promise<Outcome> => {
      const r = await netctl(dir, ['network', verb, 'knet', sandbox]);
      expect(r.ms, `${verb} ${sandbox}: a deadline, never a hang`).toBeLessThan((CLI_TIMEOUT_S + 5) * 1000);
      return { status: r.status ?? -1, message: r.stderr };
    };
    const byApi = async (verb: 'connect' | 'disconnect', sandbox: string): Promise<Outcome> => {
      try {
        if (verb === 'connect') await daemon.api.connect({ network: 'knet', sandbox });
        else await daemon.api.disconnect('knet', sandbox);
        return { status: 0, message: '' };
      } catch (err) {
        // As the CLI reports it (src/cli/exit.ts).
        return { status: exitStatusOf(err), message: `netctl: ${(err as Error).message}\n` };
      }
    };
    let cliRunning = cliClients.length;
    let outagesOver = false;
    const started = performance.now();
    const clients = [
      // At least CLI_OPS each, and on until the last outage is over (a fast machine is done sooner).
      ...cliClients.map((own) =>
        streamClient(own, byCli, (i) => i < CLI_OPS || !outagesOver, 0).finally(() => {
          cliRunning--;
        }),
      ),
      // The REST clients keep going as long as the CLI's do.
      ...apiClients.map((own) => streamClient(own, byApi, () => cliRunning > 0, 100)),
    ];
    // Outages: shorter than the controller's settle window (~3 s) and longer.
    const outages = [
      { at: 2000, downMs: 1000 },
      { at: 6000, downMs: 4500 },
      { at: 14_000, downMs: 2000 },
    ];
    const killer = (async () => {
      const report: string[] = [];
      for (const outage of outages) {
        await sleep(Math.max(0, outage.at - ms(started)));
        const killedAt = performance.now();
        await redis?.kill9();
        faults++;
        await sleep(outage.downMs);
        await redis?.start();
        report.push(`SIGKILL at ${Math.round(killedAt - started)} ms, back after ${ms(killedAt)} ms`);
      }
      outagesOver = true;
      return report;
    })();
    const [logs, report] = await Promise.all([Promise.all(clients), killer]);
    const streamMs = ms(started);

    const actions = await settle(daemon);
    expect(actions, 'gc --dry-run once Redis is back').toEqual([]);
    await expectNoHarm(redis.url, 'after the outages');
    const sum = (l: ClientLog[]) =>
      l.reduce(
        (t, c) => ({
          ok: t.ok + c.ok,
          unavailable: t.unavailable + c.unavailable,
          notThere: t.notThere + c.notThere,
          held: t.held + c.held,
        }),
        { ok: 0, unavailable: 0, notThere: 0, held: 0 },
      );
    const cli = sum(logs.slice(0, cliClients.length));
    const api = sum(logs.slice(cliClients.length));
    process.stdout.write(
      `redis kill -9 stream: ${JSON.stringify({ cli, api, outages: report, streamMs })}\n`,
    );
    expect(cli.ok + cli.unavailable + cli.notThere + cli.held).toBeGreaterThanOrEqual(
      cliClients.length * CLI_OPS,
    );
    // Every outage hit the stream: operations failed while Redis was down.
    expect(report).toHaveLength(outages.length);
    expect(cli.unavailable + api.unavailable).toBeGreaterThanOrEqual(outages.length);

    // New operations work: every sandbox off the network, then on it and off again.
    for (const sandbox of sandboxes) {
      const r = await byApi('disconnect', sandbox);
      expect([0, 3], r.message).toContain(r.status);
    }
    for (const verb of ['connect', 'disconnect'] as const) {
      for (const sandbox of sandboxes) {
        const r = await (sandbox.startsWith('kc') ? byCli : byApi)(verb, sandbox);
        expect(r, `${verb} ${sandbox}`).toEqual({ status: 0, message: '' });
      }
      if (verb === 'connect') {
        const a = await expectNoHarm(redis.url, 'all connected after the outages');
        expect(a.endpoints).toHaveLength(sandboxes.length);
      }
    }
    for (const sandbox of sandboxes) await daemon.api.deleteSandbox(sandbox);
    expect((await netctl(dir, ['network', 'rm', 'knet'])).status).toBe(0);
    expect(await gcCli(dir, true)).toEqual([]);
    const end = await expectNoHarm(redis.url, 'at the end');
    expect([end.networks, end.endpoints, end.sandboxes, end.allocations]).toEqual([[], [], [], []]);
    await daemon.stop();
  }, 240_000);
});
