/**
 * The layers of src/ as .dependency-cruiser.cjs writes them down: a
 * runtime import circle, or an import across a layer the wrong way, fails
 * here with the rule and the import that broke it.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

it('src/ keeps its layers: no runtime import circle, no import the wrong way', () => {
  let report: string;
  try {
    report = execFileSync(
      'node_modules/.bin/depcruise',
      ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (err) {
    report = `${(err as { stdout?: string }).stdout ?? ''}${(err as Error).message}`;
  }
  // The err reporter prints nothing but a summary line when all rules hold.
  expect(report).not.toMatch(/error|warn/);
}, 60_000);
