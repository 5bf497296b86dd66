/**
 * netctl-cni's configuration, and what a call asks for by it: the netctl
 * network (found by name, or made from the configuration's subnet) and the
 * attachment (static addresses, MAC, published ports). Pure: nothing here
 * talks to the controller.
 */
import { z } from 'zod';
import { familyOf, parsePrefix } from '../address.js';
import { BRIDGE_NAME, ENABLE_IP_MASQUERADE, MTU } from '../core/options.js';
import {
  type CreateNetworkRequest,
  cidrSchema,
  ipSchema,
  labelsSchema,
  linkNameSchema,
  nameSchema,
} from '../core/schemas.js';
import { checkCniArgs, requestedIps, staticIp } from './args.js';
import { type CmdArgs, CniCode, CniError, invalidConfig } from './skel.js';
import { baseConfigSchema } from './types.js';

/** CNI_ARGS keys netctl-cni reads (pkg/types CommonArgs plus IP and MAC, as the reference plugins). */
const KNOWN_ARGS = new Set(['IgnoreUnknown', 'IP', 'MAC']);

const poolSchema = z.strictObject({
  subnet: cidrSchema,
  gateway: ipSchema.optional(),
  ipRange: cidrSchema.optional(),
});

/** netctl-cni's configuration: the spec's fields plus how to find (or make) the netctl network. */
export const netctlCniConfigSchema = baseConfigSchema.extend({
  /** The netctl network to attach to; default: the configuration's name. */
  network: nameSchema.optional(),
  // Used only to create the network when it does not exist yet.
  subnet: cidrSchema.optional(),
  gateway: ipSchema.optional(),
  ipRange: cidrSchema.optional(),
  subnets: z.array(poolSchema).min(1).max(8).optional(),
  /** host-local's spelling of the same (`ipam.subnet`...); only netctl's own IPAM allocates. */
  ipam: z
    .looseObject({
      type: z.string().optional(),
      subnet: cidrSchema.optional(),
      gateway: ipSchema.optional(),
      ipRange: cidrSchema.optional(),
    })
    .optional(),
  internal: z.boolean().optional(),
  ipMasq: z.boolean().optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  bridge: linkNameSchema.optional(),
  /** Driver options as `netctl network create -o` takes them. */
  options: labelsSchema.optional(),
});
export type NetctlCniConfig = z.output<typeof netctlCniConfigSchema>;

export function parseConfig(args: CmdArgs): NetctlCniConfig {
  const parsed = netctlCniConfigSchema.safeParse(args.config, { reportInput: true });
  if (!parsed.success) throw invalidConfig(parsed.error.issues);
  const conf = parsed.data;
  const ipamType = conf.ipam?.type;
  if (ipamType !== undefined && ipamType !== 'netctl' && ipamType !== 'netctl-ipam') {
    throw new CniError(
      CniCode.UNSUPPORTED_FIELD,
      `unsupported field ipam.type=${JSON.stringify(ipamType)}`,
      "netctl-cni allocates addresses with netctl's own IPAM; to use netctl's IPAM under another plugin, give that plugin ipam.type netctl-ipam",
    );
  }
  return conf;
}

export const networkNameOf = (conf: NetctlCniConfig): string => conf.network ?? conf.name;

/** The pools to create the network with, from whichever spelling the configuration used. */
function poolsOf(conf: NetctlCniConfig): z.output<typeof poolSchema>[] | undefined {
  if (conf.subnets) return conf.subnets;
  const single = conf.subnet
    ? { subnet: conf.subnet, gateway: conf.gateway, ipRange: conf.ipRange }
    : conf.ipam?.subnet
      ? { subnet: conf.ipam.subnet, gateway: conf.ipam.gateway, ipRange: conf.ipam.ipRange }
      : undefined;
  if (!single) return undefined;
  return [
    {
      subnet: single.subnet,
      ...(single.gateway ? { gateway: single.gateway } : {}),
      ...(single.ipRange ? { ipRange: single.ipRange } : {}),
    },
  ];
}

/** The network a configuration asks for, as `netctl network create` would make it; undefined without a subnet. */
export function createRequestOf(conf: NetctlCniConfig): CreateNetworkRequest | undefined {
  const pools = poolsOf(conf);
  if (!pools) return undefined;
  return {
    name: networkNameOf(conf),
    driver: 'bridge',
    ipam: { config: pools },
    enableIPv6: pools.some((p) => parsePrefix(p.subnet).family === 6),
    internal: conf.internal ?? false,
    options: {
      ...(conf.options ?? {}),
      ...(conf.bridge ? { [BRIDGE_NAME]: conf.bridge } : {}),
      ...(conf.ipMasq === false ? { [ENABLE_IP_MASQUERADE]: 'false' } : {}),
      ...(conf.mtu ? { [MTU]: String(conf.mtu) } : {}),
    },
    labels: { 'netctl.cni.config': conf.name },
  };
}

/** What a caller asked for this attachment: static addresses, MAC, published ports. */
export interface AttachmentRequest {
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  portMappings: { proto: 'tcp' | 'udp' | 'sctp'; hostIp?: string; hostPort: number; containerPort: number }[];
}

/**
 * runtimeConfig (capabilities `ips`, `mac`, `portMappings`), then the
 * configuration's `args.cni`, then CNI_ARGS `IP=`/`MAC=` (CONVENTIONS.md).
 */
export function attachmentRequestOf(conf: NetctlCniConfig, args: CmdArgs): AttachmentRequest {
  checkCniArgs(args.argsMap, KNOWN_ARGS);
  const rc = conf.runtimeConfig ?? {};
  if (rc.bandwidth && Object.keys(rc.bandwidth).length) {
    throw new CniError(
      CniCode.UNSUPPORTED_FIELD,
      `unsupported field runtimeConfig.bandwidth=${JSON.stringify(rc.bandwidth)}`,
      'netctl-cni does not shape traffic: chain the reference bandwidth plugin after it',
    );
  }
  const ips = requestedIps(conf, args.argsMap);
  const out: AttachmentRequest = { portMappings: [] };
  for (const text of ips) {
    const ip = staticIp(text);
    const key = familyOf(ip) === 4 ? 'ipv4' : 'ipv6';
    if (out[key]) {
      throw new CniError(
        CniCode.UNSUPPORTED_FIELD,
        `unsupported field ips=${JSON.stringify(ips)}`,
        'netctl gives an attachment one address per family',
      );
    }
    out[key] = ip;
  }
  const mac = rc.mac ?? conf.args?.cni?.mac ?? args.argsMap.get('MAC');
  if (mac !== undefined) out.mac = mac;
  for (const p of rc.portMappings ?? []) {
    out.portMappings.push({
      proto: p.protocol,
      ...(p.hostIP ? { hostIp: p.hostIP } : {}),
      hostPort: p.hostPort,
      containerPort: p.containerPort,
    });
  }
  return out;
}
