/**
 * netctl-ipam: netctl's IPAM as a CNI IPAM plugin (SPEC.md section 4,
 * "Plugin Delegation"), for other plugins' `ipam` section — the reference
 * bridge, ptp, macvlan — in place of host-local:
 *
 *   "ipam": { "type": "netctl-ipam", "subnet": "10.22.0.0/24",
 *             "gateway": "10.22.0.1", "routes": [{ "dst": "0.0.0.0/0" }] }
 *
 * The subnet is a pool of netctl's IPAM (owner `cni-ipam:<network name>`),
 * made on first use; each attachment's address is owned by
 * `cni:<containerId>/<ifname>`, so DEL needs nothing but the attachment, a
 * repeated ADD gets the same address, and GC frees whatever a runtime lost.
 * Allocation is one CAS transaction on the store, so any number of
 * concurrent calls (processes, or the daemon) never hand out an address
 * twice. The result has no interfaces (SPEC.md "Delegated plugins (IPAM)").
 */
import { z } from 'zod';
import { familyOf, parseSubnet } from '../address.js';
import { cidrSchema, ipSchema } from '../core/schemas.js';
import { Errors, isCode } from '../errors.js';
import type { Ipam, PoolInfo } from '../ipam/ipam.js';
import { LOCAL_SPACE } from '../ipam/store.js';
import { checkCniArgs, requestedIps, staticIp, validAttachments } from './args.js';
import { prevResultOf } from './result.js';
import { type CmdArgs, CniCode, CniError, type Handlers, invalidConfig, storeUnavailable } from './skel.js';
import { baseConfigSchema, CURRENT_VERSION, type Result } from './types.js';

const rangeSchema = z.strictObject({
  subnet: cidrSchema,
  gateway: ipSchema.optional(),
  /** Dynamic allocation draws only from this part of the subnet. */
  ipRange: cidrSchema.optional(),
});

export const netctlIpamConfigSchema = baseConfigSchema.extend({
  ipam: z.looseObject({
    type: z.string(),
    subnet: cidrSchema.optional(),
    gateway: ipSchema.optional(),
    ipRange: cidrSchema.optional(),
    /** Several subnets (one IPv4 and one IPv6, say): an address from each. */
    subnets: z.array(rangeSchema).min(1).max(8).optional(),
    routes: z.array(z.looseObject({ dst: cidrSchema, gw: ipSchema.optional() })).optional(),
    dns: z
      .looseObject({
        nameservers: z.array(z.string()).optional(),
        domain: z.string().optional(),
        search: z.array(z.string()).optional(),
        options: z.array(z.string()).optional(),
      })
      .optional(),
  }),
});
type IpamConfig = z.output<typeof netctlIpamConfigSchema>;
type Range = z.output<typeof rangeSchema>;

function parseConfig(args: CmdArgs): { conf: IpamConfig; ranges: Range[] } {
  const parsed = netctlIpamConfigSchema.safeParse(args.config, { reportInput: true });
  if (!parsed.success) throw invalidConfig(parsed.error.issues);
  const conf = parsed.data;
  const { ipam } = conf;
  const ranges =
    ipam.subnets ??
    (ipam.subnet
      ? [
          {
            subnet: ipam.subnet,
            ...(ipam.gateway ? { gateway: ipam.gateway } : {}),
            ...(ipam.ipRange ? { ipRange: ipam.ipRange } : {}),
          },
        ]
      : undefined);
  if (!ranges) throw new CniError(CniCode.INVALID_CONFIG, 'ipam.subnet (or ipam.subnets) is required');
  return { conf, ranges };
}

/** Who holds an attachment's addresses: the attachment itself (neither part can contain '/'). */
export const attachmentOwner = (containerId: string, ifname: string) => `cni:${containerId}/${ifname}`;

function parseOwner(owner: string): { containerId: string; ifname: string } | undefined {
  if (!owner.startsWith('cni:')) return undefined;
  const slash = owner.lastIndexOf('/');
  if (slash < 0) return undefined;
  return { containerId: owner.slice('cni:'.length, slash), ifname: owner.slice(slash + 1) };
}

