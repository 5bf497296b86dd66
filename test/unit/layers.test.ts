/**
 * The layers of src/ as .dependency-cruiser.cjs writes them down: a
 * runtime import circle, or an import across a layer the wrong way, fails
 * here with the rule and the import that broke it.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';

const DEPCRUISE = resolve('node_modules/.bin/depcruise');

/** depcruise's report on dir's src/ under the project's rules. */
function cruise(dir: string): string {
  try {
    return execFileSync(DEPCRUISE, ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    return `${(err as { stdout?: string }).stdout ?? ''}${(err as Error).message}`;
  }
}

it('src/ keeps its layers: no runtime import circle, no import the wrong way', () => {
  // The err reporter prints nothing but a summary line when all rules hold.
  expect(cruise(process.cwd())).not.toMatch(/error|warn/);
}, 60_000);

it('the rules refuse a wrong import: an entry point reaching the kernel, the controller or a driver', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-layers-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['.dependency-cruiser.cjs', 'tsconfig.json']) copyFileSync(f, join(dir, f));
  const files: Record<string, string> = {
    'src/kernel/index.ts': 'export const k = 1;\n',
    'src/controller/api.ts': 'export interface Api { k: number }\n',
    'src/controller/controller.ts': 'export class Controller {}\n',
    'src/drivers/bridge/driver.ts': 'export const d = 1;\n',
    'src/cli/ok.ts': "import type { Api } from '../controller/api.js';\nexport const a: Api = { k: 1 };\n",
    'src/cli/bad.ts': "import { k } from '../kernel/index.js';\nexport const x = k;\n",
    'src/server/bad.ts':
      "import type { Controller } from '../controller/controller.js';\nexport type C = Controller;\n",
    'src/cni/bad.ts': "import { d } from '../drivers/bridge/driver.js';\nexport const y = d;\n",
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const report = cruise(dir);
  for (const bad of ['src/cli/bad.ts', 'src/server/bad.ts', 'src/cni/bad.ts'])
    expect(report).toMatch(new RegExp(`entry-points-speak-the-api: ${bad}`));
  expect(report).not.toMatch(/src\/cli\/ok\.ts/);
}, 60_000);
