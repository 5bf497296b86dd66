/**
 * Running fuzzed calls against a real `netctl daemon` and checking what
 * every call must do whatever its input: answer within a deadline, keep
 * GET /v1/health answering meanwhile, log no internal error, and — when
 * it refuses — change nothing, in the store or in the kernel.
 *
 * "Changes nothing" is checked by snapshots: the store (every key and value
 * under netctl/v1/, read from the daemon's LMDB) and the kernel (the test
 * namespace as host-snapshot.ts sees it, and the links, addresses and
 * routes of every named netns). Snapshots cost 50-300 ms on a shared
 * machine, so they are taken only where they decide something
 * (`runGuarded`): calls that must change nothing (the schemas refuse them,
 * or they only read) are checked together by the next snapshot; a call
 * that may change things gets one before it (if such calls are pending)
 * and one after. An accepted call may change things: the surface puts its
 * world back (`restore`), the kernel is let settle, and the next
 * comparison starts from a fresh snapshot.
 *
 * Seeds: FUZZ_SEED replays a run (each fuzz file prints the seed it used),
 * FUZZ_SEED with FUZZ_PATH one counterexample as a failure printed it;
 * FUZZ_SCALE multiplies the number of runs (0.2 for a quick look, 5 for a
 * long night); FUZZ_SHRINK_MS bounds the shrinking of a failure (60 s);
 * FUZZ_DETAIL adds each refusal's message to the outcome counts printed
 * at the end.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { onTestFinished } from 'vitest';
import { type AllocationRecord, Ipam, type PoolInfo } from '../../src/ipam/ipam.js';
import { isolationProblem } from '../../src/isolation.js';
import { openStore } from '../../src/kv/index.js';
import { SANDBOX_RUN_DIR } from '../../src/paths.js';
import { DEFAULT_BODY_LIMIT } from '../../src/server/errors.js';
import { Daemon, testDir } from '../privileged/controller/daemon-fixture.js';
import { type HostSnapshot, hostSnapshot, stable } from './host-snapshot.js';
import { isSafeToSend, type Payload } from './hostile-input.js';

// ------------------------------------------------------------ seeds and runs

export interface FuzzParameters {
  seed: number;
  numRuns: number;
}

/** The seed (FUZZ_SEED, else a fresh one) and the number of runs, printed so a failure can be replayed. */
export function fuzzParameters(label: string, numRuns: number): FuzzParameters {
  const seed = process.env.FUZZ_SEED
    ? Number(process.env.FUZZ_SEED)
    : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
  const scale = process.env.FUZZ_SCALE ? Number(process.env.FUZZ_SCALE) : 1;
  const runs = Math.max(1, Math.round(numRuns * scale));
  process.stdout.write(`fuzz ${label}: FUZZ_SEED=${seed} runs=${runs}\n`);
  return { seed, numRuns: runs };
}

/** Long strings cut in the middle, so a counterexample with a 1 MiB field still prints. */
export function brief(value: unknown, max = 240): string {
  const text =
    typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value, shorten) ?? String(value));
  return text.length > max
    ? `${text.slice(0, max / 2)}…(${text.length} chars)…${text.slice(-max / 2)}`
    : text;
}

function shorten(_key: string, v: unknown): unknown {
  return typeof v === 'string' && v.length > 120
    ? `${v.slice(0, 60)}…(${v.length} chars)…${v.slice(-40)}`
    : v;
}

/** How long a failure may be shrunk (FUZZ_SHRINK_MS): every shrink step replays calls against the daemon. */
const SHRINK_MS = Number(process.env.FUZZ_SHRINK_MS ?? 60_000);

/**
 * fc.asyncProperty, except that once a run has failed, shrinking stops
 * after SHRINK_MS (the rest of the candidates are skipped, and the smallest
 * failure found so far is reported).
 */
