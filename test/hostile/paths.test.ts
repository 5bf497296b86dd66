/**
 * Hostile paths and names at every entry point (issue 11, "Do no harm",
 * tests (b)). netctl runs as root on someone's host: whatever path or
 * name a caller gives, it must refuse what is not its own to use, answer
 * promptly, stay responsive, and leave the host as it found it.
 *
 * Entry points, each against a real `netctl daemon` (started once for the
 * file, with its Docker plugin sockets in a directory of its own) and, where
 * the entry point has that mode, with no daemon at all:
 *   - REST: POST /v1/sandboxes {key}, POST /v1/networks {options, ipam};
 *   - CLI: `netctl sandbox create --netns`, `netctl network create -o
 *     com.docker.network.bridge.name= --subnet`, against the daemon and in-process;
 *   - CNI: the netctl-cni shim's ADD (CNI_NETNS; the configuration's
 *     `bridge` and `subnet`), forwarded to the daemon and standalone;
 *   - Docker: raw POSTs with no Content-Type on the plugin socket, as
 *     dockerd sends them: CreateNetwork (bridge name, IPv4Data/IPv6Data),
 *     and CreateEndpoint + Join (SandboxKey).
 * Each case asserts the protocol's error (docs/errors.md) with a message
 * naming the value, an answer within 2 s, GET /v1/health answering within
 * 200 ms while the request is in flight, and the namespace (links,
 * addresses, routes, rules, iptables) and netctl's state unchanged.
 *
 * Not tried: /proc/1/ns/net itself. Here pid 1 is the real host's init,
 * outside scripts/isolate.sh's namespace: a netctl that wrongly took it
 * would change the machine's own network. /proc/1/../self/ns/net and the
 * daemon's own namespace stand for it (the same inode check refuses both).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from '../../bench/lib/daemon.js';
import { packageRoot } from '../../src/paths.js';
import { type HostSnapshot, hostSnapshot, linkSnapshot, waitForCarrier } from '../helpers/host-snapshot.js';
import type { Inventory } from '../helpers/inventory.js';
import { killSpawned, type Spawned, spawnCollected } from '../helpers/spawned.js';
import { type CniHost, type CniOutcome, cniHost, execPlugin, ours } from '../privileged/cni/fixture.js';
import { daemonInventory } from '../privileged/controller/daemon-fixture.js';
import { testNetns, uniqueName } from '../privileged/harness.js';
import { recordFigures } from './figures.js';

const BIN = join(packageRoot, 'bin', 'netctl.js');
/**
 * The longest any refusal may take. Without a daemon the caller is a Node
 * process that loads the controller itself: its start-up (measured here,
 * nodeStartMs) is the runtime's cost, not netctl's answer, and is added.
 */
const ANSWER_MS = 2000;
let nodeStartMs = 0;
/** The longest GET /v1/health may take while a hostile request is in flight. */
const HEALTH_MS = 200;
/** A CLI or plugin process still running after this is killed (one blocked on a FIFO would never end). */
const WATCHDOG_MS = 10_000;
const BRIDGE_NAME = 'com.docker.network.bridge.name';

let daemon: Daemon;
/** The daemon's dir: its state in state/ (daemonInventory()'s layout), its plugin sockets in plugins/. */
let base: string;
/** Hostile files: a FIFO, a directory, a symlink loop, plain files. */
let files: string;
let inputs = 0;
let serial = 0;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netctl-hostile-paths-'));
  mkdirSync(join(base, 'state'));
  mkdirSync(join(base, 'plugins'));
  daemon = await startDaemon(join(base, 'state'), { args: ['--docker-plugins', join(base, 'plugins')] });
  files = mkdtempSync(join(tmpdir(), 'netctl-hostile-files-'));
  execFileSync('mkfifo', [join(files, 'fifo')]);
  mkdirSync(join(files, 'dir'));
  symlinkSync(join(files, 'loop-b'), join(files, 'loop-a'));
  symlinkSync(join(files, 'loop-a'), join(files, 'loop-b'));
  writeFileSync(join(files, 'empty'), '');
  writeFileSync(join(files, 'text'), 'not a namespace\n');
  symlinkSync('/proc/self/ns/net', join(files, 'to-self'));
  // The slowest of three starts of the CLI that stops at once: what a fallback pays before it answers.
  const starts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    execFileSync(process.execPath, [BIN, '--version']);
    starts.push(performance.now() - t0);
  }
  nodeStartMs = Math.max(...starts);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  // Either may be unset when the set-up failed part-way.
  for (const dir of [base, files]) if (dir) rmSync(dir, { recursive: true, force: true });
  recordFigures({ inputs });
});

