/**
 * Where the package lives. The same modules run from src/ (tests) and from
 * dist/src/ (built), so find the root by looking upwards for our
 * package.json rather than hard-coding a depth.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
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

/**
 * netctl's run dir: $NETCTL_RUN_DIR, else /run/netctl — its own for each of
 * several daemons on one machine (simulated hosts in netns, docs/overlay.md).
 */
export const RUN_DIR = runDir(process.env.NETCTL_RUN_DIR);

function runDir(fromEnv: string | undefined): string {
  if (fromEnv === undefined || fromEnv === '') return '/run/netctl';
  if (!isAbsolute(fromEnv))
    throw new Error(`NETCTL_RUN_DIR must be an absolute path, got ${JSON.stringify(fromEnv)}`);
  return fromEnv;
}

/** Each sandbox's run dir (<run dir>/sandboxes/<id>): its owner tag and its /etc files. */
export const SANDBOX_RUN_DIR = join(RUN_DIR, 'sandboxes');

export const sandboxRunDir = (sandboxId: string) => join(SANDBOX_RUN_DIR, sandboxId);
export const sandboxEtcDir = (sandboxId: string) => join(sandboxRunDir(sandboxId), 'etc');
