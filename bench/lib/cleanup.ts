/**
 * Undo steps registered as a benchmark sets up, run in reverse whether the
 * benchmark succeeds or fails, so nothing it made outlives it.
 */
export class Cleanup {
  private readonly steps: { label: string; fn: () => unknown }[] = [];

  defer(label: string, fn: () => unknown): void {
    this.steps.push({ label, fn });
  }

  /** Run every step, last first. A failing step does not stop the others. */
  async runAll(): Promise<Error[]> {
    const errors: Error[] = [];
    for (const { label, fn } of this.steps.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        process.stderr.write(`bench: cleanup "${label}" failed: ${error.message}\n`);
        errors.push(error);
      }
    }
    return errors;
  }
}

/**
 * Run body with a Cleanup, then the cleanup. The body's own error wins over
 * cleanup errors (which are still reported on stderr).
 */
export async function withCleanup<T>(body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = new Cleanup();
  let result: T;
  try {
    result = await body(cleanup);
  } catch (err) {
    await cleanup.runAll();
    throw err;
  }
  const errors = await cleanup.runAll();
  if (errors.length) throw new AggregateError(errors, `${errors.length} cleanup step(s) failed`);
  return result;
}
