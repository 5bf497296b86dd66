/**
 * Runs an operation under an intent (intents.ts): its claims written with
 * the intent, the operation, then the intent's removal; on failure the
 * undo in place, after a lost reply a read-back of whether it landed, and
 * whatever cannot be settled here left to reconcile (abandon).
 */
import { Errors } from '../errors.js';
import { isOutcomeUnknown, KvConflictError, KvError } from '../kv/index.js';
import { log } from '../log.js';
import type { Gate } from './gate.js';
import { type Intent, isLive, newIntent } from './intents.js';
import { type ClaimOps, type IntentEnd, NO_CLAIMS, type State } from './state.js';

export class IntentRunner {
  /** Intents this process gave up on after an unknown outcome: reconcile's to settle (settle). */
  private readonly abandoned = new Set<string>();
  private settleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /**
   * @param gate operations side by side, gc alone (gate.ts)
   * @param reconcile what settles abandoned intents (the controller's gc)
   */
  constructor(
    private readonly state: State,
    private readonly gate: Gate,
    private readonly storeName: string,
    private readonly reconcile: () => Promise<unknown>,
  ) {}

  /**
   * Run an operation under a new intent whose owners are everything it may
   * make: `run` does the work (and may end the intent with its last record
   * write), `undo` takes back what a failed run made; `options` say what it
   * claims with the intent and how to tell, after a lost reply, that it landed.
   */
  async run<T>(
    op: string,
    kind: Intent['kind'],
    owners: string[],
    run: (end: IntentEnd) => Promise<T>,
    undo: () => Promise<void>,
    options: IntentOptions<T> = {},
  ): Promise<T> {
    return this.gate.shared(async () => {
      const intent = newIntent(op, kind, owners);
      // The claims the operation takes are written with its intent: a clash is
      // found here, before anything is done, and nothing is written.
      try {
        await retryConflicts(
          op,
          async () => this.state.putIntent(intent, options.take ? await options.take() : NO_CLAIMS),
          options.conflict,
        );
      } catch (err) {
        if (isOutcomeUnknown(err)) this.abandon(intent, op); // it may be there, with its claims
        throw err;
      }
      // run may end the intent with its last record write (State's IntentEnd).
      const end: IntentEnd = { id: intent.id, ended: false };
      try {
        const result = await run(end);
        if (!end.ended) await this.state.deleteIntent(intent.id);
        return result;
      } catch (err) {
        // A lost reply may hide a commit: undoing it would leave a record
        // holding what the undo freed. Re-read first.
        if (isOutcomeUnknown(err) && options.landed) {
          const outcome = await this.settle(intent, end, options.landed);
          if (outcome.landed) return outcome.result as T;
          if (outcome.unknown)
            throw new Errors.StoreUnavailable(
              this.storeName,
              `the outcome of ${op} is unknown; netctl settles it once the store answers (${(err as Error).message})`,
            );
        }
        // A delete half-way through is finished, not undone: reconcile does it,
        // soon, in this process (abandon), as it would after a crash.
        if (kind === 'delete' && end.started) {
          this.abandon(intent, op);
          throw err;
        }
        try {
          await undo();
          if (!end.ended)
            await retryConflicts(op, async () =>
              this.state.deleteIntent(intent.id, options.release ? await options.release() : NO_CLAIMS),
            );
        } catch (undoErr) {
          // Leave the intent: reconcile retries the undo later.
          log.error({ err: undoErr, op, owners }, 'undo failed; reconcile will finish it');
          this.abandon(intent, op);
        }
        throw err;
      }
    });
  }

