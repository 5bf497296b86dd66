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
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, launchRedisServer, signalRedisServer } from '../../src/kv/testing/redis-server.js';

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
  return launchRedisServer(args, socket, 20_000);
}

const signalAndWait = (child: ChildProcess, signal: NodeJS.Signals) =>
  signalRedisServer(child, signal, 10_000);

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
