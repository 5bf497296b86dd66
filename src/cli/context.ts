/**
 * Everything a CLI command touches outside its arguments, injected so that
 * tests run commands in-process against a FakeApi with captured output.
 */
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { packageRoot, sandboxRunDir } from '../paths.js';
import { type Backend, type BackendOptions, openApi } from './backend.js';

export interface CliContext {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /** stdin and stderr are a terminal: questions can be asked. */
  interactive: boolean;
  color: boolean;
  env: NodeJS.ProcessEnv;
  openApi(options: BackendOptions): Promise<Backend>;
  /** native/build/Release/netctl-exec. */
  netctlExec: string;
  /** native/build/Release/netctl-cni: what `netctl cni install` links into the CNI plugin dir. */
  netctlCni: string;
  /** Per-sandbox run directory (its /etc files, the log of `run -d`). */
  sandboxDir(sandboxId: string): string;
  /** Children of `run`/`sandbox exec` share our terminal; otherwise their output is copied to stdout/stderr. */
  inheritStdio: boolean;
}

export const NETCTL_EXEC = join(packageRoot, 'native', 'build', 'Release', 'netctl-exec');
export const NETCTL_CNI = join(packageRoot, 'native', 'build', 'Release', 'netctl-cni');

export function processContext(): CliContext {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
    env: process.env,
    openApi,
    netctlExec: NETCTL_EXEC,
    netctlCni: NETCTL_CNI,
    sandboxDir: sandboxRunDir,
    inheritStdio: true,
  };
}
