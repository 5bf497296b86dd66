/**
 * The figures a benchmark returns, printed by the runner as its one final
 * JSON line so runs can be compared with each other.
 */
export type Figures = Record<string, number | string>;

/** What every bench/NAME.ts exports as its default. */
export type Bench = () => Promise<Figures>;

/** Round to 4 significant digits: enough to compare runs, short to read. */
export function round(value: number): number {
  if (!Number.isFinite(value) || value === 0) return value;
  return Number(value.toPrecision(4));
}