export function fuzzProperty<T>(
  arb: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
): fc.IAsyncProperty<[T]> {
  let firstFailure: number | undefined;
  return fc.asyncProperty(arb, async (value) => {
    if (firstFailure !== undefined && performance.now() - firstFailure > SHRINK_MS) fc.pre(false);
    try {
      await predicate(value);
    } catch (err) {
      if (!fc.PreconditionFailure.isFailure(err)) firstFailure ??= performance.now();
      throw err;
    }
  });
}

/** fc.assert for a fuzz property: its seed, and a report that stays readable with huge inputs. */
export async function assertFuzz<T>(property: fc.IAsyncProperty<T>, params: FuzzParameters): Promise<void> {
  // FUZZ_PATH (with FUZZ_SEED) replays one counterexample, as a failure printed it, without the search.
  const path = process.env.FUZZ_PATH;
  const details = await fc.check(property, {
    seed: params.seed,
    numRuns: params.numRuns,
    ...(path ? { path, endOnFailure: true } : { endOnFailure: false }),
  });
  if (!details.failed) return;
  const error =
    details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new Error(
    [
      `fuzz property failed after ${details.numRuns} run(s), ${details.numShrinks} shrink(s)`,
      `replay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath}`,
      `minimal counterexample: ${brief(details.counterexample, 4000)}`,
      error,
    ].join('\n'),
  );
}

// ------------------------------------------------------------ what a fuzz file prints at its end

/** Where a fuzz file's time went (printed at its end): snapshots and restores cost more than calls. */
export const timeSpent = {
  calls: 0,
  callMs: 0,
  snapshots: 0,
  snapshotMs: 0,
  restores: 0,
  restoreMs: 0,
  storeMs: 0,
  hostMs: 0,
  netnsMs: 0,
};

async function timed<T>(kind: 'call' | 'snapshot' | 'restore', fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await fn();
  } finally {
    timeSpent[`${kind}s`]++;
    timeSpent[`${kind}Ms`] += performance.now() - started;
  }
}

/** How the calls of a fuzz file came out (`<what> <answer>` -> count): what the fuzz reached. */
export const outcomes = new Map<string, number>();

/** Count one call's outcome; with FUZZ_DETAIL set, the start of its error message (`detail`) too. */
export function countOutcome(key: string, detail?: unknown): void {
  const full = process.env.FUZZ_DETAIL && typeof detail === 'string' ? `${key} ${detail.slice(0, 70)}` : key;
  outcomes.set(full, (outcomes.get(full) ?? 0) + 1);
}

export function outcomeReport(label: string): string {
  const lines = [...outcomes].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `  ${k}: ${n}`);
  return `fuzz ${label} outcomes:\n${lines.join('\n')}`;
}

export function timeReport(label: string): string {
  const t = timeSpent;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return `fuzz ${label}: ${t.calls} calls ${s(t.callMs)}, ${t.snapshots} snapshots ${s(t.snapshotMs)} (store ${s(t.storeMs)}, host ${s(t.hostMs)}, until netns ${s(t.netnsMs)}), ${t.restores} restores ${s(t.restoreMs)}`;
}

// ------------------------------------------------------------ references that outlive a rebuilt world

/**
 * A world object's id as a placeholder, `~id~NAME~LENGTH~` (its first
 * LENGTH characters; URL-safe, so it survives percent-encoding), resolved
 * when the call is sent: a world made again after an accepted call has new
 * ids, and a counterexample must still name the same objects when replayed.
 */
export const idRef = (name: string, length: number) => `~id~${name}~${length}~`;

export function resolveIds(text: string, ids: ReadonlyMap<string, string>): string {
  return text.replace(/~id~([^~]+)~(\d+)~/g, (whole, name: string, length: string) =>
    (ids.get(name) ?? whole).slice(0, Number(length)),
  );
}

// ------------------------------------------------------------ HTTP on a unix socket

export interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
  /** The body as JSON, when it is JSON. */
  json: unknown;
  ms: number;
}

