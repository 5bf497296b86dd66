import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The C++ addon in native/: only what Node cannot do itself. */
export interface NativeAddon {
  /** Create a netns pinned by a bind mount at path, like `ip netns add`. */
  createNamedNetns(path: string): void;
  /** Create a netns held only by the returned fd. */
  createAnonymousNetns(): number;
  /** Unmount and remove a pinned netns; throws ENOENT if absent. */
  deleteNamedNetns(path: string): void;
  /** setns(fd, CLONE_NEWNET) on the calling thread. */
  setNetns(fd: number): void;
  /** ioctl(fd, NS_GET_NSTYPE). */
  namespaceType(fd: number): number;
  readonly CLONE_NEWNET: number;
}

const ADDON = join('native', 'build', 'Release', 'netctl_native.node');

// The same module runs from src/ (vitest) and dist/src/ (built), so look
// upwards for the package root rather than hard-coding a depth.
function findAddon(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, ADDON);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) {
      throw new Error(`native addon ${ADDON} not found: run \`npm run build\` first`);
    }
  }
}

export const native = createRequire(import.meta.url)(findAddon()) as NativeAddon;
