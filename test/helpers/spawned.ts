/**
 * Run a program (never through a shell) and collect what it printed. Kept
 * free of test hooks so any fixture can use it; killSpawned() stops what a
 * failed test left running.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface Spawned {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Wall-clock time from the spawn to the exit. */
  ms: number;
}

const running = new Set<ChildProcess>();

/** Run file with args, input on stdin, env as given (nothing inherited). */
export function spawnCollected(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<Spawned> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: options.env ?? {}, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (status) => {
      running.delete(child);
      resolve({ status, stdout, stderr, ms: performance.now() - started });
    });
    // A child that exits before reading all of stdin is not an error here: its status says what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** SIGKILL each child still running, and wait for it to exit. */
export async function killAll(children: Iterable<ChildProcess>): Promise<void> {
  for (const child of [...children]) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  }
}

/** Stop every spawnCollected child a test left running. */
export async function killSpawned(): Promise<void> {
  await killAll(running);
  running.clear();
}
