/**
 * The system's own tools (`ip`, `bridge`, `iptables-save`, `sysctl`, ...),
 * run to look at the kernel from outside netctl's code: the thing under
 * test does not check itself. Synchronous: they answer in milliseconds, and
 * a test reads before it goes on.
 */
import { execFileSync } from 'node:child_process';

export interface RunOptions {
  /** Run inside the network namespace at this path (`nsenter --net=PATH`). */
  netns?: string;
  /**
   * Or wherever these nsenter arguments lead, e.g. `['-t', pid, '-m', '-n',
   * '--']`: a process's mount and network namespaces (a Docker host's, whose
   * named netns are bind mounts only its mount namespace holds).
   */
  nsenter?: readonly string[];
}

/** Run cmd with args (here, or where options say) and return its stdout; a failure carries its stderr. */
export function run(cmd: string, args: string[], options: RunOptions = {}): string {
  const enter = options.nsenter ?? (options.netns ? [`--net=${options.netns}`, '--'] : undefined);
  const [file, argv] = enter ? ['nsenter', [...enter, cmd, ...args]] : [cmd, args];
  return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `ip -j ARGS`, parsed; `where` is a netns path or run's options (here when absent). */
export function ipJson<T = Record<string, unknown>[]>(args: string[], where?: string | RunOptions): T {
  const options = typeof where === 'string' ? { netns: where } : (where ?? {});
  return JSON.parse(run('ip', ['-j', ...args], options) || '[]') as T;
}
