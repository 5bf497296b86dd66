/**
 * The network configuration list `netctl cni install` writes for a netctl
 * network (SPEC.md section 1): one plugin, netctl-cni, naming the network
 * and declaring the capabilities it takes from the runtime (CONVENTIONS.md).
 * The list's name is the network's, which is the name runtimes know it by
 * (`podman run --network NAME`).
 */
import type { CniVersion } from './types.js';

export const CAPABILITIES = { portMappings: true, ips: true, mac: true } as const;

/** The conflist for a network; 1.0.0 by default, which podman 4 and containerd 1.6+ read. */
export function conflistFor(network: string, cniVersion: CniVersion = '1.0.0'): Record<string, unknown> {
  return {
    cniVersion,
    name: network,
    plugins: [{ type: 'netctl-cni', network, capabilities: { ...CAPABILITIES } }],
  };
}

/** `<priority>-<network>.conflist`: runtimes read the directory in lexical order. */
export function conflistFileName(network: string, priority: number): string {
  return `${String(priority).padStart(2, '0')}-${network}.conflist`;
}
