/**
 * A "host" for Docker end-to-end tests: a private dockerd 20.10
 * (bench/lib/dockerd.ts) and a real `netctl daemon` in the same network and
 * mount namespaces — the daemon must see the container netns dockerd binds
 * under its exec-root, and serve its plugin sockets in dockerd's
 * /run/docker/plugins — plus an "external" netns wired to that host
 * (192.0.2.1 there, 192.0.2.2 outside) standing for the world.
 *
 * Everything is started once per test file (a dockerd takes ~1.5 s) and
 * stopped by PID; the namespaces go with it.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { type Daemon, startDaemon } from '../../../bench/lib/daemon.js';
import { type Dockerd, startDockerd } from '../../../bench/lib/dockerd.js';
import { addrAdd, createNetns, deleteNetns, linkAdd, linkSetUp, Netlink } from '../../../src/kernel/index.js';
import { type KvStore, openStore } from '../../../src/kv/index.js';
import { packageRoot } from '../../../src/paths.js';
import { type Inventory, inventory } from '../../helpers/inventory.js';
import type { PingRunner } from '../../helpers/ping.js';
import { spawnCollected } from '../../helpers/spawned.js';
import { httpGetArgv } from '../controller/fixture.js';
import { PREFIX } from '../harness.js';

const execFileAsync = promisify(execFile);
export const BIN = join(packageRoot, 'bin', 'netctl.js');
export const EXT_HOST = '192.0.2.1';
export const EXT_PEER = '192.0.2.2';

export interface DockerHost {
  d: Dockerd;
  /** The external netns. */
  ext: string;
  /** The netctl daemon's state dir (its API socket is api.sock there). */
  state: string;
  netctl: Daemon;
  /** Start the netctl daemon again (after stop or kill). */
  restartNetctl(): Promise<Daemon>;
  close(): Promise<void>;
}

export async function dockerHost(tag: string): Promise<DockerHost> {
  // The netctl daemon runs from dist/ (npm test builds it first).
  if (!existsSync(join(packageRoot, 'dist', 'src', 'server', 'docker', 'server.js')))
    throw new Error('dist/ lacks the Docker plugin: run `npm run build` first (npm test does)');
  const d = await startDockerd(`${PREFIX}${tag}`);
  const extName = `${PREFIX}${tag}x`;
  const ext = createNetns(extName);
  const host = Netlink.open(d.netns);
  const outside = Netlink.open(ext);
  try {
    await linkAdd(host, { kind: 'veth', name: 'ext0', up: true, peer: { name: 'eth0', netns: ext } });
    await addrAdd(host, 'ext0', `${EXT_HOST}/24`);
    await addrAdd(outside, 'eth0', `${EXT_PEER}/24`);
    await linkSetUp(outside, 'eth0');
  } finally {
    host.close();
    outside.close();
  }
  const state = mkdtempSync(join(d.dir, 'netctl-'));
  const start = () =>
    startDaemon(state, { nsenter: d.nsenter, args: ['--docker-plugins', '/run/docker/plugins'] });
  const self: DockerHost = {
    d,
    ext,
    state,
    netctl: await start(),
    async restartNetctl() {
      self.netctl = await start();
      return self.netctl;
    },
    async close() {
      try {
        await self.netctl.stop();
      } finally {
        await d.stop();
        deleteNetns(extName);
        rmSync(state, { recursive: true, force: true });
      }
    },
  };
  return self;
}

/** `docker network create` arguments for netctl's network driver and IPAM. */
export const NET = ['-d', 'netctl-bridge', '--ipam-driver', 'netctl'];

/** Image and command of a web server on port 80 answering "hello from docker\n" (the image's /www). */
export const HTTPD = ['busybox', 'httpd', '-f', '-p', '80', '-h', '/www'];

/**
 * One DockerHost for the calling test file (a dockerd takes seconds to
 * start): started before its tests, with what it holds then as `empty`,
 * and closed after them, whatever Docker still has removed first.
 */
export function dockerHostForFile(tag: string): { readonly h: DockerHost; readonly empty: Inventory } {
  let h: DockerHost | undefined;
  let empty: Inventory | undefined;
  beforeAll(async () => {
    h = await dockerHost(tag);
    empty = await leftovers(h);
  }, 120_000);
  afterAll(async () => {
    try {
      if (h) await removeAllDocker(h);
    } finally {
      await h?.close();
    }
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the Docker host is not started (beforeAll failed?)');
    return value;
  };
  return {
    get h() {
      return started(h);
    },
    get empty() {
      return started(empty);
    },
  };
}

/** `docker ARGS`; its stdout, trimmed. */
export async function docker(h: DockerHost, ...args: string[]): Promise<string> {
  return (await h.d.docker(args, 60_000)).stdout.trim();
}

/** `docker run -d --name NAME --network NETWORK ARGS IMAGE+COMMAND` (by default a busybox that sleeps). */
export async function runOn(
  h: DockerHost,
  network: string,
  name: string,
  args: string[] = [],
  command: string[] = ['busybox', 'sleep', '3600'],
): Promise<void> {
  await docker(h, 'run', '-d', '--name', name, '--network', network, ...args, ...command);
}

/**
 * POST a raw body to one of the daemon's plugin sockets as dockerd's
 * plugin client does (no Content-Type): status and parsed answer. With
 * `sendBytes`, the head declares the whole body but only that much of it is
 * sent: a server that refuses a body by its declared size answers and
 * closes before reading it, and a client still writing then loses the
 * answer to its EPIPE (Docker's Go client keeps it; node's does not).
 */
export function postPlugin(
  h: DockerHost,
  plugin: 'netctl-bridge' | 'netctl',
  path: string,
  body: string,
  options: { sendBytes?: number } = {},
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = connect(join(h.d.pluginDir, `${plugin}.sock`));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!status) return reject(new Error(`no HTTP answer from ${plugin}${path}: ${JSON.stringify(text)}`));
      const payload = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({ status: Number(status[1]), body: payload ? JSON.parse(payload) : undefined });
    });
    const head = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
    const sent = options.sendBytes === undefined ? body : body.slice(0, options.sendBytes);
    // No half-close: node's HTTP server drops a request whose client closed
    // its side before the answer (a slow one, or a partial body); `Connection:
    // close` ends the exchange once it has answered.
    socket.write(head + sent);
  });
}

