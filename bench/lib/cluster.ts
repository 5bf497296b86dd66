/**
 * Several simulated hosts on this machine (DESIGN.md, "Multi-host is
 * simulated"), for the overlay benchmark, the privileged overlay tests and
 * the quickstart. Each host is a named netns with one underlay interface
 * and its own `netctl daemon`; the hosts share one real redis-server.
 *
 *     the caller's netns (scripts/isolate.sh's)
 *       bridge <tag>ul  10.99.0.254/24, MTU 1500
 *       redis-server    10.99.0.254:PORT, append-only file in <dir>/redis
 *         │ port <tag>h1                    │ port <tag>h2
 *     netns <tag>-h1                     netns <tag>-h2
 *       eth0 10.99.0.1/24, MTU 1500        eth0 10.99.0.2/24 ...
 *       default via 10.99.0.254
 *       netctl daemon --kv redis://10.99.0.254:PORT/0 --advertise-addr 10.99.0.1
 *         (nsenter --net: the host's netns is the daemon's own; the mount
 *         namespace, so /run/netns, is everyone's)
 *
 * Usage:
 *
 *     const cluster = await startCluster({ hosts: 3 });
 *     try {
 *       const [h1, h2] = cluster.hosts;
 *       await h1.api.createNetwork({ name: 'web', driver: 'overlay', ... });
 *       await h1.api.createSandbox({ name: h1.sandboxName('a') });
 *       await h2.cli(['network', 'ls']);
 *       await cluster.redis.stop(); ...; await cluster.redis.start();
 *     } finally {
 *       await cluster.close();
 *     }
 *
 * Options: `hosts` (1-253), `dir` (the parent of the cluster's temp dir;
 * default os.tmpdir()), `hostTtlMs`/`hostRenewMs` (the daemons'
 * `--host-ttl`/`--host-renew`, passed only when given), `daemonArgs` (more
 * `netctl daemon` arguments), `env` (more daemon environment),
 * `appendfsync` (Redis's; default `everysec`, `always` for tests that
 * kill -9 it and must lose nothing), `dockerPlugins` (each daemon serves
 * Docker's plugin sockets in its host's `pluginDir`, for a dockerd of that
 * host: bench/lib/dockerd.ts `startDockerd(name, {netns, pluginDir})`).
 *
 * A host: `name` ('h1'), `netns` (its path), `address` (underlay IPv4),
 * `dir` (its temp dir: api.sock, state/, run/, under the cluster's),
 * `socket`, `api` (HttpApi on the socket, the same object across
 * restarts), `pid` (the running daemon's), `cli(args)` (the real `netctl`
 * in the host's netns against its daemon: {stdout, stderr, code}),
 * `exec(file, args)` (any command in the host's netns; stdout, rejects with
 * CommandError), `sandboxName(base)` (a sandbox name no other host or
 * cluster uses), `kill(signal)` (signal the daemon now; default SIGKILL),
 * `stop()`, `start()`, `restart()`, `running`, `log()`. Each daemon has
 * NETCTL_SOCKET=<dir>/api.sock, NETCTL_STATE_DIR=<dir>/state and
 * NETCTL_RUN_DIR=<dir>/run, and runs with `--kv <redis url>
 * --no-docker-plugins --advertise-addr <address>` (`--docker-plugins
 * <dir>/plugins` with `dockerPlugins`; then the host's `pluginDir` is that).
 *
 * The cluster: `hosts`, `redis` ({url, port, pid, stop(), kill(), start()}:
 * SIGTERM or SIGKILL by PID, then the same port and data again),
 * `waitForStore()` (every running daemon reads the store again, e.g. after
 * redis.start()), `tag`, `dir`, `underlay` ({bridge, gateway}), `close()`.
 *
 * Sandbox names must differ across hosts: every daemon makes its sandboxes'
 * netns as /run/netns/netctl-<name> in the one mount namespace, hence
 * sandboxName(). Names (links, netns) carry a random tag per cluster, so a
 * test's cluster never meets a leftover.
 *
 * close() (idempotent, also run by a failed startCluster) stops every
 * daemon (SIGTERM, SIGKILL after 10 s) and Redis by PID, deletes the netns
 * of the sandboxes the daemons made (those their records list, and any
 * named with sandboxName()), the hosts' netns, the underlay links and the
 * cluster's dir. Processes a caller started inside a host or sandbox are
 * the caller's to stop, before close().
 *
 * Refuses to run outside scripts/isolate.sh's namespace: the underlay goes
 * into the caller's netns, which must never be the machine's own.
 */