/**
 * After a failed case, what it left in the daemon's state goes (sandboxes,
 * then networks: Docker's through the plugin, then a gc for the rest),
 * while its links are still there; daemon-fixture's afterEach then empties
 * the namespace. Else one failure would show again in later cases
 * (`netctl repair` puts a leftover network's bridge back).
 */
afterEach(async () => {
  if (!daemon) return;
  for (const s of (await rest('GET', '/v1/sandboxes')).body as { id: string }[])
    await rest('DELETE', `/v1/sandboxes/${s.id}`);
  for (const n of (await rest('GET', '/v1/networks')).body as { id: string; dockerId?: string }[]) {
    if (n.dockerId) await docker('/NetworkDriver.DeleteNetwork', { NetworkID: n.dockerId });
    else await rest('DELETE', `/v1/networks/${n.id}`);
  }
  await rest('POST', '/v1/gc', { dryRun: false });
});

// ------------------------------------------------------------ transports

interface Answer {
  status: number;
  body: unknown;
  ms: number;
}

/** One HTTP/1.1 request on a unix socket; `contentType` undefined sends none (as dockerd does). */
function http(
  socket: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  options: { body?: unknown; contentType?: string; timeoutMs?: number } = {},
): Promise<Answer> {
  const started = performance.now();
  const payload = options.body === undefined ? '' : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    conn.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!status) return reject(new Error(`${method} ${path}: not an HTTP answer: ${JSON.stringify(text)}`));
      const rest = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({
        status: Number(status[1]),
        body: rest ? JSON.parse(rest) : undefined,
        ms: performance.now() - started,
      });
    });
    const head = [
      `${method} ${path} HTTP/1.1`,
      'Host: localhost',
      ...(options.contentType ? [`Content-Type: ${options.contentType}`] : []),
      ...(method === 'GET' ? [] : [`Content-Length: ${Buffer.byteLength(payload)}`]),
      'Connection: close',
    ];
    // No half-close: node's HTTP server drops the answer to a request whose client has ended (as
    // dockerd never does); `Connection: close` has the server close once it answered.
    conn.write(`${head.join('\r\n')}\r\n\r\n${payload}`);
  });
}

const rest = (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) =>
  http(daemon.socket, method, path, { body, contentType: 'application/json' });

/** POST to netctl-bridge's plugin socket as dockerd does: no Content-Type. */
const docker = (path: string, body: unknown) =>
  http(join(base, 'plugins', 'netctl-bridge.sock'), 'POST', path, { body });

