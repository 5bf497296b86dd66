/**
 * Node programs started and held at the door: each child loads Node and the
 * modules it is told to warm, says so, and waits; release() lets it run its
 * real entry point from there. A race between separate `node` processes is
 * then decided by the work they race on, not by which one finished loading
 * its modules first (a Node start is ~0.3 s, and seconds for ten at once
 * on a small machine).
 *
 * The hold is a preload (`node --import <data: URL> script ...`) that
 * imports the warm modules, writes "ready" on fd 3 and waits for SIGUSR2;
 * stdin, stdout, stderr and argv stay the program's own. Never through a
 * shell. killHeld() stops what a failed test left running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';

/** Where the hold tells the parent it is ready, and the signal that releases it. */
const READY_FD = 3;
const GO = 'SIGUSR2';

// A signal handler keeps no process alive: the interval does, until the go.
const HOLD = [
  'import { closeSync, writeSync } from "node:fs";',
  'const warm = JSON.parse(process.env.NETCTL_TEST_HELD_WARM ?? "[]");',
  'for (const url of warm) await import(url);',
  'const alive = setInterval(() => {}, 1 << 30);',
  `await new Promise((go) => { process.once("${GO}", go); writeSync(${READY_FD}, "ready\\n"); closeSync(${READY_FD}); });`,
  'clearInterval(alive);',
].join('\n');
const HOLD_URL = `data:text/javascript,${encodeURIComponent(HOLD)}`;

export interface HeldOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the release to the exit (from the spawn when never released). */
  ms: number;
}

export interface Held {
  /** Resolves once the child has loaded its warm modules and waits; rejects if it exits first. */
  ready: Promise<void>;
  /** Let it run (once ready). */
  release(): void;
  /** Its exit, with what it printed. */
  done: Promise<HeldOutcome>;
  kill(): void;
}

const running = new Set<ChildProcess>();

/**
 * `node script ...args`, held before script runs. `warm`: file paths of
 * modules to import first (they are cached for the program's own imports).
 * env as given, nothing inherited.
 */
export function spawnHeld(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; warm?: string[] } = {},
): Held {
  const warm = (options.warm ?? []).map((p) => pathToFileURL(p).href);
  const child = spawn(process.execPath, ['--import', HOLD_URL, script, ...args], {
    env: { ...options.env, NETCTL_TEST_HELD_WARM: JSON.stringify(warm) },
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  let started = performance.now();
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<HeldOutcome>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      running.delete(child);
      resolve({ status, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    let said = '';
    const readyPipe = child.stdio[READY_FD] as NodeJS.ReadableStream;
    readyPipe.on('data', (d) => {
      said += d;
      if (said.includes('ready\n')) resolve();
    });
    void done.then((o) =>
      reject(new Error(`${script} exited before it was ready (status ${o.status}):\n${o.stderr}`)),
    );
  });
  // Its own outcome tells: an unready child's exit is reported through done too.
  ready.catch(() => {});
  child.stdin?.on('error', () => {});
  child.stdin?.end(options.input ?? '');
  return {
    ready,
    done,
    release() {
      started = performance.now();
      child.kill(GO);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** SIGKILL every held child still running, and wait for each to exit. */
export async function killHeld(): Promise<void> {
  for (const child of [...running]) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('close', r));
      child.kill('SIGKILL');
      await exited;
    }
  }
  running.clear();
}
