/**
 * A real, private redis-server for tests and benchmarks: no TCP port, a unix
 * socket in its own temp directory, no persistence. Started and stopped by
 * PID; a process exit hook kills it if the caller forgot or crashed, so no
 * server outlives the run. Fails loudly when redis-server is missing — never
 * a silent skip.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  /** Store URL for openStore(): redis+unix:///.../redis.sock */
  readonly url: string;
  readonly socket: string;
  readonly pid: number | undefined;
  /** Stop the server (SIGTERM, then SIGKILL); the socket stops answering. */
  stop(): Promise<void>;
  /** Start it again on the same socket (empty: nothing is persisted). */
  restart(): Promise<void>;
  /** Stop it and remove its directory. */
  destroy(): Promise<void>;
}

/**
 * A TCP port nothing listens on at host (an address of the caller's
 * namespace), for a server that must listen on TCP: the kernel's choice,
 * released just before the server takes it.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** +PONG from the server on the socket (not -LOADING while it reads its data). */
function answersPing(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection(socket);
    let reply = '';
    conn.setTimeout(500, () => conn.destroy());
    conn.on('connect', () => conn.write('PING\r\n'));
    conn.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        conn.destroy();
        resolve(reply.startsWith('+PONG'));
      }
    });
    conn.on('error', () => resolve(false));
    conn.on('close', () => resolve(false));
  });
}

/**
 * Start `redis-server ARGS` (which must listen on socket) and wait until it
 * answers PING there, at most withinMs; killed by the process's exit hook
 * if nobody stops it. Shared with test/helpers/redis-durable.ts.
 */
export async function launchRedisServer(
  args: string[],
  socket: string,
  withinMs: number,
): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(
        new Error(`cannot start redis-server (${err.message}); install the Debian package redis-server`, {
          cause: err,
        }),
      ),
    );
    child.once('exit', (code, signal) =>
      reject(new Error(`redis-server exited at start (${signal ?? `code ${code}`}):\n${output}`)),
    );
  });
  failed.catch(() => {});
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const proc of live) proc.kill('SIGKILL');
    });
  }
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (await Promise.race([answersPing(socket), failed])) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `redis-server on ${socket} did not answer PING within ${withinMs / 1000} s:\n${output}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Send signal to the server and wait until it is gone (SIGKILL after forceMs). */
export function signalRedisServer(
  child: ChildProcess,
  signal: NodeJS.Signals,
  forceMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), forceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}

const THROWAWAY_ARGS = ['--port', '0', '--unixsocketperm', '700', '--save', '', '--appendonly', 'no'];

const launch = (dir: string, socket: string) =>
  launchRedisServer(
    [...THROWAWAY_ARGS, '--unixsocket', socket, '--dir', dir, '--loglevel', 'warning'],
    socket,
    10_000,
  );
const kill = (child: ChildProcess) => signalRedisServer(child, 'SIGTERM', 5000);

export async function startRedisServer(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-redis-'));
  const socket = join(dir, 'redis.sock');
  let child: ChildProcess | undefined = await launch(dir, socket);
  return {
    url: `redis+unix://${socket}`,
    socket,
    get pid() {
      return child?.pid;
    },
    async stop() {
      if (child) await kill(child);
      child = undefined;
    },
    async restart() {
      if (child) await kill(child);
      child = await launch(dir, socket);
    },
    async destroy() {
      if (child) await kill(child);
      child = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