/** GET /v1/health; its time, or Infinity when it fails or takes a second. */
async function healthMs(): Promise<number> {
  try {
    const answer = await http(daemon.socket, 'GET', '/v1/health', { timeoutMs: 1000 });
    return answer.status === 200 ? answer.ms : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * Where a case runs: the daemon (its socket, its state), or no daemon (a
 * socket path nobody listens on, and a state dir of the test's own, which
 * the CLI and the CNI plugin then open in-process).
 */
interface Target {
  mode: 'daemon' | 'standalone';
  /** daemonInventory()'s dir: the store is in `<dir>/state`. */
  dir: string;
  socket: string;
  cni: CniHost;
}

function target(mode: Target['mode']): Target {
  const cni = cniHost();
  return mode === 'daemon'
    ? { mode, dir: base, socket: daemon.socket, cni }
    : { mode, dir: cni.dir, socket: cni.socket, cni };
}

/** The real `netctl` CLI, as a script runs it, on the target's socket and store. */
function cli(t: Target, args: string[]): Promise<Spawned> {
  return spawnCollected(process.execPath, [BIN, '--socket', t.socket, ...args], {
    env: { PATH: process.env.PATH, NETCTL_STATE_DIR: join(t.dir, 'state'), NETCTL_LOG_LEVEL: 'warn' },
  });
}

/** netctl-cni ADD through the shim, on the target's socket (or standalone on its store). */
function cniAdd(t: Target, netns: string, config: Record<string, unknown>): Promise<CniOutcome> {
  serial++;
  return execPlugin(
    t.cni,
    ours(t.cni),
    { command: 'ADD', containerId: `hostile${serial}`, netns, ifname: 'eth0' },
    { cniVersion: '1.0.0', name: `hostile-cni-${serial}`, type: 'netctl-cni', ...config },
    { NETCTL_SOCKET: t.socket },
  );
}

// ------------------------------------------------------------ what each case asserts

type ErrorClass = 'badRequest' | 'conflict';
const HTTP_STATUS: Record<ErrorClass, number> = { badRequest: 400, conflict: 409 };
const EXIT_STATUS: Record<ErrorClass, number> = { badRequest: 2, conflict: 4 };
const CNI_CODE: Record<ErrorClass, number> = { badRequest: 7, conflict: 100 };

/**
 * What each code's message says (docs/errors.md), for the protocols that
 * carry only the message: the CLI's stderr, Docker's {"Err"}.
 */
const SAYS: Record<string, RegExp> = {
  NETCTL_INVALID_NETNS: /invalid network namespace/,
  NETCTL_NOT_OWNED: /exists and is not netctl's: nothing was changed/,
  NETCTL_INVALID_OPTION: /invalid option/,
  NETCTL_SUBNET_TOO_BROAD: /subnet \S+ is refused: /,
  NETCTL_SUBNET_OVERLAPS_ROUTE: /subnet \S+ overlaps the host's route /,
};

/** The refusal a case expects: the registry's code and class, and what the message must name. */
interface Refusal {
  code: string;
  class: ErrorClass;
  names: string;
  /** CNI may refuse it as its configuration (error 7 naming the field) rather than by the registry's code. */
  cniField?: string;
}

/**
 * Run a hostile request: it must end within ANSWER_MS, and (with the
 * daemon) GET /v1/health, asked at once and then every 25 ms while the
 * request is in flight, must answer each time within HEALTH_MS.
 *
 * These and the protocol's answer are soft assertions: a slow answer or
 * a wrong code is reported, and the case still goes on to check what the
 * request changed, so one run shows both.
 */
async function promptly<T>(t: Target, send: () => Promise<T>): Promise<T> {
  inputs++;
  const started = performance.now();
  let done = false;
  const watchdog = setTimeout(() => void killSpawned(), WATCHDOG_MS);
  const work = send().finally(() => {
    done = true;
    clearTimeout(watchdog);
  });
  const probes: number[] = [];
  const probing =
    t.mode === 'daemon'
      ? (async () => {
          do {
            probes.push(await healthMs());
            await new Promise((r) => setTimeout(r, 25));
          } while (!done);
        })()
      : Promise.resolve();
  const result = await work;
  const ms = performance.now() - started;
  await probing;
  const limit = t.mode === 'daemon' ? ANSWER_MS : ANSWER_MS + nodeStartMs;
  expect.soft(ms, `answered within ${Math.round(limit)} ms`).toBeLessThan(limit);
  if (t.mode === 'daemon') {
    expect.soft(probes.length).toBeGreaterThan(0);
    expect
      .soft(Math.max(...probes), `GET /v1/health while in flight: ${probes.map(Math.round)}`)
      .toBeLessThan(HEALTH_MS);
  }
  return result;
}

function expectRest(answer: Answer, r: Refusal): void {
  expect.soft(answer).toMatchObject({ status: HTTP_STATUS[r.class], body: { code: r.code, class: r.class } });
  expect.soft((answer.body as { message: string }).message).toContain(r.names);
}

/** The exit status, and the error as the last line on stderr (log lines at the warn level may come first). */
function expectCli(out: Spawned, r: Refusal): void {
  expect.soft({ status: out.status, stdout: out.stdout }, out.stderr).toEqual({
    status: EXIT_STATUS[r.class],
    stdout: '',
  });
  const last = out.stderr.trimEnd().split('\n').at(-1) ?? '';
  expect.soft(last).toMatch(/^netctl: /);
  expect.soft(last).toMatch(SAYS[r.code] as RegExp);
  expect.soft(last).toContain(r.names);
}

function expectCni(out: CniOutcome, r: Refusal): void {
  const json = out.json as { code?: number; msg?: string; details?: string } | undefined;
  if (r.code === 'NETCTL_INVALID_NETNS') {
    expect.soft({ exit: out.code, code: json?.code, msg: json?.msg }, out.stdout + out.stderr).toEqual({
      exit: 4,
      code: 4,
      msg: 'invalid CNI_NETNS',
    });
    expect.soft(json?.details).toContain(r.names);
  } else if (r.cniField && json?.details !== r.code) {
    expect.soft({ exit: out.code, code: json?.code }, out.stdout + out.stderr).toEqual({ exit: 7, code: 7 });
    expect.soft(`${json?.msg} ${json?.details}`).toContain(r.cniField);
  } else {
    expect
      .soft({ exit: out.code, code: json?.code, details: json?.details }, out.stdout + out.stderr)
      .toEqual({
        exit: CNI_CODE[r.class],
        code: CNI_CODE[r.class],
        details: r.code,
      });
    expect.soft(json?.msg).toContain(r.names);
  }
}

function expectDocker(answer: Answer, r: Refusal): void {
  expect.soft(answer.status, JSON.stringify(answer.body)).toBe(500);
  expect.soft(answer.body).toEqual({ Err: expect.stringMatching(SAYS[r.code] as RegExp) });
  expect.soft(answer.body).toEqual({ Err: expect.stringContaining(r.names) });
}

interface Before {
  host: HostSnapshot;
  store: Inventory;
  /** The container's netns a CNI case names (it must stay empty), and what it held. */
  netns?: { path: string; held: HostSnapshot };
}

async function take(t: Target, netns?: string): Promise<Before> {
  return {
    host: await hostSnapshot(),
    store: await daemonInventory(t.dir),
    ...(netns ? { netns: { path: netns, held: await hostSnapshot(netns) } } : {}),
  };
}

/**
 * The namespace (and the container's), and the target's state, are as
 * they were. With ownLinks 'ignored', netctl's own links are left out of
 * the comparison: a bridge's offload limits (tso_max_size) follow the
 * ports it has had, so a join and a leave change netctl's own bridge.
 */
async function expectUnchanged(t: Target, before: Before, ownLinks?: 'ignored'): Promise<void> {
  const host = await hostSnapshot();
  const strip = (h: HostSnapshot) =>
    ownLinks ? { ...h, links: h.links.filter((l) => !l.includes('"ifalias":"netctl:')) } : h;
  expect(strip(host)).toEqual(strip(before.host));
  expect(await daemonInventory(t.dir)).toEqual(before.store);
  if (before.netns) expect(await hostSnapshot(before.netns.path)).toEqual(before.netns.held);
}

const ENTRY_POINTS = [
  ['REST', 'daemon'],
  ['CLI', 'daemon'],
  ['CLI', 'standalone'],
  ['CNI', 'daemon'],
  ['CNI', 'standalone'],
  ['Docker', 'daemon'],
] as const;
/** Docker's IPAM socket (`--ipam-driver netctl`) takes subnets too: RequestPool. */
const SUBNET_ENTRY_POINTS = [...ENTRY_POINTS, ['Docker IPAM', 'daemon']] as const;
type EntryPoint = (typeof SUBNET_ENTRY_POINTS)[number][0];

/** A subnet of 10.100.0.0-10.239.255.0/24 no other case has asked for (none is hostile). */
function freshSubnet(): string {
  serial++;
  return `10.${100 + (serial % 140)}.${Math.floor(serial / 140)}.0/24`;
}

const gatewayOf = (subnet: string) => subnet.replace(/0\/\d+$/, '1');
/** An id as Docker makes its network and endpoint ids. */
const randomId = () => randomBytes(32).toString('hex');
const expect200 = (answer: Answer) =>
  expect(answer, JSON.stringify(answer.body)).toMatchObject({ status: 200 });

/** Run a shell-free command in this (the test's) namespace. */
const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: 'ignore' });