import { type ChildProcess, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpApi } from '../../src/cli/client.js';
import { isolationProblem } from '../../src/isolation.js';
import {
  addrAdd,
  createNetns,
  deleteNetns,
  linkAdd,
  linkDel,
  linkIndex,
  linkSetUp,
  NETNS_RUN_DIR,
  Netlink,
  routeAdd,
} from '../../src/kernel/index.js';
import { freePort, launchRedisServer, signalRedisServer } from '../../src/kv/testing/redis-server.js';
import { packageRoot } from '../../src/paths.js';
import { Cleanup } from './cleanup.js';
import { runCommand } from './command.js';
import { type Daemon, startDaemon } from './daemon.js';

/** The underlay: hosts are .1, .2, ...; the caller's bridge (and Redis) .254. */
const UNDERLAY_PREFIX = '10.99.0';
const UNDERLAY_LENGTH = 24;
const GATEWAY = `${UNDERLAY_PREFIX}.254`;
const MAX_HOSTS = 253;
const UNDERLAY_MTU = 1500;
const BIN = join(packageRoot, 'bin', 'netctl.js');
const CLI_TIMEOUT_MS = 60_000;
const REDIS_START_MS = 20_000;
const REDIS_STOP_MS = 10_000;

export interface ClusterOptions {
  hosts: number;
  /** Parent of the cluster's temp dir (default os.tmpdir()). */
  dir?: string;
  /** The daemons' `--host-ttl MS`. */
  hostTtlMs?: number;
  /** The daemons' `--host-renew MS`. */
  hostRenewMs?: number;
  /** More `netctl daemon` arguments, for every host. */
  daemonArgs?: string[];
  /** More daemon environment, for every host (NETCTL_LOG_LEVEL, ...). */
  env?: Record<string, string>;
  /** Redis's appendfsync: `always` loses nothing to a kill -9 (default `everysec`). */
  appendfsync?: 'always' | 'everysec';
  /** Each daemon serves Docker's plugin sockets in its host's pluginDir (default: none). */
  dockerPlugins?: boolean;
}

export interface CliResult {
  stdout: string;
  stderr: string;
  /** Exit status (null when killed by a signal). */
  code: number | null;
}

export interface ClusterHost {
  /** 'h1', 'h2', ... */
  readonly name: string;
  /** Path of the host's netns (/run/netns/<tag>-h1). */
  readonly netns: string;
  /** Its underlay address (10.99.0.N), on eth0. */
  readonly address: string;
  /** Its dir: api.sock, state/, run/. */
  readonly dir: string;
  readonly socket: string;
  /** Where its daemon serves Docker's plugin sockets (`dockerPlugins`), else undefined. */
  readonly pluginDir: string | undefined;
  readonly api: HttpApi;
  /** The running daemon's pid (the last one's after it stopped). */
  readonly pid: number;
  /** Whether its daemon runs (started and not yet exited). */
  readonly running: boolean;
  /** `netctl ARGS` run in the host's netns against its daemon. */
  cli(args: string[]): Promise<CliResult>;
  /** `FILE ARGS` run in the host's netns; resolves with stdout, rejects with CommandError. */
  exec(file: string, args: string[]): Promise<string>;
  /** A sandbox name of this host's, unique in the machine: `<tag>-h1-<base>`. */
  sandboxName(base: string): string;
  /** Send the daemon signal now (default SIGKILL) without waiting. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM the daemon and wait for its exit (SIGKILL after 10 s); resolves with how it ended. */
  stop(): Promise<string>;
  /** Start the daemon again (same dir, flags and store) unless it runs; resolves once it answers. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** The daemon's last output lines. */
  log(): string;
}