export interface RawRequest {
  method: string;
  /** The request target, already percent-encoded. */
  path: string;
  payload?: Payload;
  /** Content-Type; undefined sends none, as dockerd's plugin client does. */
  contentType?: string;
  timeoutMs?: number;
}

/** One HTTP/1.1 request written by hand (any method, any bytes, no Content-Type if asked), its whole answer. */
export function rawHttp(socket: string, req: RawRequest): Promise<Answer> {
  const started = performance.now();
  const body = req.payload === undefined ? Buffer.alloc(0) : Buffer.from(req.payload, 'utf8');
  const timeoutMs = req.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`${req.method} ${brief(req.path, 120)}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.on('data', (c: Buffer) => chunks.push(c));
    let failed: NodeJS.ErrnoException | undefined;
    conn.on('error', (err: NodeJS.ErrnoException) => {
      // A server that answers (a 413) and closes before reading all of a huge body: its answer may
      // still be in flight, or in already. What arrived is read on close.
      failed = err;
    });
    conn.on('close', () => {
      clearTimeout(timer);
      if (failed && !chunks.length) return reject(failed);
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf('\r\n\r\n');
      const head = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (!status || end < 0)
        return reject(new Error(`${req.method} ${brief(req.path, 120)}: not an HTTP answer: ${brief(head)}`));
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      let text = raw.subarray(end + 4).toString('utf8');
      if (/chunked/i.test(headers['transfer-encoding'] ?? '')) text = unchunk(text);
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ status: Number(status[1]), headers, text, json, ms: performance.now() - started });
    });
    const head = [
      `${req.method} ${req.path} HTTP/1.1`,
      'Host: localhost',
      ...(req.contentType !== undefined ? [`Content-Type: ${req.contentType}`] : []),
      ...(req.payload !== undefined || req.method !== 'GET' ? [`Content-Length: ${body.length}`] : []),
      'Connection: close',
    ];
    // The body goes in pieces, and stops once an answer arrives: a server that refuses a body over
    // its limit answers at once and closes, and a write after that close (EPIPE) would make node
    // drop the answer it has not read yet (dockerd, like curl, reads it). A body over the
    // daemons' limit waits for that answer first, as curl's Expect: 100-continue does (up to 2 s).
    const headBytes = Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
    const bytes = Buffer.concat([headBytes, body]);
    const send = async () => {
      let at = 0;
      if (body.length > DEFAULT_BODY_LIMIT) {
        await new Promise<void>((done) => conn.write(headBytes, () => done()));
        for (const until = Date.now() + 2000; !chunks.length && !failed && Date.now() < until; )
          await new Promise((r) => setTimeout(r, 10));
        at = headBytes.length;
      }
      for (; at < bytes.length && !chunks.length && !failed; at += 64 * 1024) {
        await new Promise<void>((done) => conn.write(bytes.subarray(at, at + 64 * 1024), () => done()));
        // Time for an early answer to be read before the next piece.
        if (bytes.length > 64 * 1024) await new Promise((r) => setTimeout(r, 10));
      }
    };
    void send();
  });
}

function unchunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

// ------------------------------------------------------------ the daemon under fuzz

/** What the fuzz files need of a running daemon (daemon-fixture's Daemon has it). */
export interface FuzzedDaemon {
  readonly pid: number;
  readonly proc: { exitCode: number | null; signalCode: NodeJS.Signals | null };
  /** Everything it logged so far (pino JSON lines). */
  readonly stderr: string;
}

export const CALL_DEADLINE_MS = Number(process.env.FUZZ_DEADLINE_MS ?? 5000);
/** GET /v1/health while a fuzzed call is in flight: generous, the machine is shared. */
export const HEALTH_DEADLINE_MS = 1500;

export class DaemonWatch {
  private logOffset: number;
  readonly pid: number;

  constructor(
    readonly daemon: FuzzedDaemon,
    readonly socket: string,
  ) {
    this.pid = daemon.pid;
    this.logOffset = daemon.stderr.length;
  }

  /** GET /v1/health's time, or Infinity when it fails or takes too long. */
  async healthMs(): Promise<number> {
    try {
      const a = await rawHttp(this.socket, {
        method: 'GET',
        path: '/v1/health',
        timeoutMs: HEALTH_DEADLINE_MS * 2,
      });
      return a.status === 200 ? a.ms : Number.POSITIVE_INFINITY;
    } catch {
      return Number.POSITIVE_INFINITY;
    }
  }

  /**
   * Run one fuzzed call: it must settle within CALL_DEADLINE_MS, GET
   * /v1/health must answer within HEALTH_DEADLINE_MS throughout, and the
   * daemon must log nothing at error level (an internal error) meanwhile.
   */
  async promptly<T>(label: string, send: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const work = send().finally(() => {
      done = true;
    });
    const probes: number[] = [];
    const probing = (async () => {
      while (!done) {
        probes.push(await this.healthMs());
        if (!done) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${label}: no answer within ${CALL_DEADLINE_MS} ms`)),
        CALL_DEADLINE_MS,
      );
    });
    let answer: { value: T } | { error: unknown };
    try {
      answer = { value: await Promise.race([work, deadline]) };
    } catch (error) {
      answer = { error };
    }
    clearTimeout(timer);
    done = true;
    await probing;
    if ('error' in answer) throw answer.error;
    const slow = probes.filter((ms) => ms > HEALTH_DEADLINE_MS);
    if (slow.length)
      throw new Error(
        `${label}: GET /v1/health took ${slow.map(Math.round).join(', ')} ms while it ran (${Math.round(performance.now() - started)} ms)`,
      );
    this.checkLog(label);
    this.checkAlive(label);
    return answer.value;
  }

  /** Error-level lines the daemon logged since the last check: internal errors. */
  checkLog(label: string): void {
    const text = this.daemon.stderr.slice(this.logOffset);
    this.logOffset = this.daemon.stderr.length;
    const errors = text.split('\n').filter((l) => /"level":(50|60)\b/.test(l));
    if (errors.length)
      throw new Error(
        `${label}: the daemon logged an error:\n${errors.map((l) => brief(l, 1200)).join('\n')}`,
      );
  }

  checkAlive(label: string): void {
    const { exitCode, signalCode } = this.daemon.proc;
    if (exitCode !== null || signalCode !== null)
      throw new Error(`${label}: the daemon (pid ${this.pid}) exited (${signalCode ?? exitCode})`);
  }

  /** The same process, still answering GET /v1/health. */
  async expectAlive(): Promise<void> {
    this.checkAlive('after the run');
    const answer = await rawHttp(this.socket, { method: 'GET', path: '/v1/health', timeoutMs: 5000 });
    if (answer.status !== 200)
      throw new Error(`after the run: GET /v1/health answered ${answer.status} ${answer.text}`);
    this.checkLog('after the run');
  }
}

