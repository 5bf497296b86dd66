/**
 * Intents: an operation that changes more than one thing is recorded before
 * its first side effect, with the owners (`net:<id>`, `ep:<id>`,
 * `sb:<id>`) of everything it may create, and removed when it is done. If the
 * process dies in between, reconcile finds an intent whose process is gone
 * and undoes (create) or finishes (delete) the operation: every kernel
 * object and reservation carries one of those owners, so nothing is missed.
 */

import { randomBytes } from 'node:crypto';
import { bootId, processStart } from '../sandbox/identity.js';

export type IntentKind = 'create' | 'delete';

export interface Intent {
  id: string;
  /** What is being done, for people: 'createNetwork', 'connect', ... */
  op: string;
  kind: IntentKind;
  owners: string[];
  pid: number;
  /** Start time of pid (clock ticks since boot): a reused pid is another process. */
  pidStart: number;
  bootId: string;
  started: string;
}

export function newIntent(op: string, kind: IntentKind, owners: string[]): Intent {
  return {
    id: randomBytes(8).toString('hex'),
    op,
    kind,
    owners,
    pid: process.pid,
    pidStart: processStart(process.pid) ?? 0,
    bootId: bootId(),
    started: new Date().toISOString(),
  };
}

/** True while the process that recorded the intent is still running it. */
export function isLive(intent: Intent): boolean {
  return intent.bootId === bootId() && processStart(intent.pid) === intent.pidStart;
}

export { crashPoint } from '../crash.js';