const poolOwner = (conf: IpamConfig) => `cni-ipam:${conf.name}`;

/** The pool for one range, if it exists; it must be this network's, not someone else's subnet. */
async function findPool(ipam: Ipam, conf: IpamConfig, subnet: string): Promise<PoolInfo | undefined> {
  const canonical = parseSubnet(subnet).cidr;
  const pool = (await ipam.listPools(LOCAL_SPACE)).find((p) => p.subnet === canonical);
  if (pool && pool.owner !== poolOwner(conf)) {
    throw new CniError(
      CniCode.INVALID_CONFIG,
      `subnet ${canonical} is already a netctl pool of ${pool.owner ?? 'someone else'}`,
      `netctl-ipam keeps its own pool per network name (${poolOwner(conf)}): give it a subnet of its own`,
    );
  }
  return pool;
}

/**
 * Find or make the pool (`made`: this call made it); concurrent first ADDs
 * race on its creation, and the losers use the winner's.
 */
async function ensurePool(
  ipam: Ipam,
  conf: IpamConfig,
  range: Range,
): Promise<{ pool: PoolInfo; made: boolean }> {
  for (let attempt = 0; ; attempt++) {
    const found = await findPool(ipam, conf, range.subnet);
    if (found) return { pool: found, made: false };
    try {
      const pool = await ipam.requestPool({
        space: LOCAL_SPACE,
        subnet: range.subnet,
        ...(range.ipRange ? { ipRange: range.ipRange } : {}),
        ...(range.gateway ? { gateway: range.gateway } : {}),
        owner: poolOwner(conf),
      });
      return { pool, made: true };
    } catch (err) {
      if (!isCode(err, Errors.PoolOverlap) || attempt >= 3) throw err;
    }
  }
}

/** CNI_ARGS keys netctl-ipam reads. */
const KNOWN_ARGS = new Set(['IP', 'IgnoreUnknown']);

/** The static address asked for in each family (the last one given, where there are two). */
function staticAddresses(conf: IpamConfig, args: CmdArgs): Map<4 | 6, string> {
  checkCniArgs(args.argsMap, KNOWN_ARGS);
  const out = new Map<4 | 6, string>();
  for (const text of requestedIps(conf, args.argsMap)) {
    const ip = staticIp(text);
    out.set(familyOf(ip), ip);
  }
  return out;
}

/** Where the verbs find netctl's IPAM: the daemon's, or one on the store opened for this call. */
interface IpamBackend {
  ipam(): Promise<Ipam>;
}

/**
 * An address for owner in each range's pool (made on first use): the one it
 * holds already (a repeated ADD), the static one asked for, or the next
 * free. A refused ADD changes nothing: the addresses it took go back, and
 * the pools it made (unless another ADD has taken an address there meanwhile).
 */
async function allocate(
  ipam: Ipam,
  conf: IpamConfig,
  ranges: Range[],
  owner: string,
  wanted: Map<4 | 6, string>,
): Promise<NonNullable<Result['ips']>> {
  const held = await ipam.allocationsOf(owner);
  const ips: NonNullable<Result['ips']> = [];
  const madePools: string[] = [];
  const taken: { poolId: string; address: string }[] = [];
  try {
    for (const range of ranges) {
      const { pool, made } = await ensurePool(ipam, conf, range);
      if (made) madePools.push(pool.poolId);
      const wantedHere = wanted.get(pool.family);
      const prefix = pool.subnet.slice(pool.subnet.indexOf('/') + 1);
      let address = held.find((a) => a.poolId === pool.poolId)?.address;
      if (!address) {
        const allocation = await ipam.requestAddress(pool.poolId, {
          owner,
          ...(wantedHere ? { address: wantedHere } : {}),
        });
        address = allocation.address;
        taken.push({ poolId: pool.poolId, address });
      }
      ips.push({ address: `${address}/${prefix}`, ...(pool.gateway ? { gateway: pool.gateway } : {}) });
    }
  } catch (err) {
    for (const t of taken) await ipam.releaseAddress(t.poolId, t.address).catch(() => false);
    for (const poolId of madePools) await ipam.releasePool(poolId).catch(() => false);
    throw err;
  }
  return ips;
}