// ------------------------------------------------------------ (1) sandbox keys

interface NetnsCase {
  what: string;
  path: (t: Target) => string;
  /** Docker's Join takes it (a path dockerd mounts the netns on later). */
  dockerJoinTakes?: boolean;
}

const NETNS_CASES: NetnsCase[] = [
  { what: 'a FIFO', path: () => join(files, 'fifo') },
  { what: '/dev/zero', path: () => '/dev/zero' },
  { what: 'a symlink loop', path: () => join(files, 'loop-a') },
  { what: 'a directory', path: () => join(files, 'dir') },
  { what: 'an empty regular file', path: () => join(files, 'empty'), dockerJoinTakes: true },
  { what: 'a regular file with text in it', path: () => join(files, 'text') },
  { what: 'a mount namespace', path: () => '/proc/self/ns/mnt' },
  { what: '/proc/1/../self/ns/net', path: () => '/proc/1/../self/ns/net' },
  { what: '/proc/self/ns/net', path: () => '/proc/self/ns/net' },
  { what: '/proc/thread-self/ns/net', path: () => '/proc/thread-self/ns/net' },
  { what: 'a symlink to /proc/self/ns/net', path: () => join(files, 'to-self') },
  { what: 'a missing path', path: () => join(files, 'missing'), dockerJoinTakes: true },
  {
    // Whoever checks the key: the daemon, or (standalone) a process in this namespace, the plugin's own.
    what: "the checker's own namespace by pid",
    path: (t) => `/proc/${t.mode === 'daemon' ? daemon.pid : process.pid}/ns/net`,
  },
];

