/**
 * One CNI plugin call exec'd as a runtime makes it (libcni's invoke): the
 * binary by path (argv[0] = that path), the CNI_* parameters in the
 * environment, the configuration on stdin, the result or error JSON on
 * stdout, the exit status. Optionally from inside a network namespace (a
 * simulated host's, bench/lib/cluster.ts), as that host's runtime would.
 *
 * Free of test hooks, unlike fixture.ts (whose daemon-fixture import
 * removes every netns after each test): a file with one cluster for all its
 * tests can use it.
 */
import { join } from 'node:path';
import { packageRoot } from '../../../src/paths.js';
import { spawnCollected } from '../../helpers/spawned.js';

export const SHIM = join(packageRoot, 'native', 'build', 'Release', 'netctl-cni');
export const REFERENCE_PLUGINS = '/usr/lib/cni';

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
}

export interface CniOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as JSON, when there is any. */
  json: Record<string, unknown> | undefined;
  ms: number;
}

/** What a runtime gives every plugin it execs besides the call's CNI_* variables. */
export interface PluginHost {
  /** CNI_PATH. */
  cniPath: string;
  /** Environment every plugin call gets besides CNI_* (nothing else is inherited). */
  env: Record<string, string>;
  /** The netns the plugin runs in (nsenter --net); default: the caller's. */
  netns?: string;
}

/** Exec plugin (a path) as a runtime does, with config on stdin. */
export async function execPlugin(
  host: PluginHost,
  plugin: string,
  call: CniCall,
  config: unknown,
  extraEnv: Record<string, string> = {},
): Promise<CniOutcome> {
  const env: Record<string, string> = {
    ...host.env,
    CNI_COMMAND: call.command,
    CNI_PATH: host.cniPath,
    ...(call.containerId !== undefined ? { CNI_CONTAINERID: call.containerId } : {}),
    ...(call.netns !== undefined ? { CNI_NETNS: call.netns } : {}),
    ...(call.ifname !== undefined ? { CNI_IFNAME: call.ifname } : {}),
    ...(call.args !== undefined ? { CNI_ARGS: call.args } : {}),
    ...extraEnv,
  };
  const input = typeof config === 'string' ? config : JSON.stringify(config);
  // nsenter execs the plugin by the path given, so argv[0] is still that path.
  const r = host.netns
    ? await spawnCollected('nsenter', [`--net=${host.netns}`, '--', plugin], { env, input })
    : await spawnCollected(plugin, [], { env, input });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined; // the test looks at stdout itself
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json, ms: r.ms };
}
