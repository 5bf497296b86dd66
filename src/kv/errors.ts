/**
 * Errors of the KV layer. Each carries a stable `code` that callers (and,
 * later, the HTTP/CLI error registry in src/core) branch on — never the
 * message text.
 */

export type KvErrorCode =
  | 'kv.conflict'
  | 'kv.unavailable'
  | 'kv.invalid_key'
  | 'kv.invalid_url'
  | 'kv.store_mismatch'
  | 'kv.backend';

export abstract class KvError extends Error {
  abstract readonly code: KvErrorCode;
}

/**
 * A compare failed: the key's version is not the one the caller read
 * (libnetwork's ErrKeyModified). Nothing of the transaction was written;
 * re-read and retry.
 */
export class KvConflictError extends KvError {
  override readonly name = 'KvConflictError';
  readonly code = 'kv.conflict';
  constructor(
    readonly key: string,
    /** Version the caller expected; 0 means "must not exist". */
    readonly expected: number,
    /** Version found; 0 means the key does not exist. */
    readonly actual: number,
  ) {
    super(
      expected === 0
        ? `key ${JSON.stringify(key)} already exists (version ${actual})`
        : actual === 0
          ? `key ${JSON.stringify(key)} was deleted (expected version ${expected})`
          : `key ${JSON.stringify(key)} was modified: expected version ${expected}, found ${actual}`,
    );
  }
}

/**
 * The store cannot be reached or is closed. For a write, the outcome is
 * unknown only when the connection dropped while the request was in flight;
 * a request refused up front (store down, offline) wrote nothing.
 */
export class KvUnavailableError extends KvError {
  override readonly name = 'KvUnavailableError';
  readonly code = 'kv.unavailable';
  /** False when the request never left (refused up front): it wrote nothing. */
  readonly outcomeUnknown: boolean;
  constructor(
    readonly backend: string,
    detail: string,
    options?: { cause?: unknown; outcomeUnknown?: boolean },
  ) {
    super(`${backend} store unavailable: ${detail}`, options);
    this.outcomeUnknown = options?.outcomeUnknown ?? true;
  }
}

/**
 * A write that failed this way may have committed all the same (its reply
 * was lost): re-read before undoing anything on its account.
 */
export function isOutcomeUnknown(err: unknown): boolean {
  return err instanceof KvUnavailableError && err.outcomeUnknown;
}

/** Keys are non-empty UTF-8 strings without control characters. */
export class KvInvalidKeyError extends KvError {
  override readonly name = 'KvInvalidKeyError';
  readonly code = 'kv.invalid_key';
  constructor(
    readonly key: unknown,
    reason: string,
  ) {
    super(`invalid key ${JSON.stringify(key)}: ${reason}`);
  }
}

/** A `--kv` URL netctl cannot use. */
export class KvInvalidUrlError extends KvError {
  override readonly name = 'KvInvalidUrlError';
  readonly code = 'kv.invalid_url';
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`invalid store URL ${JSON.stringify(url)}: ${reason}`);
  }
}

/** The backend answered with an error that is not about reachability (a bug, a full disk). */
export class KvBackendError extends KvError {
  override readonly name = 'KvBackendError';
  readonly code = 'kv.backend';
  constructor(
    readonly backend: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${backend} store error: ${detail}`, options);
  }
}

export function isKvConflict(err: unknown): err is KvConflictError {
  return err instanceof KvConflictError;
}

/**
 * A fallback (no daemon answering) was asked for a store other than the
 * one this host's daemon recorded (daemon-store.ts): refused, so state is
 * never split between two stores.
 */
export class KvStoreMismatchError extends KvError {
  override readonly name = 'KvStoreMismatchError';
  readonly code = 'kv.store_mismatch';
  constructor(
    readonly recorded: string,
    readonly asked: string,
  ) {
    super(
      `this host's netctl daemon runs on ${recorded}, not ${asked}: give the daemon's store (or no --kv), so state is never split`,
    );
  }
}
