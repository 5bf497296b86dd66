/**
 * The hostile suite's figures: each test file adds what it tried (inputs,
 * faults injected, random operations) and what it found (double grants,
 * leaks); the run prints one summary line at its end (figures-setup.ts),
 * so a reader sees how hard the suite pushed, not only that it passed.
 */
import { appendFileSync } from 'node:fs';

export interface Figures {
  /** Hostile or fuzzed inputs sent to an entry point. */
  inputs?: number;
  /** Faults injected (stalled sockets, dropped replies, killed stores, ...). */
  faults?: number;
  /** Operations run by random sequences. */
  operations?: number;
  /** Exclusive resources granted to more than one caller. */
  doubleGrants?: number;
  /** Objects or records left behind that should not be. */
  leaks?: number;
}

export const FIGURES_FILE_ENV = 'NETCTL_HOSTILE_FIGURES';

/** Add to this run's figures (a no-op outside the hostile project's run). */
export function recordFigures(figures: Figures): void {
  const file = process.env[FIGURES_FILE_ENV];
  if (!file) return;
  appendFileSync(file, `${JSON.stringify(figures)}\n`);
}
