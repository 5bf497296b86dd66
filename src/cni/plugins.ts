/**
 * netctl's two CNI plugins by name, and what they run against: the
 * daemon's controller (src/server/cni.ts) or one opened for this call
 * (main.ts). The shim names the plugin after the name it was executed as
 * (argv[0]: netctl-cni, or a netctl-ipam symlink to it).
 */
import type { NetctlApi } from '../controller/api.js';
import type { Ipam } from '../ipam/ipam.js';
import { type CniIo, dispatch, type Handlers } from './skel.js';

export const PLUGIN_NAMES = ['netctl-cni', 'netctl-ipam'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

export function isPluginName(name: unknown): name is PluginName {
  return typeof name === 'string' && (PLUGIN_NAMES as readonly string[]).includes(name);
}

/** Opened only when a verb needs it: VERSION never touches the store. */
export interface CniBackend {
  api(): Promise<NetctlApi>;
  ipam(): Promise<Ipam>;
}

/** Run one call of plugin `name`; resolves to its exit status (see dispatch). */
export function runPlugin(name: PluginName, io: CniIo, backend: CniBackend): Promise<number> {
  // Loaded on first use: a VERSION call in a process of its own stays quick.
  const handlers = async (): Promise<Handlers> =>
    name === 'netctl-ipam'
      ? (await import('./ipam.js')).netctlIpamHandlers(backend)
      : (await import('./plugin.js')).netctlCniHandlers(backend);
  return dispatch(io, handlers);
}
