/**
 * Flags → the controller's requests, checked with the same zod schemas the
 * API uses before anything is called.
 */
import { matchCidr, parsePrefix } from '../address.js';
import type { IpamPoolConfig } from '../core/model.js';
import {
  type ConnectRequest,
  type CreateNetworkRequest,
  connectSchema,
  createNetworkSchema,
  type portMappingSchema,
} from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors } from '../errors.js';
import { toRecord } from './flags.js';

type PortMapping = ReturnType<typeof portMappingSchema.parse>;

/** True when inner (an address or a CIDR) lies inside subnet. */
function within(subnet: string, inner: string): boolean {
  const p = parsePrefix(inner.includes('/') ? inner : `${inner}/${inner.includes(':') ? 128 : 32}`);
  const s = parsePrefix(subnet);
  return p.family === s.family && p.prefixLength >= s.prefixLength && matchCidr(p.ip, subnet);
}

/**
 * Docker's consolidateIpam (docker/cli cli/command/network/create.go): every
 * --ip-range, --gateway and --aux-address goes to the --subnet that contains
 * it (at most one range and one gateway per subnet); subnets must not
 * overlap; a range or gateway without a subnet is an error.
 */
export function consolidateIpam(
  subnets: string[],
  ranges: string[],
  gateways: string[],
  auxAddresses: [string, string][],
): IpamPoolConfig[] {
  const bad = (message: string) => new Errors.InvalidRequest(message);
  if (subnets.length < ranges.length || subnets.length < gateways.length)
    throw bad('every --ip-range or --gateway must have a corresponding --subnet');
  const pools: IpamPoolConfig[] = [];
  for (const subnet of subnets) {
    const clash = pools.find((p) => within(p.subnet, subnet) || within(subnet, p.subnet));
    if (clash)
      throw bad(
        `--subnet ${subnet} overlaps --subnet ${clash.subnet}: overlapping subnets are not supported`,
      );
    pools.push({ subnet });
  }
  const place = (flag: string, value: string, field: 'ipRange' | 'gateway') => {
    const pool = pools.find((p) => within(p.subnet, value));
    if (!pool) throw bad(`no --subnet contains ${flag} ${value}`);
    if (pool[field])
      throw bad(`cannot configure two ${flag}s (${pool[field]}, ${value}) on one subnet (${pool.subnet})`);
    pool[field] = value;
  };
  for (const range of ranges) place('--ip-range', range, 'ipRange');
  for (const gateway of gateways) place('--gateway', gateway, 'gateway');
  for (const [key, address] of auxAddresses) {
    const pool = pools.find((p) => within(p.subnet, address));
    if (!pool) throw bad(`no --subnet contains --aux-address ${key}=${address}`);
    pool.auxAddresses = { ...pool.auxAddresses, [key]: address };
  }
  return pools;
}

export interface NetworkCreateFlags {
  driver: string;
  subnet?: string[];
  gateway?: string[];
  ipRange?: string[];
  auxAddress?: [string, string][];
  ipv6?: boolean;
  internal?: boolean;
  opt?: [string, string][];
  label?: [string, string][];
}

export function networkCreateRequest(name: string, flags: NetworkCreateFlags): CreateNetworkRequest {
  const request: CreateNetworkRequest = {
    name,
    driver: flags.driver,
    ipam: {
      config: consolidateIpam(
        flags.subnet ?? [],
        flags.ipRange ?? [],
        flags.gateway ?? [],
        flags.auxAddress ?? [],
      ),
    },
    enableIPv6: flags.ipv6 ?? false,
    internal: flags.internal ?? false,
    options: toRecord(flags.opt),
    labels: toRecord(flags.label),
  };
  parseRequest(createNetworkSchema, request);
  return request;
}

export interface ConnectFlags {
  ip?: string;
  ip6?: string;
  alias?: string[];
  publish?: PortMapping[];
}

export function connectRequest(network: string, sandbox: string, flags: ConnectFlags): ConnectRequest {
  const request: ConnectRequest = {
    network,
    sandbox,
    ...(flags.ip ? { ipv4: flags.ip } : {}),
    ...(flags.ip6 ? { ipv6: flags.ip6 } : {}),
    aliases: flags.alias ?? [],
    portMappings: flags.publish ?? [],
  };
  parseRequest(connectSchema, request);
  return request;
}
