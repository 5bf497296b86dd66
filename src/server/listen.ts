/**
 * Serving on a unix socket, and only there: the API is root's (mode 0660),
 * never a TCP port. A socket file left by a daemon that died is removed; one
 * that a live daemon answers on is not.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';

export const DEFAULT_API_SOCKET = '/run/netctl/api.sock';
/** Where dockerd looks for plugin sockets (`netctl daemon --docker-plugins`). */
export const DEFAULT_DOCKER_PLUGIN_DIR = '/run/docker/plugins';
export const SOCKET_MODE = 0o660;

/** 'live' when something accepts connections on path, 'stale' when nothing does. */
export function probeSocket(path: string, timeoutMs = 1000): Promise<'live' | 'stale'> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const timer = setTimeout(() => {
      // Accepted by the kernel's backlog but never answered is still someone's socket.
      socket.destroy();
      resolve('live');
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve('stale');
      else reject(err);
    });
  });
}

/** Listen on socketPath: make its directory, clear a stale socket, set mode 0660. */
export async function listenUnix(
  app: FastifyInstance,
  socketPath: string,
  option = '--socket',
): Promise<void> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  let stat: ReturnType<typeof lstatSync> | undefined;
  try {
    stat = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (stat) {
    if (!stat.isSocket()) throw new Errors.InvalidOption(option, `${socketPath} exists and is not a socket`);
    if ((await probeSocket(socketPath)) === 'live') throw new Errors.DaemonRunning(socketPath);
    unlinkSync(socketPath);
  }
  await app.listen({ path: socketPath });
  // With the usual umask (022) the socket is born 0755, which already keeps
  // others from connecting (that needs write permission); 0660 lets a group in.
  chmodSync(socketPath, SOCKET_MODE);
}
