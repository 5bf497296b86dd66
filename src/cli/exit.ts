/**
 * Exit statuses of the netctl command line, one per error class
 * (docs/errors.md), so scripts can tell "not there" from "in the way" from
 * "try again later" without reading messages.
 */
import type { Writable } from 'node:stream';
import { type ErrorClass, errorClassOf } from '../errors.js';
import { log } from '../log.js';

export const EXIT_OK = 0;
/** Internal errors, and `netctl doctor` finding a failed check. */
export const EXIT_FAILURE = 1;
/** Bad input: a registry badRequest error, or a usage error caught by the parser. */
export const EXIT_USAGE = 2;

export const EXIT_STATUS: Record<ErrorClass, number> = {
  internal: EXIT_FAILURE,
  badRequest: EXIT_USAGE,
  notFound: 3,
  conflict: 4,
  unavailable: 5,
};

export function exitStatusOf(err: unknown): number {
  // A registry error from a newer daemon whose code this CLI does not know keeps its class.
  const wireClass = (err as { class?: unknown } | null)?.class;
  const errorClass =
    typeof wireClass === 'string' && wireClass in EXIT_STATUS ? (wireClass as ErrorClass) : errorClassOf(err);
  return EXIT_STATUS[errorClass];
}

/** `netctl: <message>` on stderr (the stack at debug), and the exit status for err. */
export function reportError(err: unknown, stderr: Writable): number {
  const message = err instanceof Error ? err.message : String(err);
  stderr.write(`netctl: ${message}\n`);
  log.debug({ err }, 'command failed');
  return exitStatusOf(err);
}