/** `docker ARGS` that must fail: its stderr. */
export async function dockerFails(h: DockerHost, ...args: string[]): Promise<string> {
  try {
    await h.d.docker(args, 60_000);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`docker ${args.join(' ')} succeeded`);
}

/** A container's address on a network (empty when not on it). */
export const ipOn = (h: DockerHost, container: string, network: string) =>
  docker(
    h,
    'inspect',
    '-f',
    `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}}{{end}}`,
    container,
  );

/** Where ping (test/helpers/ping.ts) runs in a container: `docker exec CONTAINER ping ...`. */
export const inContainer =
  (h: DockerHost, container: string): PingRunner =>
  (pingArgs) =>
    h.d.docker(['exec', container, 'ping', ...pingArgs], 5000);

/** The real `netctl` CLI against the daemon (from this process: the daemon answers on its socket). */
export async function netctl(
  h: DockerHost,
  ...args: string[]
): Promise<{ status: number; stdout: string; stderr: string }> {
  const { status, stdout, stderr } = await spawnCollected(
    process.execPath,
    [BIN, '--socket', join(h.state, 'api.sock'), ...args],
    { env: { PATH: process.env.PATH, NETCTL_STATE_DIR: h.state, NETCTL_LOG_LEVEL: 'warn' } },
  );
  return { status: status ?? -1, stdout, stderr };
}

/** `netctl network inspect NAME`, parsed (Docker's shape). */
export async function inspectNetwork(h: DockerHost, name: string) {
  const r = await netctl(h, 'network', 'inspect', name);
  if (r.status !== 0) throw new Error(`netctl network inspect ${name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as NetworkInspect[])[0] as NetworkInspect;
}

export interface NetworkInspect {
  Name: string;
  Id: string;
  Driver: string;
  Internal: boolean;
  IPAM: { Driver: string; Config: { Subnet: string; Gateway: string; IPRange?: string }[] };
  Containers: Record<
    string,
    {
      Name: string;
      EndpointID: string;
      IPv4Address: string;
      Ports: Record<string, { HostIp: string; HostPort: string }[]>;
    }
  >;
  Options: Record<string, string>;
}

/** GET url from the external netns; the body, or undefined. */
export async function fetchFromOutside(h: DockerHost, url: string): Promise<string | undefined> {
  const argv = httpGetArgv(url);
  try {
    return (await execFileAsync('nsenter', [`--net=${h.ext}`, '--', ...argv], { timeout: 5000 })).stdout;
  } catch {
    return undefined;
  }
}

/** A TCP server in the external netns answering each connection with the peer's address; resolves once it listens. */
export async function echoPeerOutside(h: DockerHost, port: number): Promise<{ stop(): void }> {
  const child = spawn(
    'nsenter',
    [
      `--net=${h.ext}`,
      '--',
      process.execPath,
      '-e',
      `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(${port}, '0.0.0.0')`,
    ],
    { stdio: 'ignore' },
  );
  const stop = () => child.kill('SIGKILL');
  const deadline = Date.now() + 5000;
  for (;;) {
    const { stdout } = await execFileAsync('nsenter', [
      `--net=${h.ext}`,
      '--',
      'ss',
      '-Hltn',
      `sport = :${port}`,
    ]);
    if (stdout.trim()) return { stop };
    if (Date.now() > deadline) {
      stop();
      throw new Error(`echo server on port ${port} did not listen`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Remove every container and every netctl-bridge network Docker has (after a test, whatever it left). */
export async function removeAllDocker(h: DockerHost): Promise<void> {
  const containers = (await docker(h, 'ps', '-aq')).split('\n').filter(Boolean);
  if (containers.length) await docker(h, 'rm', '-f', ...containers);
  const networks = (await docker(h, 'network', 'ls', '-q', '--filter', 'driver=netctl-bridge'))
    .split('\n')
    .filter(Boolean);
  if (networks.length) await docker(h, 'network', 'rm', ...networks);
}

/**
 * What netctl left on the Docker host: its store, and what carries its
 * marks in the host's kernel (dockerd changes its own rules and links
 * meanwhile, on a restart).
 */
export async function leftovers(h: DockerHost): Promise<Inventory> {
  const kv: KvStore = await openStore(`lmdb://${join(h.state, 'state.lmdb')}`);
  try {
    return await inventory(kv, { nsenter: h.d.nsenter, ownedOnly: true });
  } finally {
    await kv.close();
  }
}
