/**
 * Where the package lives. The same modules run from src/ (tests) and from
 * dist/src/ (built), so find the root by looking upwards for our
 * package.json rather than hard-coding a depth.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'netctl'
    ) {
      return dir;
    }
    if (dirname(dir) === dir) throw new Error('netctl package root not found');
  }
}

export const packageRoot = findPackageRoot();

export const packageVersion = (
  JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }
).version;

/** Each sandbox's run dir (/run/netctl/sandboxes/<id>): its owner tag and its /etc files. */
export const SANDBOX_RUN_DIR = '/run/netctl/sandboxes';

export const sandboxRunDir = (sandboxId: string) => join(SANDBOX_RUN_DIR, sandboxId);
export const sandboxEtcDir = (sandboxId: string) => join(sandboxRunDir(sandboxId), 'etc');
