/**
 * vitest globalSetup of the hostile project: gives the test files a file
 * to record their figures in (figures.ts) and prints their sum once, at
 * the end of the run, as one line of JSON.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIGURES_FILE_ENV, type Figures } from './figures.js';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-hostile-'));
  const file = join(dir, 'figures.jsonl');
  process.env[FIGURES_FILE_ENV] = file;
  return () => {
    const total: Required<Figures> = { inputs: 0, faults: 0, operations: 0, doubleGrants: 0, leaks: 0 };
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // no file recorded anything
    }
    for (const line of text.split('\n').filter(Boolean)) {
      const figures = JSON.parse(line) as Figures;
      for (const key of Object.keys(total) as (keyof Figures)[]) total[key] += figures[key] ?? 0;
    }
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`\nhostile suite figures: ${JSON.stringify({ suite: 'hostile', ...total })}\n`);
  };
}
