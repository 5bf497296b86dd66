/**
 * Structured logs (pino) to stderr, so stdout stays the command's output.
 * Level from NETCTL_LOG_LEVEL; the daemon logs at info, the CLI at warn.
 */
import { pino } from 'pino';

export const log = pino(
  { name: 'netctl', level: process.env.NETCTL_LOG_LEVEL ?? 'warn', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
);

export type Logger = typeof log;
