/**
 * Races for one exclusive resource at every way in at once (issue 11 (a),
 * "Do no harm"). Twenty callers against one daemon and its store, mixed
 * over the four ways a request reaches the controller:
 *
 *   rest  POST /v1/networks/NET/connect on the daemon's socket (201, or 409
 *         with the registry's code);
 *   shim  the netctl-cni C shim forwarding ADD to the daemon (a result, or
 *         error 100 with the registry's code in `details`);
 *   cni   the CNI plugin standalone, `node dist/src/cni/main.js netctl-cni`,
 *         no daemon in its path, on the daemon's store (NETCTL_STATE_DIR);
 *   cli   `netctl network connect` with no daemon at its --socket: the CLI
 *         runs the controller itself on the store the daemon recorded (exit
 *         4 on a conflict).
 *
 * The Node callers (cni, cli) are started first and held once their modules
 * are loaded (test/helpers/held.ts); then all twenty go together, the fast
 * ones (rest, shim) each after a random delay within the time a released
 * Node caller takes to reach the store, so every way in gets to win some runs.
 *
 * Each race: exactly one caller gets the resource and every other one a
 * conflict in its own protocol's words (no 500, no CNI 101, no hang); the
 * kernel, the firewall and the store hold it once, for the winner; `netctl
 * gc --dry-run` finds nothing to clean (nothing leaked, nothing half made);
 * the runtime's DEL of each losing ADD (a runtime sends one after a failed
 * ADD) leaves the winner alone; and once everything is removed nothing is
 * left: no link but lo, no netns, no rule, no record, no claim.
 *
 * Races: one host port (tcp 8080), one static address (10.80.0.50), one
 * sandbox's attachment to one network (a CNI container's sandbox, which all
 * four ways can name), and the same for a container no ADD has made a
 * sandbox for yet (CNI only); then that last race's losing interleaving,
 * forced, so it is tried every run. The figures (figures.ts) count the
 * callers and the resources that went to more than one of them.
 */
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { netctlCniHandlers } from '../../src/cni/plugin.js';
import { sandboxNameOf } from '../../src/cni/sandbox.js';
import { dispatch } from '../../src/cni/skel.js';
import type { NetctlApi } from '../../src/controller/api.js';
import type { Endpoint } from '../../src/core/model.js';
import type { ConnectRequest } from '../../src/core/schemas.js';
import { createNetns, deleteNetns } from '../../src/kernel/index.js';
import { packageRoot } from '../../src/paths.js';
import { type HeldOutcome, killHeld, spawnHeld } from '../helpers/held.js';
import { EMPTY, type Inventory } from '../helpers/inventory.js';
import { spawnCollected } from '../helpers/spawned.js';
import { type CniHost, cniHost, execPlugin, ours } from '../privileged/cni/fixture.js';
import {
  assertBuilt,
  Daemon,
  daemonInventory,
  gcCli,
  records,
  testDir,
  withLocal,
} from '../privileged/controller/daemon-fixture.js';
import { recordFigures } from './figures.js';

const BIN = join(packageRoot, 'bin', 'netctl.js');
const CNI_MAIN = join(packageRoot, 'dist', 'src', 'cni', 'main.js');
const built = (path: string) => join(packageRoot, 'dist', 'src', path);
/** What a released CLI or standalone plugin would otherwise load after the go. */
const WARM = {
  cli: [built('cli/program.js'), built('daemon/compose.js')],
  cni: [built('cni/plugins.js'), built('daemon/compose.js')],
};

const WAYS = ['rest', 'shim', 'cni', 'cli'] as const;
type Way = (typeof WAYS)[number];

/** Callers per way in a race of all four (20 in all). */
const PER_WAY = 5;
/** A caller that has not answered by then is hung (the shim's own deadline is 30 s). */
const CALLER_DEADLINE_MS = 45_000;
/** Bounds of the fast callers' delay window (see calibrate). */
const WINDOW_MS = { min: 200, max: 3000 };

const NETWORK = 'race';
const SUBNET = '10.80.0.0/24';
const HOST_PORT = 8080;
const STATIC_IP = '10.80.0.50';
/** Network `home`: where the container of the sandbox/network race was first attached. */
const HOME_SUBNET = '10.81.0.0/24';

beforeAll(assertBuilt);
afterEach(killHeld);

// The suite's figures, from what the races showed (recorded even when one fails).
let inputs = 0;
let doubleGrants = 0;
afterAll(() => recordFigures({ inputs, doubleGrants }));