async function refuseKey(entry: EntryPoint, t: Target, key: string): Promise<void> {
  const r: Refusal = { code: 'NETCTL_INVALID_NETNS', class: 'badRequest', names: key };
  const before = await take(t);
  const name = `hostile-sb-${++serial}`;
  if (entry === 'REST') {
    expectRest(await promptly(t, () => rest('POST', '/v1/sandboxes', { name, key })), r);
  } else if (entry === 'CLI') {
    expectCli(await promptly(t, () => cli(t, ['sandbox', 'create', '--netns', key, name])), r);
  } else {
    expectCni(await promptly(t, () => cniAdd(t, key, { subnet: freshSubnet() })), r);
  }
  await expectUnchanged(t, before);
}

/** Docker's CreateNetwork + CreateEndpoint, then Join with key: refused, or (takes) joined and left. */
async function dockerJoin(key: string, takes: boolean): Promise<void> {
  const t = target('daemon');
  const before = await take(t);
  const NetworkID = randomId();
  const EndpointID = randomId();
  const subnet = freshSubnet();
  expect200(
    await docker('/NetworkDriver.CreateNetwork', {
      NetworkID,
      Options: { 'com.docker.network.generic': {}, 'com.docker.network.enable_ipv6': false },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: subnet, Gateway: `${gatewayOf(subnet)}/24` }],
      IPv6Data: [],
    }),
  );
  try {
    expect200(
      await docker('/NetworkDriver.CreateEndpoint', {
        NetworkID,
        EndpointID,
        Interface: { Address: subnet.replace(/0\/24$/, '2/24'), AddressIPv6: '', MacAddress: '' },
        Options: {},
      }),
    );
    const joined = await take(t);
    const answer = await promptly(t, () =>
      docker('/NetworkDriver.Join', { NetworkID, EndpointID, SandboxKey: key, Options: {} }),
    );
    if (takes) {
      expect(answer, JSON.stringify(answer.body)).toMatchObject({
        status: 200,
        body: { InterfaceName: { DstPrefix: 'eth' } },
      });
      expect200(await docker('/NetworkDriver.Leave', { NetworkID, EndpointID }));
      await expectUnchanged(t, joined, 'ignored');
    } else {
      expectDocker(answer, { code: 'NETCTL_INVALID_NETNS', class: 'badRequest', names: key });
      await expectUnchanged(t, joined);
    }
  } finally {
    expect200(await docker('/NetworkDriver.DeleteEndpoint', { NetworkID, EndpointID }));
    expect200(await docker('/NetworkDriver.DeleteNetwork', { NetworkID }));
  }
  await expectUnchanged(t, before);
}

describe('hostile sandbox keys (REST key, CLI --netns, CNI_NETNS, Docker SandboxKey)', () => {
  for (const [entry, mode] of ENTRY_POINTS) {
    for (const c of NETNS_CASES) {
      const refused = entry !== 'Docker' || !c.dockerJoinTakes;
      it(`${entry} (${mode}): ${c.what} is ${refused ? 'refused' : 'taken for later'}`, async () => {
        const t = target(mode);
        const key = c.path(t);
        if (entry === 'Docker') await dockerJoin(key, !refused);
        else await refuseKey(entry, t, key);
      });
    }
  }
});

// ------------------------------------------------------------ (2) bridge names

/** Something in the namespace that is not netctl's, by the name a request gives. */
interface ForeignName {
  what: string;
  /** Make it (in the test's namespace); returns the name to ask for. */
  make: () => string;
}