  /**
   * After a failure whose outcome is unknown: did the operation's commit
   * land? Asked again while the store does not answer, for a few seconds;
   * then the intent is left for reconcile (abandon).
   */
  private async settle<T>(
    intent: Intent,
    end: IntentEnd,
    landed: () => Promise<{ result: T } | undefined>,
  ): Promise<{ landed: true; result: T } | { landed: false; unknown: boolean }> {
    const deadline = Date.now() + SETTLE_MS;
    for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
      try {
        const outcome = await landed();
        if (outcome === undefined) return { landed: false, unknown: false };
        // The commit ended the intent with it, unless it was written apart.
        if (!end.ended) await this.state.deleteIntent(intent.id).catch(() => this.abandon(intent, intent.op));
        log.warn(
          { op: intent.op, owners: intent.owners },
          'store reply lost, but the operation had committed',
        );
        return { landed: true, result: outcome.result };
      } catch (err) {
        if (!(err instanceof KvError) || Date.now() + wait > deadline) {
          this.abandon(intent, intent.op);
          return { landed: false, unknown: true };
        }
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /**
   * Give up on an intent in this process: reconcile treats it as the intent
   * of a dead process (undoes what has no record, finishes a delete), and
   * this process runs that reconcile as soon as the store answers.
   */
  private abandon(intent: Intent, op: string): void {
    this.abandoned.add(intent.id);
    log.warn({ op, intent: intent.id }, 'operation left to reconcile');
    this.settleAbandoned();
  }

  /** An intent this process gave up on (settle): reconcile's now. */
  abandonedHere(intent: Intent): boolean {
    return this.abandoned.has(intent.id);
  }

  /** An intent whose operation is still running (and not abandoned here). */
  intentIsLive(intent: Intent): boolean {
    return !this.abandoned.has(intent.id) && isLive(intent);
  }

  /** Reconcile until no abandoned intent is left, backing off while the store is down. */
  private settleAbandoned(delay = 250): void {
    if (this.settleTimer || this.closed) return;
    this.settleTimer = setTimeout(async () => {
      this.settleTimer = undefined;
      try {
        await this.reconcile();
        const left = new Set((await this.state.intents()).map((i) => i.id));
        for (const id of this.abandoned) if (!left.has(id)) this.abandoned.delete(id);
        if (this.abandoned.size) this.settleAbandoned(delay);
      } catch (err) {
        log.warn({ err }, 'settling abandoned operations: store still unavailable');
        this.settleAbandoned(Math.min(delay * 2, 10_000));
      }
    }, delay);
    this.settleTimer.unref();
  }

  /**
   * Stop settling in the background: the process is closing its store. A
   * short-lived one (the CLI without a daemon) settles what it abandoned
   * once more first, while it still can.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.settleTimer);
    if (!this.abandoned.size) return;
    await this.reconcile().catch((err: unknown) =>
      log.warn({ err }, 'abandoned operations left to the next reconcile'),
    );
  }
}

/** What an operation's claims are, what a conflict on one means, and how to tell it landed (run). */
export interface IntentOptions<T> {
  /** The claims the operation takes, written with its intent; built again on each retry. */
  take?: () => Promise<ClaimOps>;
  /** What a conflict on one of them means for the caller, or undefined to try again. */
  conflict?: (err: KvConflictError) => Error | undefined;
  /** The claims an undone operation gives back, written with the intent's removal. */
  release?: () => Promise<ClaimOps>;
  /**
   * After a failure whose outcome is unknown (a lost reply): the
   * operation's result if its commit landed, undefined if it did not.
   */
  landed?: () => Promise<{ result: T } | undefined>;
}

/** How long an operation asks whether its commit landed before leaving it to reconcile. */
const SETTLE_MS = 3000;

export const CLAIM_ATTEMPTS = 100;

/**
 * Run a transaction built from what it reads until no compare fails: a
 * conflict that means something to the caller (conflict) ends it with that
 * error; any other is someone else's write landing first, and it is built
 * again from fresh reads.
 */
export async function retryConflicts<T>(
  what: string,
  attempt: () => Promise<T>,
  conflict: (err: KvConflictError) => Error | undefined = () => undefined,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof KvConflictError)) throw err;
      const meant = conflict(err);
      if (meant) throw meant;
      if (n >= CLAIM_ATTEMPTS) throw new Errors.Conflict(what);
      // Jitter once contended, so writers do not collide in step.
      if (n > 2) await new Promise((r) => setTimeout(r, Math.random() * Math.min(n, 20)));
    }
  }
}

/**
 * A write whose reply may be lost (isOutcomeUnknown): read back whether it
 * landed, and go on as if it had answered; fail as it failed otherwise.
 */
export async function confirmWrite(
  write: () => Promise<unknown>,
  landed: () => Promise<boolean>,
): Promise<void> {
  try {
    await write();
  } catch (err) {
    if (!isOutcomeUnknown(err) || !(await landed())) throw err;
  }
}

/** A record read back after a lost reply, as a landed operation's result. */
export function found<T>(record: T | undefined): { result: T } | undefined {
  return record === undefined ? undefined : { result: record };
}
