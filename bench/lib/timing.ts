/**
 * Wall-clock timing with process.hrtime.bigint (monotonic, nanoseconds), and
 * named sample sets so a benchmark can record many measurements per run.
 */
import { type Summary, summarize } from './stats.js';

/** Milliseconds elapsed since start (a value of process.hrtime.bigint()). */
export function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Run fn once and return how long it took, in milliseconds. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return elapsedMs(start);
}

/** Samples (in milliseconds) kept under a name, e.g. "addr_add.ours". */
export class Samples {
  private readonly sets = new Map<string, number[]>();

  add(name: string, ms: number): void {
    const set = this.sets.get(name);
    if (set) set.push(ms);
    else this.sets.set(name, [ms]);
  }

  /** Time fn, record it under name, and return fn's result. */
  async time<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const start = process.hrtime.bigint();
    const result = await fn();
    this.add(name, elapsedMs(start));
    return result;
  }

  values(name: string): readonly number[] {
    const set = this.sets.get(name);
    if (!set?.length) throw new Error(`no samples recorded for ${name}`);
    return set;
  }

  summary(name: string): Summary {
    return summarize(this.values(name));
  }

  names(): string[] {
    return [...this.sets.keys()];
  }
}

/**
 * Iterations per measured operation: env BENCH_ITERATIONS (the runner sets
 * it from `--iterations N`), else the benchmark's default.
 */
export function iterations(defaultCount: number): number {
  const raw = process.env.BENCH_ITERATIONS;
  if (raw === undefined || raw === '') return defaultCount;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`BENCH_ITERATIONS must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}
