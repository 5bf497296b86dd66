/**
 * Which NetctlApi the CLI talks to: the daemon's, over its socket, when one
 * answers there; otherwise a controller in this process (createLocalApi),
 * over the same store — so every command works with or without a daemon.
 */
import type { NetctlApi } from '../controller/api.js';
import { Errors } from '../errors.js';
import { log } from '../log.js';
import { DEFAULT_API_SOCKET, probeSocket } from '../server/listen.js';
import { DEFAULT_TIMEOUT_SECONDS, HttpApi } from './client.js';

export interface BackendOptions {
  /** --socket; else NETCTL_SOCKET; else /run/netctl/api.sock. */
  socket?: string;
  /** --kv, for the in-process controller. */
  kv?: string;
  /** --timeout, seconds for each request to the daemon; else NETCTL_TIMEOUT; else 60. */
  timeout?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Backend {
  api: NetctlApi;
  close(): Promise<void>;
  mode: 'daemon' | 'local';
}

export function socketPathOf(options: BackendOptions): string {
  return options.socket ?? (options.env ?? process.env).NETCTL_SOCKET ?? DEFAULT_API_SOCKET;
}

/** The most a deadline may be: a day, well inside what setTimeout can wait (24.8 days). */
export const MAX_TIMEOUT_SECONDS = 86_400;

/** Seconds as --timeout and NETCTL_TIMEOUT take them (`30`, `0.5`); undefined if not that. */
export function parseSeconds(text: string): number | undefined {
  const seconds = /^[0-9.]+$/.test(text) ? Number(text) : Number.NaN;
  return seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS ? seconds : undefined;
}

export function timeoutOf(options: BackendOptions): number {
  if (options.timeout !== undefined) return options.timeout;
  const text = (options.env ?? process.env).NETCTL_TIMEOUT;
  if (!text) return DEFAULT_TIMEOUT_SECONDS;
  const seconds = parseSeconds(text);
  if (seconds === undefined)
    throw new Errors.InvalidOption(
      'NETCTL_TIMEOUT',
      `${JSON.stringify(text)}: want seconds, more than 0 and at most ${MAX_TIMEOUT_SECONDS}`,
    );
  return seconds;
}

export async function openApi(options: BackendOptions): Promise<Backend> {
  const socket = socketPathOf(options);
  const timeout = timeoutOf(options);
  const state = await probeSocket(socket).catch((err: NodeJS.ErrnoException) => {
    // EACCES (not root), ENOTSOCK, ...: a daemon may well be there; do not go around it.
    throw new Errors.DaemonUnavailable(
      socket,
      err.code === 'EACCES' ? 'permission denied (run as root)' : err.message,
      {
        cause: err,
      },
    );
  });
  if (state === 'live') {
    if (options.kv)
      log.warn(
        { socket, kv: options.kv },
        'a daemon answers: --kv is ignored, the daemon uses its own store',
      );
    return { api: new HttpApi(socket, timeout), close: async () => {}, mode: 'daemon' };
  }
  log.debug({ socket }, 'no daemon: running the controller in this process');
  // Loaded only when needed: the daemon path stays quick to start.
  const { createLocalApi } = await import('../daemon/compose.js');
  const local = await createLocalApi({ ...(options.kv ? { kv: options.kv } : {}), socket });
  return { api: local.api, close: () => local.close(), mode: 'local' };
}
