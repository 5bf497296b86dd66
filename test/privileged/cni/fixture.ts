/**
 * Running CNI plugins the way a runtime does (libcni's invoke): exec the
 * binary by path (argv[0] = that path), the CNI_* parameters in the
 * environment, the configuration on stdin, the result or error JSON on
 * stdout, the exit status. Ours is the netctl-cni shim, linked into a
 * plugin dir as netctl-cni and netctl-ipam (as `netctl cni install` does);
 * it talks to a real daemon (daemon-fixture.ts: own socket, own state dir)
 * or, with no daemon on its socket, runs the plugin in-process.
 *
 * The exec itself is plugin-exec.ts's, free of this file's hooks.
 *
 * Everything a test starts and makes is removed by daemon-fixture's
 * afterEach (processes by PID, netns, links, rules, temp dirs).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns } from '../../../src/kernel/index.js';
import { testDir } from '../controller/daemon-fixture.js';
import {
  type CniCall,
  type CniOutcome,
  execPlugin,
  type PluginHost,
  REFERENCE_PLUGINS,
  SHIM,
} from './plugin-exec.js';

export {
  type CniCall,
  type CniOutcome,
  execPlugin,
  type PluginHost,
  REFERENCE_PLUGINS,
  SHIM,
} from './plugin-exec.js';

/** A plugin dir with our two plugins in it, and the state our plugins and the daemon share. */
export interface CniHost extends PluginHost {
  dir: string;
  /** The daemon socket the shim tries (Daemon.start(dir) listens there). */
  socket: string;
  stateDir: string;
  binDir: string;
}

export function cniHost(): CniHost {
  const dir = testDir();
  const binDir = join(dir, 'bin');
  mkdirSync(binDir);
  for (const name of ['netctl-cni', 'netctl-ipam']) symlinkSync(SHIM, join(binDir, name));
  const socket = join(dir, 'api.sock');
  const stateDir = join(dir, 'state');
  return {
    dir,
    socket,
    stateDir,
    binDir,
    cniPath: `${binDir}:${REFERENCE_PLUGINS}`,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NETCTL_SOCKET: socket,
      NETCTL_STATE_DIR: stateDir,
      NETCTL_LOG_LEVEL: 'warn',
    },
  };
}

/** Our plugin, by its installed name (netctl-cni or netctl-ipam). */
export const ours = (host: CniHost, name: 'netctl-cni' | 'netctl-ipam' = 'netctl-cni') =>
  join(host.binDir, name);
export const reference = (name: string) => join(REFERENCE_PLUGINS, name);

/**
 * Run a conflist's plugins as libcni does: ADD in order, each given the
 * previous result as prevResult; DEL in reverse, each given the ADD's final
 * result; CHECK in order with the final result. The configuration each
 * plugin gets is its own object plus cniVersion, name and the runtimeConfig
 * of the capabilities it declares (SPEC.md section 3).
 */
export async function runConflist(
  host: CniHost,
  conflist: { cniVersion: string; name: string; plugins: Record<string, unknown>[] },
  call: CniCall,
  options: {
    capabilityArgs?: Record<string, unknown>;
    prevResult?: unknown;
    pluginPath?: (type: string) => string;
  } = {},
): Promise<{ result: Record<string, unknown> | undefined; failed?: CniOutcome }> {
  const pathOf =
    options.pluginPath ??
    ((type: string) => (type.startsWith('netctl-') ? ours(host, type as 'netctl-cni') : reference(type)));
  const order = call.command === 'DEL' ? [...conflist.plugins].reverse() : conflist.plugins;
  let prev: unknown = call.command === 'ADD' ? undefined : options.prevResult;
  for (const plugin of order) {
    const { capabilities, ...rest } = plugin as { capabilities?: Record<string, boolean> };
    const runtimeConfig = Object.fromEntries(
      Object.entries(options.capabilityArgs ?? {}).filter(([k]) => capabilities?.[k]),
    );
    const config = {
      ...rest,
      cniVersion: conflist.cniVersion,
      name: conflist.name,
      ...(Object.keys(runtimeConfig).length ? { runtimeConfig } : {}),
      ...(prev !== undefined ? { prevResult: prev } : {}),
    };
    const outcome = await execPlugin(host, pathOf(plugin.type as string), call, config);
    if (outcome.code !== 0) return { result: undefined, failed: outcome };
    if (call.command === 'ADD') prev = outcome.json;
  }
  return { result: call.command === 'ADD' ? (prev as Record<string, unknown>) : undefined };
}

/**
 * "Outside": a netns wired to ours (the host) by a veth, hostIfname here
 * with 192.0.2.1/24, eth0 there with 192.0.2.2/24. Returns its path.
 */
export function outsideNetns(name: string, hostIfname: string): string {
  const path = createNetns(name);
  const inside = (args: string[]) => execFileSync('nsenter', [`--net=${path}`, '--', 'ip', ...args]);
  execFileSync('ip', ['link', 'add', hostIfname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
  execFileSync('ip', ['addr', 'add', '192.0.2.1/24', 'dev', hostIfname]);
  execFileSync('ip', ['link', 'set', hostIfname, 'up']);
  inside(['addr', 'add', '192.0.2.2/24', 'dev', 'eth0']);
  inside(['link', 'set', 'eth0', 'up']);
  return path;
}
