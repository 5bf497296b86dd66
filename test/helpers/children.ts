/**
 * Run a TypeScript fixture in many separate Node processes at once, for the
 * tests that must prove correctness across processes (CAS contention, IPAM
 * allocations).
 *
 * The fixture is bundled once with esbuild (our sources inlined, packages
 * left external) into node_modules/.cache so that its bare imports resolve;
 * each child is then a plain `node x.mjs` (~0.15 s to start, where a TS
 * loader per child would take seconds on a small machine).
 *
 * Start barrier: a fixture prints "ready" once it has opened its store, and
 * waits for "go" on stdin; the parent sends "go" to all only when every
 * child is ready, so the work really overlaps. A fixture's result is the
 * last line it prints.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '../..');
const CACHE = join(ROOT, 'node_modules/.cache/netctl-test');

/** Bundle a fixture; remove the returned file when done (removeFixture). */
export async function bundleFixture(entry: string): Promise<string> {
  mkdirSync(CACHE, { recursive: true });
  // Unique per process: vitest runs files in parallel workers.
  const outfile = join(CACHE, `${basename(entry, '.ts')}-${process.pid}.mjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return outfile;
}

export function removeFixture(bundled: string | undefined): void {
  if (bundled?.startsWith(CACHE)) rmSync(bundled, { force: true });
}

interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr: string;
  exited: Promise<number | null>;
}

/** Run `node script ...args` once per args list, all released together; returns each child's last line. */
export async function runConcurrently(
  script: string,
  argsList: string[][],
  timeoutMs = 60_000,
): Promise<string[]> {
  const children: Child[] = [];
  let ready = 0;
  let releaseAll: () => void = () => {};
  const allReady = new Promise<void>((r) => {
    releaseAll = r;
  });
  for (const args of argsList) {
    const proc = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
    const child: Child = {
      proc,
      lines: [],
      stderr: '',
      exited: new Promise((r) => proc.once('exit', (code) => r(code))),
    };
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line === 'ready') {
        ready++;
        if (ready === argsList.length) releaseAll();
      } else child.lines.push(line);
    });
    proc.stderr!.on('data', (chunk) => {
      child.stderr += chunk;
    });
    children.push(child);
  }
  const timer = setTimeout(() => {
    for (const { proc } of children) if (proc.exitCode === null) proc.kill('SIGKILL');
  }, timeoutMs);
  try {
    const early = Promise.all(children.map((c) => c.exited)).then(() => {
      throw new Error('children exited before all were ready');
    });
    await Promise.race([allReady, early]).catch(() => {});
    if (ready === argsList.length) for (const { proc } of children) proc.stdin!.end('go\n');
    const codes = await Promise.all(children.map((c) => c.exited));
    const failed = codes.map((code, i) => ({ code, child: children[i]! })).filter(({ code }) => code !== 0);
    if (failed.length) {
      const first = failed[0]!;
      throw new Error(
        `${failed.length}/${children.length} children of ${basename(script)} failed (first: exit ${first.code}):\n${first.child.stderr}`,
      );
    }
    return children.map((c) => c.lines.at(-1) ?? '');
  } finally {
    clearTimeout(timer);
  }
}
