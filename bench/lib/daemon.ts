/**
 * A real `netctl daemon`, started as a user starts it (`node bin/netctl.js
 * daemon --socket PATH`) in the benchmark's own (isolated) namespace, with
 * its state in a directory of the caller's choosing, driven over its socket
 * with the CLI's HTTP client. Being a separate process, its memory can be
 * read from /proc/PID/status.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpApi } from '../../src/cli/client.js';
import { packageRoot } from '../../src/paths.js';

/** How long the daemon may take to answer its first request, and to exit on SIGTERM. */
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
/** The daemon's log kept for error messages: its last lines only. */
const LOG_TAIL = 65_536;

export interface Memory {
  /** Resident set size now, MiB (VmRSS = RssAnon + RssFile + RssShmem). */
  rssMiB: number;
  /** Anonymous memory resident: the JS heap, native allocations, stacks. */
  anonMiB: number;
  /** File pages mapped and resident: the node binary and libraries, the LMDB file. */
  fileMiB: number;
  /** Peak resident set size, MiB (VmHWM). */
  hwmMiB: number;
}

export interface Daemon {
  pid: number;
  socket: string;
  api: HttpApi;
  /** VmRSS and VmHWM of the daemon process. */
  memory(): Memory;
  /** The last lines the daemon printed (stdout and stderr). */
  log(): string;
  /** SIGTERM, wait for the exit (SIGKILL after a timeout); resolves with how it ended. */
  stop(): Promise<string>;
  /** SIGKILL (a crash, `kill -9`), and wait for the exit. */
  kill(): Promise<string>;
  /** Send signal now and return (SIGSTOP to freeze it, SIGKILL without waiting); no-op once it has exited. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with how it ended (`exit 0`, `SIGKILL`) once it has exited. */
  readonly exited: Promise<string>;
}

export interface DaemonOptions {
  /** The daemon's NODE_OPTIONS (and only the daemon's). */
  nodeOptions?: string;
  /** Run it through `nsenter` with these arguments (e.g. inside a dockerd's namespaces). */
  nsenter?: string[];
  /** More `netctl daemon` arguments (`--docker-plugins DIR`). */
  args?: string[];
  /** Its API socket; default stateDir/api.sock. */
  socket?: string;
  /** More environment for the daemon (NETCTL_RUN_DIR, NETCTL_LOG_LEVEL), over the caller's. */
  env?: Record<string, string>;
}

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/**
 * CPU time a process has used so far, user and system, in ms at 10 ms
 * resolution: what requests cost the daemon, whatever else the machine runs.
 */
export function processCpuMs(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces) start at state, field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1000) / USER_HZ, system: (Number(fields[12]) * 1000) / USER_HZ };
}

/** VmRSS/VmHWM of a process from /proc/PID/status (values are in kB there). */
export function processMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return {
    rssMiB: kb('VmRSS') / 1024,
    anonMiB: kb('RssAnon') / 1024,
    fileMiB: kb('RssFile') / 1024,
    hwmMiB: kb('VmHWM') / 1024,
  };
}

function exited(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? `exit ${child.exitCode}`);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
}

/**
 * Start `netctl daemon` with NETCTL_STATE_DIR=stateDir and its API socket in
 * stateDir (or options.socket), and wait until it answers GET /v1/health. A
 * string for options is the daemon's NODE_OPTIONS.
 */
export async function startDaemon(stateDir: string, options: string | DaemonOptions = {}): Promise<Daemon> {
  const {
    nodeOptions,
    nsenter,
    args = [],
    socket = join(stateDir, 'api.sock'),
    env: extraEnv = {},
  } = typeof options === 'string' ? { nodeOptions: options } : options;
  const { NODE_OPTIONS: _ours, ...env } = process.env;
  // The executable itself, as a user runs it: its #! line sets the daemon's V8 flags.
  const argv = [join(packageRoot, 'bin/netctl.js'), 'daemon', '--socket', socket, ...args];
  // nsenter execs (no pid namespace to fork into): the child's pid is the daemon's.
  const [file, fileArgs] = nsenter ? ['nsenter', [...nsenter, ...argv]] : [argv[0] as string, argv.slice(1)];
  const child = spawn(file, fileArgs, {
    env: {
      ...env,
      ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
      NETCTL_STATE_DIR: stateDir,
      NETCTL_SOCKET: socket,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`netctl daemon did not start: ${err.message}`);
  }
  const done = exited(child);
  const api = new HttpApi(socket);

  let stopped: Promise<string> | undefined;
  const running = () => child.exitCode === null && child.signalCode === null;
  const daemon: Daemon = {
    pid,
    socket,
    api,
    exited: done,
    signal(signal) {
      if (running()) child.kill(signal);
    },
    memory: () => processMemory(pid),
    log: () => tail,
    kill() {
      if (running()) child.kill('SIGKILL');
      return done;
    },
    stop() {
      stopped ??= (async () => {
        if (running()) child.kill('SIGTERM');
        const timeout = new Promise<undefined>((resolve) =>
          setTimeout(() => resolve(undefined), STOP_TIMEOUT_MS).unref(),
        );
        const how = await Promise.race([done, timeout]);
        if (how !== undefined) return how;
        child.kill('SIGKILL');
        return `killed after ${STOP_TIMEOUT_MS / 1000} s without exiting on SIGTERM: ${await done}`;
      })();
      return stopped;
    },
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const state = await Promise.race([
      done.then((how) => ({ exited: how })),
      api.health().then(
        () => 'ready' as const,
        (err: unknown) => err,
      ),
    ]);
    if (state === 'ready') return daemon;
    if (typeof state === 'object' && state !== null && 'exited' in state) {
      throw new Error(`netctl daemon exited (${String(state.exited)}) before answering:\n${tail}`);
    }
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(
        `netctl daemon did not answer on ${socket} within ${START_TIMEOUT_MS / 1000} s:\n${tail}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