// ------------------------------------------------------------ snapshots

export interface WorldSnapshot {
  /** `<key> <value>` of every store entry under netctl/v1/. */
  store: string[];
  /** The test namespace, as host-snapshot.ts sees it. */
  host: HostSnapshot;
  /** Per named netns (/run/netns): its links, addresses and routes. */
  netns: Record<string, string[]>;
  /** Sandbox run dirs (/run/netctl/sandboxes). */
  runDirs: string[];
}

/**
 * The IPAM's serial-allocation cursor moves when an address is taken and
 * given back (a refused connect undone): where the next search starts,
 * not an allocation. Left out; `allocated` and every address are kept.
 */
function storeLine(key: string, value: unknown): string {
  if (key.startsWith('netctl/v1/ipam/state/') && value && typeof value === 'object') {
    const { next: _next, ...rest } = value as Record<string, unknown>;
    return `${key} ${JSON.stringify(rest)}`;
  }
  return `${key} ${JSON.stringify(value)}`;
}

/** Every store entry, read afresh from the daemon's LMDB (a store opened once could read a stale snapshot). */
export async function storeSnapshot(stateDir: string): Promise<string[]> {
  const kv = await openStore(undefined, { stateDir });
  try {
    return (await kv.list('netctl/v1/')).map((e) => storeLine(e.key, e.value)).sort();
  } finally {
    await kv.close();
  }
}