// ----------------------------------------------------------------- callers

interface Caller {
  way: Way;
  /** rest-0, shim-3, ...: for messages. */
  name: string;
  /** The netctl sandbox it connects (rest, cli) or its ADD uses (shim, cni). */
  sandbox: string;
  /** CNI callers: the container, its netns and interface name. */
  containerId?: string;
  netns?: string;
  ifname?: string;
}

/** What a caller asks for besides the attachment itself. */
interface Wish {
  port?: boolean;
  ip?: boolean;
}

type Verdict = 'granted' | 'conflict' | 'other';

interface Outcome {
  caller: Caller;
  verdict: Verdict;
  /** What it answered, for messages. */
  answer: string;
  /** From the go to its answer. */
  ms: number;
}

const dots = (text: string) => text.replaceAll('.', '\\.');

/** A conflict in each protocol's words: the registry's code (rest, CNI details) or its message (CLI). */
type ConflictCode = 'NETCTL_PORT_IN_USE' | 'NETCTL_ADDRESS_IN_USE' | 'NETCTL_ENDPOINT_EXISTS';

const CLI_MESSAGE: Record<ConflictCode, RegExp> = {
  NETCTL_PORT_IN_USE: new RegExp(
    `^netctl: host port 0\\.0\\.0\\.0:${HOST_PORT}/tcp is already published by .+\n$`,
  ),
  // The IPAM's own message, naming the pool and the holder (docs/errors.md, "Lower layers").
  NETCTL_ADDRESS_IN_USE: new RegExp(
    `^netctl: address ${dots(STATIC_IP)} in pool local/${dots(SUBNET)} is already in use by ep:[0-9a-f]+\n$`,
  ),
  NETCTL_ENDPOINT_EXISTS: new RegExp(
    `^netctl: endpoint with name \\S+ already exists in network ${NETWORK}\n$`,
  ),
};