const FOREIGN: ForeignName[] = [
  {
    what: "a foreign bridge's name",
    make: () => {
      const name = uniqueName('br');
      sh('ip', 'link', 'add', name, 'type', 'bridge');
      sh('ip', 'addr', 'add', '198.51.100.1/24', 'dev', name);
      sh('ip', 'link', 'set', name, 'up');
      return name;
    },
  },
  {
    what: "a foreign veth's name",
    make: () => {
      const name = uniqueName('ve');
      sh('ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
      sh('ip', 'link', 'set', name, 'up');
      return name;
    },
  },
  { what: 'lo', make: () => 'lo' },
];

/**
 * Names no link can have (dev_valid_name in the kernel): "." and ".."
 * (which look like link names), 16 characters (IFNAMSIZ is 16 with the
 * NUL), a '/'.
 */
const BAD_NAMES = ['sixteen-chars-xx', 'br/0', '.', '..'];

/** A network create with this bridge name, on one entry point. */
async function createWithBridge(
  entry: EntryPoint,
  t: Target,
  bridge: string,
  netns = '',
): Promise<Answer | Spawned | CniOutcome> {
  const subnet = freshSubnet();
  const name = `hostile-net-${serial}`;
  switch (entry) {
    case 'REST':
      return rest('POST', '/v1/networks', {
        name,
        options: { [BRIDGE_NAME]: bridge },
        ipam: { config: [{ subnet }] },
      });
    case 'CLI':
      return cli(t, ['network', 'create', '-o', `${BRIDGE_NAME}=${bridge}`, '--subnet', subnet, name]);
    case 'CNI':
      return cniAdd(t, netns, { subnet, bridge });
    case 'Docker':
      return docker('/NetworkDriver.CreateNetwork', {
        NetworkID: randomId(),
        Options: { 'com.docker.network.generic': { [BRIDGE_NAME]: bridge } },
        IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: subnet, Gateway: `${gatewayOf(subnet)}/24` }],
        IPv6Data: null,
      });
    case 'Docker IPAM':
      throw new Error('the IPAM socket takes no bridge name');
  }
}

function expectRefused(entry: EntryPoint, out: Answer | Spawned | CniOutcome, r: Refusal): void {
  if (entry === 'REST') expectRest(out as Answer, r);
  else if (entry === 'CLI') expectCli(out as Spawned, r);
  else if (entry === 'CNI') expectCni(out as CniOutcome, r);
  else expectDocker(out as Answer, r); // both Docker sockets
}

const expectOk = (out: Spawned) =>
  expect({ status: out.status, stderr: out.stderr }).toEqual({ status: 0, stderr: '' });

/** netctl's own housekeeping, run after a refusal: none of it may touch the foreign link. */
async function housekeeping(t: Target, foreign: string, seen: string[]): Promise<void> {
  const other = `hostile-other-${++serial}`;
  expectOk(await cli(t, ['network', 'create', '--subnet', freshSubnet(), other]));
  expectOk(await cli(t, ['network', 'rm', other]));
  expect(await linkSnapshot(foreign), 'after netctl network rm').toEqual(seen);
  expectOk(await cli(t, ['repair']));
  expect(await linkSnapshot(foreign), 'after netctl repair').toEqual(seen);
  expectOk(await cli(t, ['gc']));
  expect(await linkSnapshot(foreign), 'after netctl gc').toEqual(seen);
}

describe('hostile bridge names (REST and CLI options, CNI "bridge", Docker generic options)', () => {
  for (const [entry, mode] of ENTRY_POINTS) {
    for (const f of FOREIGN) {
      it(`${entry} (${mode}): ${f.what} is NETCTL_NOT_OWNED, and the link outlives rm, repair and gc`, async () => {
        const t = target(mode);
        const netns = entry === 'CNI' ? testNetns('cni').path : undefined;
        const name = f.make();
        const seen = await linkSnapshot(name);
        expect(seen).not.toEqual([]);
        const before = await take(t, netns);
        const out = await promptly(t, () => createWithBridge(entry, t, name, netns));
        expectRefused(entry, out, { code: 'NETCTL_NOT_OWNED', class: 'conflict', names: name });
        await expectUnchanged(t, before);
        expect(await linkSnapshot(name)).toEqual(seen);
        await housekeeping(t, name, seen);
        await expectUnchanged(t, before);
      });
    }
    for (const bad of BAD_NAMES) {
      it(`${entry} (${mode}): bridge name ${JSON.stringify(bad)} is an invalid option`, async () => {
        const t = target(mode);
        const netns = entry === 'CNI' ? testNetns('cni').path : undefined;
        const before = await take(t, netns);
        const out = await promptly(t, () => createWithBridge(entry, t, bad, netns));
        expectRefused(entry, out, {
          code: 'NETCTL_INVALID_OPTION',
          class: 'badRequest',
          names: BRIDGE_NAME,
          cniField: 'bridge',
        });
        await expectUnchanged(t, before);
      });
    }
  }
});

/** Replace netctl's link of this name by a bridge of someone else's, as an admin might. */
function hijack(name: string): void {
  sh('ip', 'link', 'del', name);
  sh('ip', 'link', 'add', name, 'type', 'bridge');
  sh('ip', 'addr', 'add', '198.51.100.1/24', 'dev', name);
  sh('ip', 'link', 'set', name, 'up');
}