/** ADD: the attachment's addresses, with the configuration's routes and DNS. */
async function add(backend: IpamBackend, args: CmdArgs): Promise<Result> {
  const { conf, ranges } = parseConfig(args);
  const wanted = staticAddresses(conf, args);
  const ipam = await backend.ipam();
  const owner = attachmentOwner(args.containerId, args.ifname);
  const ips = await allocate(ipam, conf, ranges, owner, wanted);
  const result: Result = { cniVersion: CURRENT_VERSION, ips };
  if (conf.ipam.routes?.length)
    result.routes = conf.ipam.routes.map((r) => ({ dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) }));
  if (conf.ipam.dns && Object.keys(conf.ipam.dns).length) result.dns = conf.ipam.dns;
  return result;
}

/** DEL: the attachment's addresses go back. Idempotent. */
async function del(backend: IpamBackend, args: CmdArgs): Promise<void> {
  const { conf, ranges } = parseConfig(args);
  const ipam = await backend.ipam();
  const held = await ipam.allocationsOf(attachmentOwner(args.containerId, args.ifname));
  for (const range of ranges) {
    const pool = await findPool(ipam, conf, range.subnet);
    if (!pool) continue;
    for (const a of held.filter((h) => h.poolId === pool.poolId))
      await ipam.releaseAddress(pool.poolId, a.address);
  }
}

/** CHECK: an address reserved in every range, each listed in prevResult. */
async function check(backend: IpamBackend, args: CmdArgs): Promise<void> {
  const { conf, ranges } = parseConfig(args);
  const prev = prevResultOf(conf);
  const ipam = await backend.ipam();
  const held = await ipam.allocationsOf(attachmentOwner(args.containerId, args.ifname));
  const problems: string[] = [];
  for (const range of ranges) {
    const pool = await findPool(ipam, conf, range.subnet);
    const have = pool && held.find((a) => a.poolId === pool.poolId);
    if (!pool || !have) {
      problems.push(`no address in ${range.subnet} is reserved for ${args.containerId}/${args.ifname}`);
      continue;
    }
    const listed = prev?.ips?.some((ip) => ip.address.split('/')[0] === have.address);
    if (prev && !listed) problems.push(`prevResult lacks the reserved address ${have.address}`);
  }
  if (problems.length) {
    throw new CniError(
      CniCode.CHECK_FAILED,
      `netctl-ipam: attachment ${args.containerId}/${args.ifname} is not as ADD left it`,
      problems.join(', '),
    );
  }
}

/** STATUS: the store answers. */
async function status(backend: IpamBackend, args: CmdArgs): Promise<void> {
  parseConfig(args);
  try {
    await (await backend.ipam()).listPools(LOCAL_SPACE);
  } catch (err) {
    throw storeUnavailable("netctl-ipam cannot allocate: netctl's state store is unavailable", err);
  }
}

/** GC: release the ranges' attachment addresses whose attachment is not in cni.dev/valid-attachments. */
async function gc(backend: IpamBackend, args: CmdArgs): Promise<void> {
  const { conf, ranges } = parseConfig(args);
  const keep = new Set(validAttachments(conf).map((a) => attachmentOwner(a.containerID, a.ifname)));
  const ipam = await backend.ipam();
  const failures: string[] = [];
  for (const range of ranges) {
    const pool = await findPool(ipam, conf, range.subnet);
    if (!pool) continue;
    for (const a of await ipam.listAllocations(pool.poolId)) {
      if (!parseOwner(a.owner) || keep.has(a.owner)) continue;
      try {
        await ipam.releaseAddress(pool.poolId, a.address);
      } catch (err) {
        failures.push(`${a.address} (${a.owner}): ${(err as Error).message}`);
      }
    }
  }
  if (failures.length)
    throw new CniError(CniCode.INTERNAL, 'GC could not release every stale address', failures.join('; '));
}

export function netctlIpamHandlers(backend: IpamBackend): Handlers {
  return {
    add: (args) => add(backend, args),
    del: (args) => del(backend, args),
    check: (args) => check(backend, args),
    status: (args) => status(backend, args),
    gc: (args) => gc(backend, args),
  };
}