/** The CNI configuration every CNI caller's ADD and DEL get. */
function cniConfig(wish: Wish): Record<string, unknown> {
  const runtimeConfig = {
    ...(wish.port ? { portMappings: [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp' }] } : {}),
    ...(wish.ip ? { ips: [`${STATIC_IP}/24`] } : {}),
  };
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    type: 'netctl-cni',
    ...(Object.keys(runtimeConfig).length ? { runtimeConfig } : {}),
  };
}

function cniEnv(host: CniHost, caller: Caller, command: 'ADD' | 'DEL'): Record<string, string> {
  return {
    ...host.env,
    CNI_COMMAND: command,
    CNI_PATH: host.cniPath,
    CNI_CONTAINERID: caller.containerId as string,
    CNI_NETNS: caller.netns as string,
    CNI_IFNAME: caller.ifname as string,
  };
}

/** A socket where no daemon listens: the CLI runs the controller itself. */
const noDaemon = (host: CniHost) => join(host.dir, 'no-daemon.sock');

function cliArgs(host: CniHost, args: string[]): string[] {
  return ['--socket', noDaemon(host), ...args];
}

const cliEnv = (host: CniHost) => ({
  PATH: process.env.PATH,
  NETCTL_STATE_DIR: host.stateDir,
  NETCTL_LOG_LEVEL: 'warn',
});

/** POST a JSON body on the daemon's socket; the status and the body as sent back. */
function post(socket: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: CALLER_DEADLINE_MS,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${CALLER_DEADLINE_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function restVerdict(status: number, text: string, code: ConflictCode): Verdict {
  const body = parse(text);
  if (status === 201 && typeof body?.id === 'string') return 'granted';
  if (status === 409 && body?.code === code && body.class === 'conflict') return 'conflict';
  return 'other';
}

function cniVerdict(status: number | null, stdout: string, code: ConflictCode): Verdict {
  const body = parse(stdout);
  if (status === 0 && Array.isArray(body?.ips)) return 'granted';
  if (status === 100 && body?.code === 100 && body.details === code) return 'conflict';
  return 'other';
}

function cliVerdict(o: HeldOutcome, code: ConflictCode): Verdict {
  if (o.status === 0 && o.stderr === '') return 'granted';
  if (o.status === 4 && CLI_MESSAGE[code].test(o.stderr)) return 'conflict';
  return 'other';
}

const heldAnswer = (o: HeldOutcome) =>
  `exit ${o.status ?? o.signal} ${o.stdout.trim()} ${o.stderr.trim()}`.trim();

/** A caller's own deadline: a hang is an outcome, reported with the others. */
function withDeadline<T>(work: Promise<T>, onHang: () => void): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => {
      onHang();
      resolve('hung');
    }, CALLER_DEADLINE_MS);
  });
  return Promise.race([work, hung]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How long the fast callers' delays may be: about what the released Node
 * callers take here, now, to open the store and get their answer — one held
 * CLI asking the controller in-process for the network, released alone and
 * timed, times how many of them share each core in the race (their work
 * after the go is mostly CPU).
 */
async function calibrate(host: CniHost, heldCallers: number): Promise<number> {
  const probe = spawnHeld(BIN, cliArgs(host, ['network', 'inspect', NETWORK]), {
    env: cliEnv(host),
    warm: WARM.cli,
  });
  await probe.ready;
  probe.release();
  const o = await probe.done;
  expect(o.status, o.stderr).toBe(0);
  const perCore = Math.max(1, heldCallers / availableParallelism());
  return Math.min(Math.max(o.ms * perCore, WINDOW_MS.min), WINDOW_MS.max);
}

interface Race {
  outcomes: Outcome[];
  /** The window the fast callers' delays were drawn from. */
  windowMs: number;
}

/**
 * Run one race: the Node callers started and held until all are loaded,
 * then everyone at once (rest and shim after their random delay).
 */
async function race(host: CniHost, callers: Caller[], wish: Wish, code: ConflictCode): Promise<Race> {
  const config = cniConfig(wish);
  const held = new Map(
    callers
      .filter((c) => c.way === 'cli' || c.way === 'cni')
      .map((c) => {
        const h =
          c.way === 'cli'
            ? spawnHeld(
                BIN,
                cliArgs(host, [
                  'network',
                  'connect',
                  ...(wish.port ? ['-p', `${HOST_PORT}:80`] : []),
                  ...(wish.ip ? ['--ip', STATIC_IP] : []),
                  NETWORK,
                  c.sandbox,
                ]),
                { env: cliEnv(host), warm: WARM.cli },
              )
            : spawnHeld(CNI_MAIN, ['netctl-cni'], {
                env: cniEnv(host, c, 'ADD'),
                input: JSON.stringify(config),
                warm: WARM.cni,
              });
        return [c, h] as const;
      }),
  );
  await Promise.all([...held.values()].map((h) => h.ready));
  const windowMs = await calibrate(host, held.size);

  const go = performance.now();
  const run = async (c: Caller): Promise<Outcome> => {
    const h = held.get(c);
    if (h) {
      h.release();
      const o = await withDeadline(h.done, () => h.kill());
      if (o === 'hung') return { caller: c, verdict: 'other', answer: 'hung', ms: performance.now() - go };
      const verdict = c.way === 'cli' ? cliVerdict(o, code) : cniVerdict(o.status, o.stdout, code);
      return { caller: c, verdict, answer: heldAnswer(o), ms: performance.now() - go };
    }
    await sleep(Math.random() * windowMs);
    if (c.way === 'rest') {
      const answer = await withDeadline(
        post(host.socket, `/v1/networks/${NETWORK}/connect`, {
          sandbox: c.sandbox,
          ...(wish.port ? { portMappings: [{ proto: 'tcp', hostPort: HOST_PORT, containerPort: 80 }] } : {}),
          ...(wish.ip ? { ipv4: STATIC_IP } : {}),
        }).catch((err: Error) => ({ status: 0, text: err.message })),
        () => {},
      );
      const ms = performance.now() - go;
      if (answer === 'hung') return { caller: c, verdict: 'other', answer: 'hung', ms };
      return {
        caller: c,
        verdict: restVerdict(answer.status, answer.text, code),
        answer: `${answer.status} ${answer.text}`,
        ms,
      };
    }
    const r = await withDeadline(
      execPlugin(
        host,
        ours(host),
        { command: 'ADD', containerId: c.containerId, netns: c.netns, ifname: c.ifname },
        config,
      ),
      () => {},
    );
    const ms = performance.now() - go;
    if (r === 'hung') return { caller: c, verdict: 'other', answer: 'hung', ms };
    return {
      caller: c,
      verdict: cniVerdict(r.code, r.stdout, code),
      answer: `exit ${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`.trim(),
      ms,
    };
  };
  const outcomes = await Promise.all(callers.map(run));
  inputs += callers.length;
  return { outcomes, windowMs };
}

// ------------------------------------------------------------------ setup

interface Stand {
  host: CniHost;
  daemon: Daemon;
  networkId: string;
}

async function stand(): Promise<Stand> {
  const host = cniHost();
  const daemon = await Daemon.start(host.dir);
  const network = await daemon.api.createNetwork({ name: NETWORK, ipam: { config: [{ subnet: SUBNET }] } });
  return { host, daemon, networkId: network.id };
}

/**
 * PER_WAY callers of each way, each with its own sandbox: rest and cli
 * callers a netctl sandbox (its own netns), made here; shim and cni callers
 * a container netns, their sandbox made by their ADD.
 */
async function ownCallers(s: Stand, tag: string): Promise<Caller[]> {
  const callers: Caller[] = [];
  for (const way of WAYS) {
    for (let i = 0; i < PER_WAY; i++) {
      const name = `${way}-${i}`;
      if (way === 'rest' || way === 'cli') {
        await s.daemon.api.createSandbox({ name: `${tag}-${name}` });
        callers.push({ way, name, sandbox: `${tag}-${name}` });
      } else {
        const containerId = `${tag}-${name}`;
        const netns = createNetns(`${tag}-${name}`);
        callers.push({ way, name, sandbox: sandboxNameOf(containerId), containerId, netns, ifname: 'eth0' });
      }
    }
  }
  return callers;
}

// ------------------------------------------------------------ what it shows

/** Every caller in a line: way, name, verdict, time, and the answer of any that is not a plain conflict. */
function describeOutcomes(outcomes: Outcome[]): string {
  return outcomes
    .map(
      (o) =>
        `${o.caller.name} ${o.verdict} ${o.ms.toFixed(0)} ms${o.verdict === 'conflict' ? '' : `: ${o.answer}`}`,
    )
    .join('\n');
}

/** One line per race for the run's output: who won, and when each way answered. */
function summary(title: string, { outcomes, windowMs }: Race, startedMs: number): string {
  const winner = outcomes.filter((o) => o.verdict === 'granted').map((o) => o.caller.name);
  const ways = WAYS.map((way) => {
    const ms = outcomes.filter((o) => o.caller.way === way).map((o) => o.ms);
    return ms.length ? `${way} ${Math.min(...ms).toFixed(0)}-${Math.max(...ms).toFixed(0)}` : '';
  }).filter(Boolean);
  return (
    `race ${title}: ${outcomes.length} callers, granted to ${winner.join(', ') || 'nobody'}; ` +
    `rest and shim delayed by up to ${windowMs.toFixed(0)} ms; ` +
    `answered (ms after the go): ${ways.join(', ')}; whole test ${((performance.now() - startedMs) / 1000).toFixed(1)} s`
  );
}

/** `-A ... --dport 8080 ... -j DNAT` in any nat table, nft and legacy. */
function dnatRules(): string[] {
  return ['iptables-save', 'iptables-legacy-save'].flatMap((save) =>
    execFileSync(save, ['-t', 'nat'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter(
        (line) =>
          line.startsWith('-A ') && line.includes(`--dport ${HOST_PORT} `) && line.includes('-j DNAT'),
      ),
  );
}

/** The outcome every race must have: one grant, and a conflict for every other caller. */
function expectOneWinner(outcomes: Outcome[]): Outcome {
  const granted = outcomes.filter((o) => o.verdict === 'granted');
  const others = outcomes.filter((o) => o.verdict === 'other');
  expect(
    others,
    `callers that got neither the resource nor a conflict:\n${describeOutcomes(outcomes)}`,
  ).toEqual([]);
  expect(granted.length, `callers granted the resource:\n${describeOutcomes(outcomes)}`).toBe(1);
  return granted[0] as Outcome;
}

/** The endpoint records of network NETWORK. */
async function raceEndpoints(s: Stand): Promise<Endpoint[]> {
  return (await records(s.host.dir)).endpoints.filter((e) => e.networkId === s.networkId);
}

/** The runtime's DEL of a CNI caller's attachment, the way its ADD came in. */
async function cniDel(s: Stand, c: Caller, wish: Wish): Promise<{ code: number | null; answer: string }> {
  if (c.way === 'shim') {
    const call = { command: 'DEL', containerId: c.containerId, netns: c.netns, ifname: c.ifname } as const;
    const r = await execPlugin(s.host, ours(s.host), call, cniConfig(wish));
    return { code: r.code, answer: `${r.stdout}${r.stderr}` };
  }
  const r = await spawnCollected(process.execPath, [CNI_MAIN, 'netctl-cni'], {
    env: cniEnv(s.host, c, 'DEL'),
    input: JSON.stringify(cniConfig(wish)),
  });
  return { code: r.status, answer: `${r.stdout}${r.stderr}` };
}

/** A REST or CLI caller's disconnect, the way its connect came in. */
async function disconnect(s: Stand, c: Caller): Promise<void> {
  if (c.way === 'rest') {
    await s.daemon.api.disconnect(NETWORK, c.sandbox);
    return;
  }
  const r = await spawnCollected(
    process.execPath,
    [BIN, ...cliArgs(s.host, ['network', 'disconnect', NETWORK, c.sandbox])],
    { env: cliEnv(s.host) },
  );
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}

/**
 * After a race's own checks: the losers' runtime DELs (each must succeed,
 * and leave the winner as it was: `stillWon` checks it again, and gc still
 * finds nothing), then the winner's removal, then `cleanUp` (sandboxes,
 * containers' netns, networks); nothing may be left.
 */
async function teardown(
  s: Stand,
  outcomes: Outcome[],
  wish: Wish,
  stillWon: () => Promise<void>,
  cleanUp: () => Promise<void>,
): Promise<void> {
  const winner = outcomes.find((o) => o.verdict === 'granted')?.caller;
  for (const c of outcomes.map((o) => o.caller).filter((c) => c !== winner && isCni(c))) {
    const del = await cniDel(s, c, wish);
    expect(del, `DEL after ${c.name}'s failed ADD`).toEqual({ code: 0, answer: '' });
  }
  await stillWon();
  expect(await gcCli(s.host.dir, true)).toEqual([]);
  if (winner && isCni(winner)) expect(await cniDel(s, winner, wish)).toEqual({ code: 0, answer: '' });
  else if (winner) await disconnect(s, winner);
  await cleanUp();
  const left: Inventory = await daemonInventory(s.host.dir);
  expect(left).toEqual(EMPTY);
}

const isCniWay = (way: Way) => way === 'shim' || way === 'cni';
const isCni = (c: Caller) => isCniWay(c.way);

/** Remove the rest and cli callers' sandboxes, the CNI callers' netns (the runtime's), and the networks. */
async function removeAll(s: Stand, callers: Caller[], networks: string[]): Promise<void> {
  for (const name of new Set(callers.filter((c) => !isCni(c)).map((c) => c.sandbox)))
    await s.daemon.api.deleteSandbox(name);
  for (const ns of new Set(callers.filter(isCni).map((c) => c.netns as string))) deleteNetns(ns);
  for (const name of networks) await s.daemon.api.deleteNetwork(name);
}

/** The netns (its name in /run/netns) a sandbox of the records is on. */
async function netnsOf(s: Stand, sandbox: string): Promise<string> {
  const record = (await records(s.host.dir)).sandboxes.find((sb) => sb.name === sandbox);
  expect(record, `sandbox ${sandbox}`).toBeDefined();
  return (record?.key ?? '').replace('/run/netns/', '');
}

/** `<netns> <ifname>` of every interface in a named netns holding an address of the race's subnet. */
async function onRaceSubnet(dir: string, address = ''): Promise<string[]> {
  const prefix = address ? `${address}/24` : SUBNET.slice(0, SUBNET.lastIndexOf('.') + 1);
  return (await daemonInventory(dir)).netnsLinks
    .filter((l) => (l.split(' ')[2] ?? '').split(',').some((a) => a.startsWith(prefix)))
    .map((l) => l.split(' ').slice(0, 2).join(' '));
}

/**
 * Count a race for the figures before anything is asserted: how many
 * callers the resource went to, by every witness — the answers, the store's
 * records and claims, what the kernel and the firewall hold. More than one
 * by any of them is a double grant.
 */
function countGrants(...witnesses: number[]): void {
  if (Math.max(...witnesses) > 1) doubleGrants++;
}

// ------------------------------------------------------------------ races

describe('races for one exclusive resource, every way in at once', () => {
  it('(a) host port tcp/8080 published by 20 callers, each for its own sandbox or container: one gets it', async () => {
    const started = performance.now();
    const s = await stand();
    const callers = await ownCallers(s, 'p');
    const wish: Wish = { port: true };
    const raced = await race(s.host, callers, wish, 'NETCTL_PORT_IN_USE');
    const { outcomes } = raced;
    console.log(summary('host port', raced, started));

    const holding = async () =>
      (await raceEndpoints(s)).filter((e) => e.portMappings.some((m) => m.hostPort === HOST_PORT));
    const portClaims = async () =>
      (await daemonInventory(s.host.dir)).claims.filter((c) => c.startsWith('claims/ports/tcp/'));
    countGrants(
      outcomes.filter((o) => o.verdict === 'granted').length,
      (await holding()).length,
      dnatRules().length,
      (await portClaims()).length,
    );

    const winner = expectOneWinner(outcomes);
    const check = async () => {
      const holders = await holding();
      expect(holders.map((e) => e.name)).toEqual([winner.caller.sandbox]);
      const endpoint = holders[0] as Endpoint;
      expect(endpoint.portMappings).toEqual([{ proto: 'tcp', hostPort: HOST_PORT, containerPort: 80 }]);
      const dnat = dnatRules();
      expect(dnat, 'DNAT rules for the port').toHaveLength(1);
      expect(dnat[0]).toContain(`netctl:ep:${endpoint.id}/`);
      expect(dnat[0]).toContain(`--to-destination ${(endpoint.ipv4 as string).split('/')[0]}:80`);
      expect(await portClaims()).toEqual([
        `claims/ports/tcp/${Math.floor(HOST_PORT / 256)} ep:${endpoint.id}`,
      ]);
    };
    await check();
    // Every loser's attachment went with its failed connect or ADD: the winner alone is on the network.
    expect((await raceEndpoints(s)).map((e) => e.name)).toEqual([winner.caller.sandbox]);
    expect(await gcCli(s.host.dir, true)).toEqual([]);
    await teardown(s, outcomes, wish, check, () => removeAll(s, callers, [NETWORK]));
  }, 180_000);

  it('(a) static address 10.80.0.50 asked by 20 callers, each for its own sandbox or container: one gets it', async () => {
    const started = performance.now();
    const s = await stand();
    const callers = await ownCallers(s, 'a');
    const wish: Wish = { ip: true };
    const raced = await race(s.host, callers, wish, 'NETCTL_ADDRESS_IN_USE');
    const { outcomes } = raced;
    console.log(summary('static address', raced, started));

    const cidr = `${STATIC_IP}/24`;
    const holding = async () => (await raceEndpoints(s)).filter((e) => e.ipv4 === cidr);
    const reserved = async () =>
      (await daemonInventory(s.host.dir)).addresses.filter((a) => a.startsWith(`${cidr} `));
    countGrants(
      outcomes.filter((o) => o.verdict === 'granted').length,
      (await holding()).length,
      (await onRaceSubnet(s.host.dir, STATIC_IP)).length,
      (await reserved()).length,
    );

    const winner = expectOneWinner(outcomes);
    const check = async () => {
      const holders = await holding();
      expect(holders.map((e) => e.name)).toEqual([winner.caller.sandbox]);
      const endpoint = holders[0] as Endpoint;
      expect(await reserved()).toEqual([`${cidr} owner=ep:${endpoint.id}`]);
      // In the kernel: on one interface, the winner's, in the winner's netns.
      expect(await onRaceSubnet(s.host.dir, STATIC_IP)).toEqual([
        `${await netnsOf(s, winner.caller.sandbox)} ${endpoint.ifname}`,
      ]);
    };
    await check();
    expect((await raceEndpoints(s)).map((e) => e.name)).toEqual([winner.caller.sandbox]);
    expect(await gcCli(s.host.dir, true)).toEqual([]);
    await teardown(s, outcomes, wish, check, () => removeAll(s, callers, [NETWORK]));
  }, 180_000);

  /**
   * One sandbox, one network, 20 connects. Which sandbox all four ways can
   * name: a CNI container's. Its first ADD (to network `home`) made it, as a
   * runtime's would, so a container on a second network is the resource:
   * rest and cli callers connect that sandbox (`cni-<containerID>`) by name;
   * shim and cni callers ADD the same container id on the same netns with a
   * CNI_IFNAME each (net0 ... net9) — an attachment is (container, ifname)
   * to CNI, so two ADDs of one ifname would be refused for the interface
   * name alone (error 100 before connect is even asked), and what is raced
   * here is the container's attachment to the network: a container is one
   * netctl sandbox, attached once to a network, whatever the ifname.
   */
  it('(a) one sandbox to one network: 20 connects (rest and cli by name, CNI ADDs of its container, an ifname each) make one attachment', async () => {
    const started = performance.now();
    const s = await stand();
    await s.daemon.api.createNetwork({ name: 'home', ipam: { config: [{ subnet: HOME_SUBNET }] } });
    const containerId = 'pair';
    const netns = createNetns('pair');
    const sandbox = sandboxNameOf(containerId);
    const first = await execPlugin(
      s.host,
      ours(s.host),
      { command: 'ADD', containerId, netns, ifname: 'eth0' },
      { ...cniConfig({}), name: 'home' },
    );
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);

    let ifIndex = 0;
    const callers: Caller[] = WAYS.flatMap((way) =>
      Array.from({ length: PER_WAY }, (_, i): Caller => {
        const name = `${way}-${i}`;
        return isCniWay(way)
          ? { way, name, sandbox, containerId, netns, ifname: `net${ifIndex++}` }
          : { way, name, sandbox };
      }),
    );
    const raced = await race(s.host, callers, {}, 'NETCTL_ENDPOINT_EXISTS');
    const { outcomes } = raced;
    console.log(summary('sandbox/network pair', raced, started));
    await expectOneAttachment(s, outcomes, sandbox, netns, 'eth1');

    await teardown(
      s,
      outcomes,
      {},
      () => expectOneAttachment(s, outcomes, sandbox, netns, 'eth1', false),
      async () => {
        // The container's first attachment, and with it its sandbox.
        const del = await execPlugin(
          s.host,
          ours(s.host),
          { command: 'DEL', containerId, netns, ifname: 'eth0' },
          { ...cniConfig({}), name: 'home' },
        );
        expect(del).toMatchObject({ code: 0, stdout: '' });
        deleteNetns(netns);
        for (const name of [NETWORK, 'home']) await s.daemon.api.deleteNetwork(name);
      },
    );
  }, 180_000);

  /**
   * The same, for a container no ADD has made a sandbox for yet: the first
   * ADDs of a container started with two networks' interfaces at once (or
   * a runtime retrying), all through CNI, half through the daemon and half
   * standalone. Only CNI can name a sandbox that does not exist yet: a rest
   * or cli connect of it would be refused as not found, not race. Every
   * ADD makes or finds the container's one sandbox, one attaches it, and
   * no loser's undo (a failed ADD removes the sandbox it made) may take the
   * winner's attachment with it.
   */
  it('(a) one new container to one network: 20 CNI ADDs (10 through the daemon, 10 standalone, an ifname each) make one sandbox and one attachment', async () => {
    const started = performance.now();
    const s = await stand();
    const containerId = 'fresh';
    const netns = createNetns('fresh');
    const sandbox = sandboxNameOf(containerId);
    const callers: Caller[] = Array.from({ length: 4 * PER_WAY }, (_, i): Caller => {
      const way = i % 2 ? 'cni' : 'shim';
      return { way, name: `${way}-${i}`, sandbox, containerId, netns, ifname: `net${i}` };
    });
    const raced = await race(s.host, callers, {}, 'NETCTL_ENDPOINT_EXISTS');
    const { outcomes } = raced;
    console.log(summary('new container/network pair', raced, started));
    await expectOneAttachment(s, outcomes, sandbox, netns, undefined);
    await teardown(
      s,
      outcomes,
      {},
      () => expectOneAttachment(s, outcomes, sandbox, netns, undefined, false),
      async () => {
        deleteNetns(netns);
        await s.daemon.api.deleteNetwork(NETWORK);
      },
    );
  }, 180_000);

  /**
   * The interleaving behind the race above, forced, so it is tried every
   * run rather than in the few where the scheduler picks it: the ADD that
   * made the container's sandbox is overtaken between its sandbox and its
   * connect by a second ADD of the same container, which attaches it. The
   * first then loses the attachment (error 100), and what it undoes must be
   * its own doing only: the sandbox it made now holds the winner's
   * attachment. Both ADDs run netctl-cni's handlers in this process on the
   * real controller (as the daemon runs them); the only thing changed is
   * when the first one's connect is let through.
   */
  it("(a) one new container, two ADDs interleaved: the ADD that made the sandbox loses the attachment, and its undo leaves the winner's", async () => {
    const dir = testDir();
    const netns = createNetns('interleaved');
    const containerId = 'interleaved';
    const sandbox = sandboxNameOf(containerId);
    const answers = await withLocal(dir, async (api) => {
      await api.createNetwork({ name: NETWORK, ipam: { config: [{ subnet: SUBNET }] } });
      let letThrough = () => {};
      const held = new Promise<void>((resolve) => {
        letThrough = resolve;
      });
      let arrived = () => {};
      const atConnect = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      const holdFirst = new Proxy(api, {
        get(target, prop, receiver) {
          if (prop === 'connect') {
            return async (req: ConnectRequest) => {
              if (req.ifname === 'net0') {
                arrived();
                await held;
              }
              return target.connect(req);
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const add = (ifname: string) => cniInProcess(holdFirst, 'ADD', containerId, netns, ifname);
      const first = add('net0');
      await atConnect; // it made the sandbox, and is about to connect it
      expect((await api.inspectSandbox(sandbox)).endpoints).toEqual([]);
      const second = await add('net1');
      letThrough();
      const firstAnswer = await first;
      const endpoints = (await api.inspectNetwork(NETWORK)).endpoints;
      return { first: firstAnswer, second, endpoints };
    });
    inputs += 2;
    const interfaces = (await onRaceSubnet(dir)).filter((l) => l.startsWith('interleaved '));
    const granted = [answers.first, answers.second].filter((a) => a.code === 0).length;
    countGrants(granted, answers.endpoints.length, interfaces.length);

    expect(answers.second.code, answers.second.out).toBe(0);
    expect(JSON.parse(answers.first.out)).toMatchObject({ code: 100, details: 'NETCTL_ENDPOINT_EXISTS' });
    // The winner's attachment is still there: its record, and its interface in the container.
    expect(answers.endpoints.map((e) => `${e.name} ${e.ifname}`)).toEqual([`${sandbox} net1`]);
    expect(interfaces).toEqual(['interleaved net1']);

    await withLocal(dir, async (api) => {
      expect(await cniInProcess(api, 'DEL', containerId, netns, 'net0')).toEqual({ code: 0, out: '' });
      expect((await api.inspectNetwork(NETWORK)).endpoints).toHaveLength(1);
      expect(await cniInProcess(api, 'DEL', containerId, netns, 'net1')).toEqual({ code: 0, out: '' });
      await api.deleteNetwork(NETWORK);
    });
    deleteNetns(netns);
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  }, 60_000);
});

/** A CNI call of netctl-cni's handlers on api, in this process: the exit code and stdout. */
async function cniInProcess(
  api: NetctlApi,
  command: 'ADD' | 'DEL',
  containerId: string,
  netns: string,
  ifname: string,
): Promise<{ code: number; out: string }> {
  let out = '';
  const env: Record<string, string> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: ifname,
    CNI_PATH: '/nonexistent',
  };
  const code = await dispatch(
    {
      getenv: (name) => env[name],
      readStdin: async () => JSON.stringify(cniConfig({})),
      stdout: (text) => {
        out += text;
      },
    },
    netctlCniHandlers({ api: async () => api }),
  );
  return { code, out: out.trim() };
}

/**
 * The container's sandbox is attached to the race's network once, by the
 * winner: one endpoint record, one attach claim, one interface in its netns
 * on the race's subnet (named as the winner asked: its CNI_IFNAME, or
 * `restIfname`, the next ethN, for a rest or cli winner). `count` the first
 * time, to feed the figures before anything is asserted.
 */
async function expectOneAttachment(
  s: Stand,
  outcomes: Outcome[],
  sandbox: string,
  netns: string,
  restIfname: string | undefined,
  count = true,
): Promise<void> {
  const record = (await records(s.host.dir)).sandboxes.find((sb) => sb.name === sandbox);
  const holders = (await raceEndpoints(s)).filter((e) => record && e.sandboxId === record.id);
  const claims = (await daemonInventory(s.host.dir)).claims.filter(
    (c) => record && c.startsWith(`claims/attach/${record.id}/${s.networkId} `),
  );
  const netnsName = netns.replace('/run/netns/', '');
  const interfaces = (await onRaceSubnet(s.host.dir)).filter((l) => l.startsWith(`${netnsName} `));
  if (count) {
    countGrants(
      outcomes.filter((o) => o.verdict === 'granted').length,
      holders.length,
      claims.length,
      interfaces.length,
    );
  }
  const winner = expectOneWinner(outcomes).caller;
  expect(record, `the container's sandbox ${sandbox}`).toBeDefined();
  const ifname = isCni(winner) ? winner.ifname : restIfname;
  expect(holders.map((e) => e.ifname)).toEqual([ifname]);
  const endpoint = holders[0] as Endpoint;
  expect(claims).toEqual([`claims/attach/${record?.id}/${s.networkId} ep:${endpoint.id}`]);
  expect(interfaces).toEqual([`${netnsName} ${ifname}`]);
  // No one else's attachment was left or half made anywhere on the network.
  expect((await raceEndpoints(s)).map((e) => e.id)).toEqual([endpoint.id]);
  expect(await gcCli(s.host.dir, true)).toEqual([]);
}
