/**
 * A real redis-server that keeps what it acknowledged: append-only file,
 * fsync before every reply (`appendfsync always`), so a `kill -9` loses no
 * write a client was told had happened, and a restart on the same data dir
 * and port brings it all back. Listens on loopback TCP (a port found free
 * in this namespace: the tests run in scripts/isolate.sh's) and on a unix
 * socket in its own temp dir. Killed by PID; a process exit hook kills it
 * if a test forgot or crashed.
 *
 * (src/kv/testing/redis-server.ts is the throwaway kind: no persistence,
 * no TCP.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DurableRedis {
  /** Its data dir (the append-only files). */
  readonly dir: string;
  readonly port: number;
  readonly socket: string;
  /** redis://127.0.0.1:<port>/0 */
  readonly url: string;
  /** The running server's PID, undefined while it is down. */
  readonly pid: number | undefined;
  /** SIGKILL by PID, and wait until it is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (a clean shutdown), and wait until it is gone. */
  stop(): Promise<void>;
  /** Start it again on the same dir, port and socket; resolves once it answers PING (its data loaded). */
  start(): Promise<void>;
  /** Stop it and remove its dir. */
  destroy(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** A TCP port nothing listens on here. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** +PONG from the server on the socket (not -LOADING while it reads its file). */
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

async function launch(dir: string, port: number, socket: string): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--unixsocket',
    socket,
    '--unixsocketperm',
    '700',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--loglevel',
    'warning',
  ];
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
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await Promise.race([answersPing(socket), failed])) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on ${socket} did not answer PING within 20 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function signalAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}

export async function startDurableRedis(): Promise<DurableRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-redis-aof-'));
  const socket = join(dir, 'redis.sock');
  const port = await freePort();
  let child: ChildProcess | undefined = await launch(dir, port, socket);
  return {
    dir,
    port,
    socket,
    url: `redis://127.0.0.1:${port}/0`,
    get pid() {
      return child?.pid;
    },
    async kill9() {
      if (child) await signalAndWait(child, 'SIGKILL');
      child = undefined;
    },
    async stop() {
      if (child) await signalAndWait(child, 'SIGTERM');
      child = undefined;
    },
    async start() {
      if (child) throw new Error('redis-server is running already');
      child = await launch(dir, port, socket);
    },
    async destroy() {
      if (child) await signalAndWait(child, 'SIGKILL');
      child = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