export interface ClusterRedis {
  /** redis://10.99.0.254:PORT/0 */
  readonly url: string;
  readonly port: number;
  /** The running server's pid, undefined while it is down. */
  readonly pid: number | undefined;
  /** SIGTERM (it writes its append-only file) and wait until it is gone. */
  stop(): Promise<void>;
  /** SIGKILL and wait: with appendfsync everysec it may lose the last second. */
  kill(): Promise<void>;
  /** Start it again on the same port and data; resolves once it answers (its data loaded). */
  start(): Promise<void>;
}

export interface Cluster {
  /** The random tag in every name this cluster gives (links, netns, sandboxes). */
  readonly tag: string;
  /** The cluster's temp dir. */
  readonly dir: string;
  readonly hosts: readonly ClusterHost[];
  readonly redis: ClusterRedis;
  /** The underlay bridge in the caller's netns, and its address (Redis's). */
  readonly underlay: { bridge: string; gateway: string };
  /**
   * Resolves once every running daemon reads the store again (its health
   * answers): after redis.start(), their clients reconnect with a backoff
   * of up to 2 s. Rejects after timeoutMs (default 20 s).
   */
  waitForStore(timeoutMs?: number): Promise<void>;
  /** Stop and remove everything the cluster made; idempotent. */
  close(): Promise<void>;
}

function startRedis(dir: string, port: number, appendfsync: string): Promise<ChildProcess> {
  const socket = join(dir, 'redis.sock');
  const args = [
    ['--port', String(port)],
    ['--bind', GATEWAY],
    ['--protected-mode', 'no'],
    // The unix socket only tells launchRedisServer when it answers.
    ['--unixsocket', socket],
    ['--unixsocketperm', '700'],
    ['--dir', dir],
    ['--save', ''],
    ['--appendonly', 'yes'],
    ['--appendfsync', appendfsync],
    ['--loglevel', 'warning'],
  ].flat();
  return launchRedisServer(args, socket, REDIS_START_MS);
}

function clusterRedis(dir: string, port: number, appendfsync: string, first: ChildProcess): ClusterRedis {
  let child: ChildProcess | undefined = first;
  const signal = async (sig: NodeJS.Signals) => {
    if (child) await signalRedisServer(child, sig, REDIS_STOP_MS);
    child = undefined;
  };
  return {
    url: `redis://${GATEWAY}:${port}/0`,
    port,
    get pid() {
      return child?.pid;
    },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    async start() {
      if (child) throw new Error('the cluster redis-server is running already');
      child = await startRedis(dir, port, appendfsync);
    },
  };
}

/** The underlay bridge in the caller's netns, up, with the gateway address. */
async function makeUnderlay(nl: Netlink, bridge: string): Promise<void> {
  await linkAdd(nl, { kind: 'bridge', name: bridge, mtu: UNDERLAY_MTU });
  await addrAdd(nl, bridge, `${GATEWAY}/${UNDERLAY_LENGTH}`);
  await linkSetUp(nl, bridge);
}

/** eth0 in netns (the peer of port, a port of bridge), up, addressed, with the default route. */
async function plugHost(nl: Netlink, bridge: string, port: string, netns: string, address: string) {
  await linkAdd(nl, {
    kind: 'veth',
    name: port,
    mtu: UNDERLAY_MTU,
    master: await linkIndex(nl, bridge),
    peer: { name: 'eth0', mtu: UNDERLAY_MTU, netns },
  });
  await linkSetUp(nl, port);
  const inside = Netlink.open(netns);
  try {
    await linkSetUp(inside, 'lo');
    await addrAdd(inside, 'eth0', `${address}/${UNDERLAY_LENGTH}`);
    await linkSetUp(inside, 'eth0');
    await routeAdd(inside, { dst: 'default', gateway: GATEWAY });
  } finally {
    inside.close();
  }
}

