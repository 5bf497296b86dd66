/**
 * Bridge network options (their keys: src/core/options.ts), parsed once
 * into a typed config.
 */
import { z } from 'zod';
import type { Network } from '../../core/model.js';
import { BRIDGE_NAME, ENABLE_ICC, ENABLE_IP_MASQUERADE, HOST_BINDING_IPV4, MTU } from '../../core/options.js';
import { linkNameSchema } from '../../core/schemas.js';
import { Errors } from '../../errors.js';

const KNOWN = new Set([BRIDGE_NAME, ENABLE_ICC, ENABLE_IP_MASQUERADE, HOST_BINDING_IPV4, MTU]);
// Docker's own option namespaces: an unknown key there is a typo, not a label.
const RESERVED_PREFIXES = ['com.docker.network.bridge.', 'com.docker.network.driver.'];

// Go's strconv.ParseBool, which Docker uses for these options.
const goBool = z
  .enum(['1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False'])
  .transform((v) => ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v));

const schema = z.object({
  [BRIDGE_NAME]: linkNameSchema.optional(),
  [ENABLE_ICC]: goBool.default(true),
  [ENABLE_IP_MASQUERADE]: goBool.default(true),
  [HOST_BINDING_IPV4]: z.ipv4().optional(),
  [MTU]: z.coerce.number().int().min(68).max(65535).optional(),
});

export interface BridgeConfig {
  bridgeName: string;
  icc: boolean;
  masquerade: boolean;
  hostBindingIpv4: string | undefined;
  mtu: number | undefined;
  internal: boolean;
}

/** Default bridge name: nc- plus the first 12 hex digits of the network id (15 characters, IFNAMSIZ-1). */
export function defaultBridgeName(networkId: string): string {
  return `nc-${networkId.slice(0, 12)}`;
}

export function parseBridgeOptions(network: Pick<Network, 'id' | 'options' | 'internal'>): BridgeConfig {
  for (const key of Object.keys(network.options)) {
    if (!KNOWN.has(key) && RESERVED_PREFIXES.some((p) => key.startsWith(p))) {
      throw new Errors.InvalidOption(key, 'not a bridge driver option');
    }
  }
  const parsed = schema.safeParse(network.options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Errors.InvalidOption(String(issue?.path[0] ?? '?'), issue?.message ?? 'invalid value');
  }
  const o = parsed.data;
  return {
    bridgeName: o[BRIDGE_NAME] ?? defaultBridgeName(network.id),
    icc: o[ENABLE_ICC],
    masquerade: o[ENABLE_IP_MASQUERADE],
    hostBindingIpv4: o[HOST_BINDING_IPV4],
    mtu: o[MTU],
    internal: network.internal,
  };
}
