/**
 * Network setup as a pipeline of steps (libnetwork drivers/bridge/bridge.go:
 * bridgeSetup.queueStep): each step is applied in order, returns its undo,
 * and the first failure runs the undos done so far in reverse.
 */
import { log } from '../../log.js';

export type Undo = () => Promise<void>;
export type Step<C> = [applies: (config: C) => boolean, run: (config: C) => Promise<Undo | undefined>];

export async function runSteps<C>(config: C, steps: Step<C>[]): Promise<void> {
  const undos: Undo[] = [];
  try {
    for (const [applies, run] of steps) {
      if (!applies(config)) continue;
      const undo = await run(config);
      if (undo) undos.push(undo);
    }
  } catch (err) {
    for (const undo of undos.reverse()) {
      // Keep unwinding: one failed undo must not strand the others; gc
      // finds what is left by its owner tag.
      await undo().catch((undoErr: unknown) =>
        log.error({ err: undoErr, cause: err }, 'undo of a setup step failed'),
      );
    }
    throw err;
  }
}

export const always = () => true;