/**
 * The name of a netctl network's bridge taken over: its bridge went (an
 * admin's `ip link del`) and a bridge of someone else's now has the name.
 * repair must not put netctl's back over it nor adopt it (and must go on
 * with the other networks), gc must not sweep it, and `network rm`
 * removes the network but not the link.
 */
describe("a foreign bridge that took the name of a netctl network's bridge", () => {
  for (const mode of ['daemon', 'standalone'] as const) {
    it(`CLI (${mode}): repair, gc and network rm leave it as it is`, async () => {
      const t = target(mode);
      const before = await take(t);
      const name = uniqueName('hj');
      const network = `hostile-hijacked-${++serial}`;
      expectOk(
        await cli(t, [
          'network',
          'create',
          '-o',
          `${BRIDGE_NAME}=${name}`,
          '--subnet',
          freshSubnet(),
          network,
        ]),
      );
      hijack(name);
      const seen = await linkSnapshot(name);
      inputs++;
      // Nothing can be put back there: a conflict (exit 4) or a report, either naming the link.
      const repair = await cli(t, ['repair']);
      // 1: repair reports the network it could not put back (NETCTL_NOT_OWNED) and goes on.
      expect([0, 1], repair.stderr).toContain(repair.status);
      expect(repair.stdout + repair.stderr).toContain(name);
      expect(await linkSnapshot(name), 'after netctl repair').toEqual(seen);
      // gc goes on past what it cannot restore, reports it, and says so in its status.
      const gc = await cli(t, ['gc']);
      expect(gc.status, gc.stderr).toBe(1);
      expect(gc.stdout).toContain(`${name} exists and is not netctl's`);
      expect(await linkSnapshot(name), 'after netctl gc').toEqual(seen);
      const rm = await cli(t, ['network', 'rm', network]);
      expect({ status: rm.status, stdout: rm.stdout }, rm.stderr).toEqual({
        status: 0,
        stdout: `${network}\n`,
      });
      expect(await linkSnapshot(name), 'after netctl network rm').toEqual(seen);
      sh('ip', 'link', 'del', name);
      await expectUnchanged(t, before);
    });
  }

  it("CLI (daemon): repair goes on past it, and puts back the next network's missing bridge", async () => {
    const t = target('daemon');
    const before = await take(t);
    const name = uniqueName('hj');
    // Docker chooses network ids, and the store lists networks by id: the hijacked one comes first.
    const [first, last] = ['0'.repeat(64), 'f'.repeat(64)];
    const create = (NetworkID: string, generic: Record<string, string>) => {
      const subnet = freshSubnet();
      return docker('/NetworkDriver.CreateNetwork', {
        NetworkID,
        Options: { 'com.docker.network.generic': generic },
        IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: subnet, Gateway: `${gatewayOf(subnet)}/24` }],
      });
    };
    expect200(await create(first, { [BRIDGE_NAME]: name }));
    expect200(await create(last, {}));
    const damaged = `nc-${last.slice(0, 12)}`;
    try {
      hijack(name);
      sh('ip', 'link', 'del', damaged);
      const seen = await linkSnapshot(name);
      inputs++;
      const repair = await cli(t, ['repair']);
      expect(repair.stdout + repair.stderr).toContain(name);
      expect(await linkSnapshot(name), 'after netctl repair').toEqual(seen);
      expect(await linkSnapshot(damaged), "the other network's bridge, put back").not.toEqual([]);
    } finally {
      expect200(await docker('/NetworkDriver.DeleteNetwork', { NetworkID: first }));
      expect200(await docker('/NetworkDriver.DeleteNetwork', { NetworkID: last }));
      sh('ip', 'link', 'del', name);
    }
    await expectUnchanged(t, before);
  });
});

// ------------------------------------------------------------ (3) subnets

interface SubnetCase {
  subnet: string;
  code: 'NETCTL_SUBNET_TOO_BROAD' | 'NETCTL_SUBNET_OVERLAPS_ROUTE';
}

/** The routes the overlap cases run into: of a link the test makes, with these addresses. */
const ROUTE_V4 = '10.250.0.1/16';
const ROUTE_V6 = 'fd77:77::1/56';

