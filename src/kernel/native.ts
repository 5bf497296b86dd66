import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

/** The C++ addon in native/: only what Node cannot do itself. */
export interface NativeAddon {
  /** Create a netns pinned by a bind mount at path, like `ip netns add`. */
  createNamedNetns(path: string): void;
  /** Create a netns held only by the returned fd. */
  createAnonymousNetns(): number;
  /** Pin the netns behind source with a bind mount at path, like `ip netns attach`. */
  pinNetns(source: string, path: string): void;
  /** Unmount and remove a pinned netns; throws ENOENT if absent. */
  deleteNamedNetns(path: string): void;
  /** setns(fd, CLONE_NEWNET) on the calling thread. */
  setNetns(fd: number): void;
  /** ioctl(fd, NS_GET_NSTYPE). */
  namespaceType(fd: number): number;
  /**
   * RTM_DELLINK from a short-lived thread in the netns: the callback gets
   * (null, 'unregistered') as soon as the link is gone, then
   * (error | null, 'done') with the kernel's answer.
   */
  deleteLink(
    netnsFd: number,
    ifindex: number,
    callback: (err: NativeError | null, phase: 'unregistered' | 'done') => void,
  ): void;
  readonly CLONE_NEWNET: number;
}

export interface NativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

const addonPath = join(packageRoot, 'native', 'build', 'Release', 'netctl_native.node');
if (!existsSync(addonPath))
  throw new Error(`native addon ${addonPath} not found: run \`npm run build\` first`);

export const native = createRequire(import.meta.url)(addonPath) as NativeAddon;