/**
 * Wait until the daemon has no operation in flight (no intent record in its
 * store), at most 30 s: a call its client gave up on goes on, and would
 * otherwise change the world under the next snapshot. After 30 s the next
 * snapshot shows whatever was left.
 */
export async function operationsEnded(stateDir: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const kv = await openStore(undefined, { stateDir });
    try {
      if ((await kv.list('netctl/v1/intents/')).length === 0) return;
    } finally {
      await kv.close();
    }
    if (Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The IPAM's pools and reservations, read afresh from the daemon's store. */
export async function ipamSnapshot(
  stateDir: string,
): Promise<{ pools: PoolInfo[]; allocations: AllocationRecord[] }> {
  const kv = await openStore(undefined, { stateDir });
  try {
    const ipam = new Ipam(kv);
    return { pools: await ipam.listPools(), allocations: await ipam.listAllocations() };
  } finally {
    await kv.close();
  }
}

/** What changes by itself, as host-snapshot.ts has it: timers, lifetimes, expiry (DAD is waited for). */
const VOLATILE = /_timer$|^(valid_life_time|preferred_life_time|expires)$/;

const NETNS_QUERIES = ['-d link show', 'addr show', '-4 route show table all', '-6 route show table all'];

/**
 * Links, addresses and routes (both families, every table) of each named
 * netns (/run/netns/NAME): what a join or leave changes there. One shell
 * for all of them, run while host-snapshot.ts reads the test namespace
 * (its spawns block this process, not the shell).
 */
function netnsSnapshots(names: string[]): Promise<Record<string, string[]>> {
  const queries = NETNS_QUERIES.map((q) => `'${q}'`).join(' ');
  const script = `for n in "$@"; do for q in ${queries}; do printf '@@ %s %s\\n' "$n" "$q"; ip -n "$n" -j $q 2>&1 || true; done; done`;
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', script, 'sh', ...names], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(err);
      const out: Record<string, string[]> = Object.fromEntries(names.map((n) => [n, []]));
      for (const block of stdout.split(/^@@ /m).slice(1)) {
        const eol = block.indexOf('\n');
        const [name, ...query] = block.slice(0, eol).split(' ');
        const text = block.slice(eol + 1).trim();
        let items: unknown[];
        try {
          items = JSON.parse(text || '[]') as unknown[];
        } catch {
          items = [`unreadable: ${text.split('\n')[0]}`];
        }
        out[name as string]?.push(
          ...items.map((v) => `${query.join(' ')} ${JSON.stringify(stable(v, VOLATILE))}`),
        );
      }
      for (const lines of Object.values(out)) lines.sort();
      resolve(out);
    });
  });
}

/** An IPv6 address still in duplicate address detection on a link with carrier: its route comes when DAD ends. */
const tentative = (lines: string[]) =>
  lines.some((l) => l.startsWith('addr show ') && l.includes('LOWER_UP') && l.includes('"tentative":true'));

const listDir = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

interface IpLink {
  ifname: string;
  flags?: string[];
  operstate?: string;
  linkinfo?: { info_kind?: string };
  inet6_addr_gen_mode?: string;
  addr_info?: { family?: string; local?: string; tentative?: boolean }[];
}

/** `ip -j addr show` of the test namespace and of every named netns, in one shell. */
function linksEverywhere(): Promise<IpLink[][]> {
  const script =
    'ip -d -j addr show; echo; for n in $(ls /run/netns 2>/dev/null); do ip -n "$n" -d -j addr show 2>/dev/null || echo "[]"; echo; done';
  return new Promise((resolve, reject) =>
    execFile('sh', ['-c', script], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(
        stdout
          .split('\n')
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l) as IpLink[]),
      );
    }),
  );
}