const SUBNET_CASES: SubnetCase[] = [
  { subnet: '0.0.0.0/0', code: 'NETCTL_SUBNET_TOO_BROAD' },
  { subnet: '128.0.0.0/1', code: 'NETCTL_SUBNET_TOO_BROAD' },
  { subnet: '::/0', code: 'NETCTL_SUBNET_TOO_BROAD' },
  { subnet: 'fd00::/47', code: 'NETCTL_SUBNET_TOO_BROAD' },
  { subnet: '127.0.0.0/16', code: 'NETCTL_SUBNET_TOO_BROAD' },
  { subnet: '224.1.0.0/16', code: 'NETCTL_SUBNET_TOO_BROAD' },
  { subnet: '10.250.3.0/24', code: 'NETCTL_SUBNET_OVERLAPS_ROUTE' },
  { subnet: '10.0.0.0/8', code: 'NETCTL_SUBNET_OVERLAPS_ROUTE' },
  { subnet: 'fd77:77:0:1::/64', code: 'NETCTL_SUBNET_OVERLAPS_ROUTE' },
];

const isV6 = (subnet: string) => subnet.includes(':');
/** The first address of the subnet and one: a gateway inside it. */
const firstHost = (subnet: string) =>
  subnet.replace(/\/\d+$/, '').replace(/0$|::$/, (m) => (m === '0' ? '1' : '::1'));

async function createWithSubnet(
  entry: EntryPoint,
  t: Target,
  subnet: string,
  netns = '',
): Promise<Answer | Spawned | CniOutcome> {
  const name = `hostile-net-${++serial}`;
  const v6 = isV6(subnet);
  switch (entry) {
    case 'REST':
      return rest('POST', '/v1/networks', { name, enableIPv6: v6, ipam: { config: [{ subnet }] } });
    case 'CLI':
      return cli(t, ['network', 'create', ...(v6 ? ['--ipv6'] : []), '--subnet', subnet, name]);
    case 'CNI':
      return cniAdd(t, netns, { subnet });
    case 'Docker': {
      const hostile = {
        AddressSpace: 'LocalDefault',
        Pool: subnet,
        Gateway: `${firstHost(subnet)}/${subnet.split('/')[1]}`,
      };
      const v4 = freshSubnet();
      return docker('/NetworkDriver.CreateNetwork', {
        NetworkID: randomId(),
        Options: { 'com.docker.network.generic': {}, 'com.docker.network.enable_ipv6': v6 },
        IPv4Data: v6
          ? [{ AddressSpace: 'LocalDefault', Pool: v4, Gateway: `${gatewayOf(v4)}/24` }]
          : [hostile],
        IPv6Data: v6 ? [hostile] : [],
      });
    }
    case 'Docker IPAM':
      // A pool held here is a subnet for any driver Docker pairs with netctl's IPAM, its own bridge too.
      return http(join(base, 'plugins', 'netctl.sock'), 'POST', '/IpamDriver.RequestPool', {
        body: { AddressSpace: 'local', Pool: subnet, Options: {}, V6: v6 },
      });
  }
}

describe('hostile subnets (REST ipam.config, CLI --subnet, CNI "subnet", Docker IPv4Data/IPv6Data and RequestPool)', () => {
  for (const [entry, mode] of SUBNET_ENTRY_POINTS) {
    for (const c of SUBNET_CASES) {
      const cls: ErrorClass = c.code === 'NETCTL_SUBNET_TOO_BROAD' ? 'badRequest' : 'conflict';
      it(`${entry} (${mode}): ${c.subnet} is ${c.code}`, async () => {
        const t = target(mode);
        const netns = entry === 'CNI' ? testNetns('cni').path : undefined;
        // A veth pair up at both ends (no dummy driver everywhere), its first end holding the routes.
        const routed = uniqueName('rt');
        sh('ip', 'link', 'add', routed, 'type', 'veth', 'peer', 'name', `${routed}p`);
        try {
          sh('ip', 'addr', 'add', ROUTE_V4, 'dev', routed);
          sh('ip', 'addr', 'add', ROUTE_V6, 'dev', routed, 'nodad');
          sh('ip', 'link', 'set', routed, 'up');
          sh('ip', 'link', 'set', `${routed}p`, 'up');
          await waitForCarrier([routed, `${routed}p`]);
          const before = await take(t, netns);
          const out = await promptly(t, () => createWithSubnet(entry, t, c.subnet, netns));
          expectRefused(entry, out, { code: c.code, class: cls, names: c.subnet });
          try {
            await expectUnchanged(t, before);
          } finally {
            // A pool granted all the same would refuse every later case's subnet as an overlap.
            const granted = (out as Answer).body as { PoolID?: string } | undefined;
            if (entry === 'Docker IPAM' && granted?.PoolID)
              await http(join(base, 'plugins', 'netctl.sock'), 'POST', '/IpamDriver.ReleasePool', {
                body: { PoolID: granted.PoolID },
              });
          }
        } finally {
          sh('ip', 'link', 'del', routed);
        }
      });
    }
  }
});
