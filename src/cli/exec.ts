/**
 * Running a command in a sandbox through netctl-exec (native/exec): in the
 * foreground, passing its exit status through, or detached with its output
 * in a log file. Arguments go straight to execvp: no shell anywhere.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import type { Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';
import { sandboxEtcDir } from '../paths.js';
import type { CliContext } from './context.js';

/**
 * netctl-exec's arguments. A sandbox whose netns netctl made also gets its
 * own /etc files and hostname; one joined to someone else's netns (Docker's,
 * a CNI runtime's) is only entered.
 */
export function netctlExecArgs(sandbox: Sandbox, command: string[]): string[] {
  // A sandbox sharing another's namespace sees that one's hosts and resolv.conf, as in Docker.
  const etcOf = sandbox.ownsNetns ? sandbox.id : sandbox.netnsOf !== 'host' ? sandbox.netnsOf : undefined;
  return [
    '--netns',
    sandbox.key,
    ...(etcOf ? ['--etc', sandboxEtcDir(etcOf), '--hostname', sandbox.hostname] : []),
    '--',
    ...command,
  ];
}

function spawnFailed(ctx: CliContext, err: NodeJS.ErrnoException): Error {
  return err.code === 'ENOENT'
    ? new Errors.Internal(`${ctx.netctlExec} is missing: build it with npm run build`)
    : new Errors.Internal(`cannot start ${ctx.netctlExec}: ${err.message}`);
}

/** Exit status as a shell reports it: the code, or 128 + the signal's number. */
function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

// SIGINT from a terminal reaches the child by itself (same process group);
// we only stay alive to clean up after it. Others we pass on.
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** Run in the foreground and resolve with the command's exit status. */
export function runForeground(ctx: CliContext, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(ctx.netctlExec, args, {
      stdio: ctx.inheritStdio ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(ctx.stdout, { end: false });
    child.stderr?.pipe(ctx.stderr, { end: false });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    const ignore = () => {};
    process.on('SIGINT', ignore);
    for (const signal of FORWARDED) process.on(signal, forward);
    const done = () => {
      process.off('SIGINT', ignore);
      for (const signal of FORWARDED) process.off(signal, forward);
    };
    child.once('error', (err) => {
      done();
      reject(spawnFailed(ctx, err));
    });
    child.once('close', (code, signal) => {
      done();
      resolve(statusOf(code, signal));
    });
  });
}

/** Start detached (own session, output to logFile) and resolve with its pid once it runs. */
export function startDetached(ctx: CliContext, args: string[], logFile: string): Promise<number> {
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o755 });
  const fd = openSync(logFile, 'a', 0o640);
  return new Promise<number>((resolve, reject) => {
    const child = spawn(ctx.netctlExec, args, { detached: true, stdio: ['ignore', fd, fd] });
    child.once('error', (err) => reject(spawnFailed(ctx, err)));
    child.once('spawn', () => {
      child.unref();
      resolve(child.pid as number);
    });
  }).finally(() => closeSync(fd));
}