interface HostSpec {
  name: string;
  netns: string;
  address: string;
  dir: string;
  sandboxPrefix: string;
  pluginDir: string | undefined;
  daemonArgs: string[];
  env: Record<string, string>;
}

function clusterHost(spec: HostSpec, first: Daemon): ClusterHost {
  let daemon = first;
  let running = true;
  const track = (d: Daemon) =>
    void d.exited.then(() => {
      if (d === daemon) running = false;
    });
  track(first);
  let starting: Promise<void> | undefined;
  const socket = join(spec.dir, 'api.sock');
  const env = { ...process.env, ...spec.env };
  const nsenter = (file: string, args: string[]) => [`--net=${spec.netns}`, '--', file, ...args];
  const host: ClusterHost = {
    name: spec.name,
    netns: spec.netns,
    address: spec.address,
    dir: spec.dir,
    socket,
    pluginDir: spec.pluginDir,
    api: first.api,
    get pid() {
      return daemon.pid;
    },
    get running() {
      return running;
    },
    cli(args) {
      return new Promise((resolve, reject) => {
        execFile(
          'nsenter',
          nsenter(process.execPath, [BIN, '--socket', socket, ...args]),
          { encoding: 'utf8', env, timeout: CLI_TIMEOUT_MS },
          (error, stdout, stderr) => {
            const code = (error as { code?: unknown } | null)?.code;
            if (error && typeof code !== 'number') reject(error);
            else resolve({ stdout, stderr, code: error ? (code as number) : 0 });
          },
        );
      });
    },
    exec: (file, args) => runCommand('nsenter', nsenter(file, args)),
    sandboxName: (base) => `${spec.sandboxPrefix}${base}`,
    kill(signal = 'SIGKILL') {
      daemon.signal(signal);
    },
    stop: () => daemon.stop(),
    async start() {
      starting ??= (async () => {
        if (running) return;
        daemon = await launchDaemon(spec);
        running = true;
        track(daemon);
      })().finally(() => {
        starting = undefined;
      });
      return starting;
    },
    async restart() {
      await daemon.stop();
      await host.start();
    },
    log: () => daemon.log(),
  };
  return host;
}

function launchDaemon(spec: HostSpec): Promise<Daemon> {
  return startDaemon(join(spec.dir, 'state'), {
    socket: join(spec.dir, 'api.sock'),
    nsenter: [`--net=${spec.netns}`, '--'],
    args: spec.daemonArgs,
    env: spec.env,
  });
}

/**
 * The netns of the sandboxes the daemons made, as their records list them
 * (asked while the daemons still answer).
 */
async function recordedSandboxNetns(hosts: readonly ClusterHost[]): Promise<string[]> {
  const keys = new Set<string>();
  for (const host of hosts) {
    try {
      // A short deadline: a daemon whose store is down may wait for it.
      for (const s of await new HttpApi(host.socket, 5).listSandboxes()) {
        if (s.ownsNetns && s.key.startsWith(`${NETNS_RUN_DIR}/netctl-`)) keys.add(s.key);
      }
    } catch {
      // A daemon (or the store) down: the prefix below still finds its sandboxes' netns.
    }
  }
  return [...keys];
}

