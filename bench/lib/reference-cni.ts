/**
 * The reference CNI plugins (Debian containernetworking-plugins in
 * /usr/lib/cni), exec'd the way a container runtime does: the CNI_*
 * variables in the environment, the network configuration on stdin, the
 * result on stdout (CNI spec, "Parameters" and "Execution protocol").
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { basename, join } from 'node:path';

export const CNI_PATH = '/usr/lib/cni';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

export interface CniCall {
  command: CniCommand;
  containerId: string;
  /** Netns path; may be empty for DEL (the spec makes it optional there). */
  netns: string;
  ifname: string;
}

export class CniPluginError extends Error {
  override readonly name = 'CniPluginError';
  constructor(
    readonly plugin: string,
    readonly call: CniCall,
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(`${plugin} ${call.command} ${call.containerId} failed (${exitCode ?? 'signal'}): ${output.trim()}`);
  }
}

/**
 * The reference pair the benchmarks compare against: bridge, with
 * host-local as its ipam, acting as a gateway with masquerade (as netctl's
 * networks do), host-local's state in dataDir.
 */
export function bridgeHostLocalConfig(o: { name: string; bridge: string; subnet: string; dataDir: string }) {
  return {
    cniVersion: '1.0.0',
    name: o.name,
    type: 'bridge',
    bridge: o.bridge,
    isGateway: true,
    ipMasq: true,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: o.subnet }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir: o.dataDir,
    },
  };
}

/** True when the plugin binary is there and executable. */
export function havePlugin(plugin: string): boolean {
  try {
    accessSync(join(CNI_PATH, plugin), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Exec one reference plugin with config on stdin; resolves with its stdout (the result JSON for ADD). */
export function execPlugin(plugin: string, config: object, call: CniCall): Promise<string> {
  return execCni(join(CNI_PATH, plugin), config, call);
}

export interface ExecOptions {
  /** CNI_PATH: where the plugin finds its delegates (default /usr/lib/cni). */
  cniPath?: string;
  /** More environment, as a runtime passes its own on to plugins (libcni's invoke does). */
  env?: Record<string, string>;
}

/** Exec the plugin binary at path as a runtime does; resolves with its stdout, rejects on a non-zero exit. */
export function execCni(
  path: string,
  config: object,
  call: CniCall,
  options: ExecOptions = {},
): Promise<string> {
  const plugin = basename(path);
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        ...options.env,
        CNI_COMMAND: call.command,
        CNI_CONTAINERID: call.containerId,
        CNI_NETNS: call.netns,
        CNI_IFNAME: call.ifname,
        CNI_PATH: options.cniPath ?? CNI_PATH,
      },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (err) => reject(new CniPluginError(plugin, call, null, err.message)));
    child.on('close', (code) => {
      const out = Buffer.concat(stdout).toString('utf8');
      // Plugins report errors as a JSON object on stdout (spec "Error"), not on stderr.
      if (code === 0) resolve(out);
      else reject(new CniPluginError(plugin, call, code, `${out}${Buffer.concat(stderr).toString('utf8')}`));
    });
    // A plugin that died early closes stdin; its exit status and output say why.
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(config));
  });
}
