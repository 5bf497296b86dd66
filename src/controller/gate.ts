/**
 * Operations and gc in one process: operations run side by side (shared),
 * gc runs alone (exclusive). gc plans from one view of the records and the
 * kernel; an operation changing them meanwhile would have it act on a stale
 * view — put back the port rules of an endpoint that a disconnect is
 * removing, leaving a DNAT to an address the next container may get.
 * (Across processes, intents keep gc's sweep off what an operation in
 * flight holds; see reconcile.ts.)
 *
 * Re-entrant: whatever runs inside either side never waits for the gate
 * again — gc's teardowns call the operations' own removal code, and a
 * sandbox's removal removes its endpoints. A waiting gc holds back new
 * operations, so a busy daemon cannot starve it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export class Gate {
  private readonly inside = new AsyncLocalStorage<true>();
  /** Shared holders running now. */
  private active = 0;
  /** Set while an exclusive holder waits or runs; resolves when it is done. */
  private exclusiveTurn: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inside.getStore()) return fn();
    while (this.exclusiveTurn) await this.exclusiveTurn;
    this.active++;
    try {
      return await this.inside.run(true, fn);
    } finally {
      this.active--;
      if (this.active === 0) this.drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inside.getStore()) return fn();
    while (this.exclusiveTurn) await this.exclusiveTurn;
    let done: () => void = () => {};
    this.exclusiveTurn = new Promise((resolve) => {
      done = resolve;
    });
    try {
      if (this.active) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
        });
        this.drained = undefined;
      }
      return await this.inside.run(true, fn);
    } finally {
      this.exclusiveTurn = undefined;
      done();
    }
  }
}