async function waitForStore(hosts: readonly ClusterHost[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const host of hosts) {
    for (;;) {
      if (!host.running) break;
      try {
        await host.api.health();
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(`the daemon of ${host.name} did not read the store within ${timeoutMs} ms`, {
            cause: err,
          });
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

function netnsWithPrefix(prefix: string): string[] {
  return readdirSync(NETNS_RUN_DIR)
    .filter((name) => name.startsWith(prefix))
    .map((name) => join(NETNS_RUN_DIR, name));
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const problem = isolationProblem();
  if (problem) {
    throw new Error(
      `startCluster: refusing to build an underlay outside scripts/isolate.sh's namespace (${problem})`,
    );
  }
  const count = options.hosts;
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) {
    throw new RangeError(`a cluster has 1 to ${MAX_HOSTS} hosts, not ${count}`);
  }
  // 6 hex digits: <tag>h253 is 12 characters, within a link name's 15.
  const tag = `c${randomBytes(3).toString('hex')}`;
  const bridge = `${tag}ul`;
  const cleanup = new Cleanup();
  const hosts: ClusterHost[] = [];
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= cleanup.runAll().then((errors) => {
      if (errors.length)
        throw new AggregateError(errors, `cluster ${tag}: ${errors.length} clean-up step(s) failed`);
    });
    return closing;
  };
  try {
    const dir = mkdtempSync(join(options.dir ?? tmpdir(), `netctl-cluster-${tag}-`));
    cleanup.defer(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));

    const nl = Netlink.open();
    cleanup.defer('close the netlink handle', () => nl.close());
    cleanup.defer(`delete bridge ${bridge}`, () => linkDel(nl, bridge));
    await makeUnderlay(nl, bridge);

    const redisDir = join(dir, 'redis');
    mkdirSync(redisDir);
    const redisPort = await freePort(GATEWAY);
    const appendfsync = options.appendfsync ?? 'everysec';
    const redis = clusterRedis(
      redisDir,
      redisPort,
      appendfsync,
      await startRedis(redisDir, redisPort, appendfsync),
    );
    cleanup.defer('stop redis-server', () => redis.stop());

    const specs: HostSpec[] = [];
    for (let i = 1; i <= count; i++) {
      const name = `h${i}`;
      const uplink = `${tag}${name}`;
      const netnsName = `${tag}-${name}`;
      const address = `${UNDERLAY_PREFIX}.${i}`;
      cleanup.defer(`delete netns ${netnsName}`, () => deleteNetns(netnsName));
      const netns = createNetns(netnsName);
      // Gone with the netns, unless something still holds that open.
      cleanup.defer(`delete link ${uplink}`, () => linkDel(nl, uplink));
      await plugHost(nl, bridge, uplink, netns, address);
      const hostDir = join(dir, name);
      mkdirSync(join(hostDir, 'run'), { recursive: true });
      const pluginDir = options.dockerPlugins ? join(hostDir, 'plugins') : undefined;
      if (pluginDir) mkdirSync(pluginDir);
      specs.push({
        name,
        netns,
        address,
        dir: hostDir,
        sandboxPrefix: `${tag}-${name}-`,
        pluginDir,
        daemonArgs: [
          '--kv',
          redis.url,
          ...(pluginDir ? ['--docker-plugins', pluginDir] : ['--no-docker-plugins']),
          '--advertise-addr',
          address,
          ...(options.hostTtlMs !== undefined ? ['--host-ttl', String(options.hostTtlMs)] : []),
          ...(options.hostRenewMs !== undefined ? ['--host-renew', String(options.hostRenewMs)] : []),
          ...(options.daemonArgs ?? []),
        ],
        env: { NETCTL_RUN_DIR: join(hostDir, 'run'), ...options.env },
      });
    }

    // Registered before the daemons start: runs after they are stopped.
    cleanup.defer('delete the netns of the hosts sandboxes', () => {
      for (const spec of specs)
        for (const path of netnsWithPrefix(`netctl-${spec.sandboxPrefix}`)) deleteNetns(path);
    });
    let recorded: string[] = [];
    cleanup.defer('delete the netns of the sandboxes the daemons recorded', () => {
      for (const key of recorded) deleteNetns(key);
    });
    const started = await Promise.allSettled(specs.map((spec) => launchDaemon(spec)));
    started.forEach((result, i) => {
      if (result.status !== 'fulfilled') return;
      const host = clusterHost(specs[i]!, result.value);
      hosts.push(host);
      cleanup.defer(`stop the daemon of ${host.name}`, () => host.stop());
    });
    cleanup.defer('list the sandboxes the daemons recorded', async () => {
      recorded = await recordedSandboxNetns(hosts);
    });
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    return {
      tag,
      dir,
      hosts,
      redis,
      underlay: { bridge, gateway: GATEWAY },
      waitForStore: (timeoutMs = 20_000) => waitForStore(hosts, timeoutMs),
      close,
    };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}
