/**
 * Overlay network options: the VNI (`-o vni=N`, or Docker's
 * `com.docker.network.driver.overlay.vxlanid_list` with one id) and the MTU
 * (`-o mtu=N` or `com.docker.network.driver.mtu`), parsed once.
 */
import { z } from 'zod';
import type { Network } from '../../core/model.js';
import { MAX_VNI, MTU } from '../../core/options.js';
import { Errors } from '../../errors.js';

export const VNI = 'vni';
export const OVERLAY_MTU = 'mtu';
export const DOCKER_VXLANID_LIST = 'com.docker.network.driver.overlay.vxlanid_list';

/** VXLAN over IPv4 adds 50 bytes: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. */
export const VXLAN_OVERHEAD = 50;

const KNOWN = new Set([VNI, OVERLAY_MTU, MTU, DOCKER_VXLANID_LIST]);
const RESERVED_PREFIXES = ['com.docker.network.driver.', 'com.docker.network.bridge.'];

const vni = z.coerce.number().int().min(1).max(MAX_VNI);
const mtu = z.coerce.number().int().min(68).max(65535);
const schema = z.object({
  [VNI]: vni.optional(),
  [DOCKER_VXLANID_LIST]: vni.optional(),
  [OVERLAY_MTU]: mtu.optional(),
  [MTU]: mtu.optional(),
});

export interface OverlayOptions {
  /** Pinned VNI, if one was asked for. */
  vni: number | undefined;
  /** Explicit MTU; else the underlay's minus VXLAN_OVERHEAD. */
  mtu: number | undefined;
}

export function parseOverlayOptions(network: Pick<Network, 'options'>): OverlayOptions {
  for (const key of Object.keys(network.options)) {
    if (key === 'encrypted' || key === 'com.docker.network.driver.overlay.encrypted')
      throw new Errors.InvalidOption(key, 'encrypted overlays (IPsec) are not supported');
    if (!KNOWN.has(key) && RESERVED_PREFIXES.some((p) => key.startsWith(p)))
      throw new Errors.InvalidOption(key, 'not an overlay driver option');
  }
  const parsed = schema.safeParse(network.options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Errors.InvalidOption(String(issue?.path[0] ?? '?'), issue?.message ?? 'invalid value');
  }
  const o = parsed.data;
  if (o[VNI] !== undefined && o[DOCKER_VXLANID_LIST] !== undefined && o[VNI] !== o[DOCKER_VXLANID_LIST])
    throw new Errors.InvalidOption(VNI, `differs from ${DOCKER_VXLANID_LIST}`);
  return { vni: o[VNI] ?? o[DOCKER_VXLANID_LIST], mtu: o[OVERLAY_MTU] ?? o[MTU] };
}