/**
 * Wait until the kernel is done with what the last change started, so the
 * next snapshot does not blame the next call for it: every link's
 * operstate agrees with its carrier (linkwatch updates it up to a second
 * later), every bridge with carrier has its IPv6 link-local address (made
 * on linkwatch's news; netctl turns IPv6 off on its veths, not its
 * bridges), and no address is still in duplicate address detection (its
 * local route comes when DAD ends). At most 4 s.
 */
export async function settleKernel(): Promise<void> {
  const started = Date.now();
  for (;;) {
    const links = (await linksEverywhere()).flat().filter((l) => l.ifname !== 'lo');
    const unsettled = links.some((l) => {
      const carrier = l.flags?.includes('LOWER_UP') ?? false;
      const up = l.flags?.includes('UP') ?? false;
      const addresses = l.addr_info ?? [];
      if (addresses.some((a) => a.tentative)) return true;
      if (up && l.operstate !== 'UNKNOWN' && (l.operstate === 'UP') !== carrier) return true;
      const bridge = l.linkinfo?.info_kind === 'bridge' && l.inet6_addr_gen_mode !== 'none';
      return (
        bridge &&
        up &&
        carrier &&
        !addresses.some((a) => a.family === 'inet6' && a.local?.startsWith('fe80:'))
      );
    });
    if (!unsettled || Date.now() - started > 4000) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Turn off IPv6 duplicate address detection for links made from now on in
 * the test namespace (scripts/isolate.sh's, never the host's): a bridge the
 * fuzz's world makes again would otherwise hold a tentative link-local
 * address for a second or two, and every snapshot would wait for it.
 * netctl does nothing with DAD. Returns what puts the old values back.
 */
export function withoutDad(): () => void {
  const problem = isolationProblem();
  if (problem) throw new Error(`not in the test namespace (${problem}): sysctls left alone`);
  const keys = ['/proc/sys/net/ipv6/conf/default/accept_dad', '/proc/sys/net/ipv6/conf/all/accept_dad'];
  const old = keys.map((k) => readFileSync(k, 'utf8'));
  for (const k of keys) writeFileSync(k, '0');
  return () => {
    for (const [i, k] of keys.entries()) writeFileSync(k, old[i] as string);
  };
}

/** The store, the test namespace (host-snapshot.ts) and every named netns. */
export async function worldSnapshot(stateDir: string): Promise<WorldSnapshot> {
  let t = performance.now();
  const store = await storeSnapshot(stateDir);
  timeSpent.storeMs += performance.now() - t;
  const names = listDir('/run/netns');
  const deadline = Date.now() + 5000;
  for (;;) {
    t = performance.now();
    const pending = netnsSnapshots(names);
    const host = await hostSnapshot();
    timeSpent.hostMs += performance.now() - t;
    const netns = await pending;
    timeSpent.netnsMs += performance.now() - t;
    if (!Object.values(netns).some(tentative) || Date.now() > deadline)
      return { store, host, netns, runDirs: listDir(SANDBOX_RUN_DIR) };
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What differs, line by line (gone: only before; new: only after), or undefined. */
export function worldDiff(before: WorldSnapshot, after: WorldSnapshot): string | undefined {
  const out: string[] = [];
  const compare = (what: string, a: string[], b: string[]) => {
    const gone = a.filter((l) => !b.includes(l));
    const added = b.filter((l) => !a.includes(l));
    for (const l of gone) out.push(`  ${what} gone: ${brief(l, 600)}`);
    for (const l of added) out.push(`  ${what} new:  ${brief(l, 600)}`);
  };
  compare('store', before.store, after.store);
  for (const k of Object.keys(before.host) as (keyof HostSnapshot)[])
    compare(`host ${k}`, before.host[k], after.host[k]);
  for (const ns of new Set([...Object.keys(before.netns), ...Object.keys(after.netns)]))
    compare(`netns ${ns}`, before.netns[ns] ?? ['(none)'], after.netns[ns] ?? ['(none)']);
  compare('run dir', before.runDirs, after.runDirs);
  return out.length ? out.join('\n') : undefined;
}

// ------------------------------------------------------------ a run of calls, guarded

export interface Outcome {
  /** true: accepted (may have changed things); false: refused; 'unknown': the client gave up (a deadline it was given). */
  accepted: boolean | 'unknown';
}

/**
 * What a call may do to the world: `refusal`, the schemas refuse it (it must
 * be refused, and change nothing); `nothing`, it may be accepted but changes
 * nothing (a read, a dry run); `anything`, it may be accepted and change
 * things, or be refused and change nothing; `lazy`, the surface finds out
 * while it runs (a command line that may or may not ask the daemon for a
 * change): it calls `beforeChange` before its first change-capable request,
 * and is `anything` from there, or `nothing` if it never does.
 */
export type Expectation = 'refusal' | 'nothing' | 'anything' | 'lazy';

export interface GuardedCall<R> {
  request: R;
  expect: Expectation;
}

export interface GuardedRun<R> {
  snapshot(): Promise<WorldSnapshot>;
  /** Send one call and check its answer; says whether it was accepted. */
  send(request: R, beforeChange: () => Promise<void>): Promise<Outcome>;
  /** Put the surface's world back after an accepted call. */
  restore(): Promise<void>;
  describe(request: R): string;
}

/**
 * Send calls in order; every refused call must leave the world as it was.
 * Snapshots are taken before and after each call that may change things,
 * and at the end: calls that must change nothing (refused by the schemas,
 * or reads) are checked together by the next snapshot (a failure names
 * them all, and shrinking finds the one).
 */
export async function runGuarded<R>(calls: GuardedCall<R>[], run: GuardedRun<R>): Promise<void> {
  try {
    await guarded(calls, run);
  } catch (err) {
    // Whatever the failed call left goes, so the runs that shrink it start from the same world.
    lastReference.delete(run.snapshot);
    await run.restore().catch(() => undefined);
    throw err;
  }
}

/**
 * The world as one run left it, checked, by the run's snapshot function
 * (a fuzz file passes the same one to every run): the next run starts from
 * it instead of taking a snapshot of its own, nothing having happened in
 * between. A failed run leaves none.
 */
const lastReference = new WeakMap<object, WorldSnapshot>();

async function guarded<R>(calls: GuardedCall<R>[], guardedRun: GuardedRun<R>): Promise<void> {
  const run: GuardedRun<R> = {
    ...guardedRun,
    snapshot: () => timed('snapshot', guardedRun.snapshot),
    send: (request, beforeChange) => timed('call', () => guardedRun.send(request, beforeChange)),
    restore: () => timed('restore', guardedRun.restore),
  };
  // Calls that may change things first: each then needs one snapshot (after it), not two.
  const rank = { anything: 0, lazy: 1, refusal: 2, nothing: 2 };
  const ordered = [...calls].sort((a, b) => rank[a.expect] - rank[b.expect]);
  const carried = lastReference.get(guardedRun.snapshot);
  lastReference.delete(guardedRun.snapshot);
  // Else the world was just made (or made again after a failure): let the kernel finish first.
  if (!carried) await settleKernel();
  let reference: WorldSnapshot = carried ?? (await run.snapshot());
  let since: string[] = [];
  const check = async (what: string) => {
    const now = await run.snapshot();
    const diff = worldDiff(reference, now);
    if (diff) throw new Error(`${what} changed the world:\n${diff}`);
    reference = now;
    since = [];
  };
  for (const call of ordered) {
    let checked = false;
    const beforeChange = async () => {
      if (since.length) await check(`call(s) that must change nothing: ${since.join('; ')}`);
      checked = true;
    };
    if (call.expect === 'anything') await beforeChange();
    const outcome = await run.send(call.request, beforeChange);
    const label = run.describe(call.request);
    if (outcome.accepted === true && call.expect === 'refusal')
      throw new Error(
        `${label}: accepted, though its schema refuses it${since.length ? ` (after ${since.join('; ')})` : ''}`,
      );
    if (!checked) since.push(label);
    else if (outcome.accepted !== false) {
      await run.restore();
      await settleKernel();
      reference = await run.snapshot();
      since = [];
    } else await check(`refused call ${label}`);
  }
  if (since.length) await check(`call(s) that must change nothing: ${since.join('; ')}`);
  lastReference.set(guardedRun.snapshot, reference);
}

// ------------------------------------------------------------ the property of every fuzz file

/** A fresh `netctl daemon` to fuzz, watched; DAD off in the test namespace until the test ends. */
export async function fuzzedDaemon(dir = testDir()) {
  onTestFinished(withoutDad());
  const daemon = await Daemon.start(dir);
  const socket = join(dir, 'api.sock');
  return { daemon, socket, stateDir: join(dir, 'state'), watch: new DaemonWatch(daemon, socket) };
}

/** A surface's calls: made for its routes (valid, or mutated from valid) and, now and then, odd ones. */
export const callMix = <R>(routeCall: (mutate: boolean) => fc.Arbitrary<R>, odd: fc.Arbitrary<R>) =>
  fc.oneof(
    { weight: 4, arbitrary: routeCall(false) },
    { weight: 5, arbitrary: routeCall(true) },
    { weight: 1, arbitrary: odd },
  );

export interface FuzzRun<R> extends Omit<GuardedRun<R>, 'snapshot'> {
  /** `rest`, `docker`, ...: in the seed line and the reports. */
  label: string;
  /** Runs at FUZZ_SCALE 1. */
  runs: number;
  /** The most calls in one run. */
  maxCalls: number;
  calls: fc.Arbitrary<R>;
  /** The daemon's state dir (its store is snapshotted). */
  stateDir: string;
  /** The daemon's pid: its own /proc/PID/ns/net may be sent (it must refuse it). */
  daemonPid: number;
  /** What a call carries, for isSafeToSend; false when it must not be sent at all. */
  carries(request: R): unknown[] | false;
  expectation(request: R): Expectation;
}

/**
 * Runs of 1 to maxCalls calls, each run guarded (runGuarded), with the
 * seed printed and replayable (FUZZ_SEED, FUZZ_PATH). Calls that could
 * reach another process's namespaces are never sent (isSafeToSend).
 */
export async function fuzzGuarded<R>(f: FuzzRun<R>): Promise<void> {
  // One snapshot function for every run: the next run starts from the snapshot the last one ended with.
  const snapshot = () => worldSnapshot(f.stateDir);
  const allowed = [`/proc/${f.daemonPid}/ns/net`];
  const sendable = (request: R) => {
    const carried = f.carries(request);
    return carried !== false && isSafeToSend(carried, allowed);
  };
  await assertFuzz(
    fuzzProperty(fc.array(f.calls, { minLength: 1, maxLength: f.maxCalls }), async (calls) => {
      fc.pre(calls.every(sendable));
      await runGuarded(
        calls.map((request) => ({ request, expect: f.expectation(request) })),
        {
          snapshot,
          send: f.send,
          // A call whose client gave up (a deadline it was given) may still be running in the daemon.
          restore: async () => {
            await operationsEnded(f.stateDir);
            await f.restore();
          },
          describe: f.describe,
        },
      );
    }),
    fuzzParameters(f.label, f.runs),
  );
}

/** Where a fuzz file's time went and what its calls came to, for its end. */
export const fuzzReport = (label: string) => `${timeReport(label)}\n${outcomeReport(label)}\n`;
