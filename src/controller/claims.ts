/**
 * Claims: the exclusive things an endpoint holds, taken in the store in the
 * same transaction as the intent or record that holds them — never checked
 * first and written after, which two callers (two processes, two hosts on
 * one store) both pass:
 *
 *   members/<net>/<ep>             the endpoint is on the network (in flight or
 *                                  made): a network with members is in use
 *   claims/attach/<sb>/<net>       a sandbox joins a network once
 *   claims/ifname/<sb>/<ifname>    an interface name in a sandbox, once
 *   claims/ports/<proto>/<block>   host ports, 256 to a block: the list of
 *                                  {first, last, hostIp, owner} that touch it
 *
 * Each holds its owner (`ep:<id>`), so gc removes a claim whose owner has
 * neither a record nor an operation in flight. Writers compare the version
 * of every claim key they read or create: a KvConflictError on one of them
 * is another caller's claim landing first, answered as a conflict error or
 * retried (conflictError).
 */
import type { Endpoint, PortMapping, Protocol, Scope } from '../core/model.js';
import { Errors } from '../errors.js';
import { type JsonValue, type KvCompare, KvConflictError, type KvOp, type KvStore } from '../kv/index.js';
import { endpointOwner } from '../owners.js';
import { claimKeys, memberKey, ROOT } from './keys.js';
import { type ClaimOps, NO_CLAIMS } from './state.js';

/** Host ports picked for `-p 80` (Docker's port allocator range). */
export const EPHEMERAL_PORTS = { first: 49153, last: 60999 };

const BLOCK = 256;

/** One host-port claim as stored in its blocks. */
export interface PortClaim {
  first: number;
  last: number;
  /** Absent: every address of the host (0.0.0.0 and ::). */
  hostIp?: string;
  owner: string;
}

interface PortBlock {
  claims: PortClaim[];
}

/** Where an endpoint is attached: its network, and its sandbox and interface name when joined. */
export interface Attachment {
  networkId: string;
  /** The network's scope: a global network's members are the cluster's (keys.ts memberKey). */
  scope: Scope;
  sandboxId?: string | undefined;
  ifname?: string | undefined;
}

/**
 * The keys an attachment holds: its place on the network, and (when
 * joined) its sandbox's attachment and interface name. `join` alone: the
 * latter two, which a join takes and a leave drops.
 */
function attachmentKeys(endpointId: string, a: Attachment, part: 'all' | 'join'): string[] {
  return [
    ...(part === 'all' ? [memberKey(a.scope, a.networkId, endpointId)] : []),
    ...(a.sandboxId ? [claimKeys.attach(a.sandboxId, a.networkId)] : []),
    ...(a.sandboxId && a.ifname ? [claimKeys.ifname(a.sandboxId, a.ifname)] : []),
  ];
}

/** Take an attachment's keys: each must not exist yet. */
export function takeAttachment(endpointId: string, a: Attachment, part: 'all' | 'join' = 'all'): ClaimOps {
  const owner = endpointOwner(endpointId);
  const keys = attachmentKeys(endpointId, a, part);
  return {
    compare: keys.map((key) => ({ key, version: 0 })),
    ops: keys.map((key): KvOp => ({ type: 'put', key, value: owner })),
  };
}

/** Drop an attachment's keys (absent ones are no error). */
export function dropAttachment(endpointId: string, a: Attachment, part: 'all' | 'join' = 'all'): ClaimOps {
  return {
    compare: [],
    ops: attachmentKeys(endpointId, a, part).map((key): KvOp => ({ type: 'delete', key })),
  };
}

/** The blocks a range of ports touches. */
function blocksOf(first: number, last: number): number[] {
  const out: number[] = [];
  for (let b = Math.floor(first / BLOCK); b <= Math.floor(last / BLOCK); b++) out.push(b);
  return out;
}

/** Do two claims on one protocol take a common host port and address? */
export function clash(a: Omit<PortClaim, 'owner'>, b: Omit<PortClaim, 'owner'>): boolean {
  const sameIp = !a.hostIp || !b.hostIp || a.hostIp === b.hostIp;
  return a.first <= b.last && b.first <= a.last && sameIp;
}

/** A port request: exact ports, or (single container port) any free one in [first, last]. */
export interface PortWish {
  proto: Protocol;
  hostIp?: string | undefined;
  /** Exactly these host ports, or pick one of them. */
  first: number;
  last: number;
  pick: boolean;
  containerPort: number;
  containerPortEnd?: number | undefined;
}

/**
 * Host ports: read the blocks of the protocols asked, resolve each wish
 * against the claims there (exact: a clash is NETCTL_PORT_IN_USE; pick: the
 * first free port), and return the mappings with the block rewrites that
 * take them — replacing whatever owner held before (`previous`) — compared
 * on the versions read.
 */
export async function takePorts(
  kv: KvStore,
  endpointId: string,
  wishes: PortWish[],
  previous: PortMapping[],
  holderName: (owner: string) => Promise<string>,
): Promise<{ mappings: PortMapping[]; claim: ClaimOps }> {
  const owner = endpointOwner(endpointId);
  const blocks = await PortBlocks.read(kv, [...new Set([...wishes, ...previous].map((w) => w.proto))]);
  // Ours go first: a republish replaces them.
  for (const m of previous) blocks.drop(m.proto, m.hostPort, m.hostPortEnd ?? m.hostPort, owner);
  const mappings: PortMapping[] = [];
  for (const w of wishes) {
    const hostIp = w.hostIp ? { hostIp: w.hostIp } : {};
    const { first, last } = await blocks.resolve(w, owner, holderName);
    blocks.add(w.proto, { first, last, ...hostIp, owner });
    mappings.push({
      proto: w.proto,
      ...hostIp,
      hostPort: first,
      ...(last > first ? { hostPortEnd: last } : {}),
      containerPort: w.containerPort,
      ...(w.containerPortEnd !== undefined && w.containerPortEnd !== w.containerPort
        ? { containerPortEnd: w.containerPortEnd }
        : {}),
    });
  }
  return { mappings, claim: blockWrites(blocks.all, blocks.touched) };
}

/** The port blocks of some protocols as read (with their versions), changed in memory. */
class PortBlocks {
  /** Keys of the blocks changed. */
  readonly touched = new Set<string>();

  private constructor(readonly all: Map<string, { version: number; claims: PortClaim[] }>) {}

  static async read(kv: KvStore, protos: Protocol[]): Promise<PortBlocks> {
    const all = new Map<string, { version: number; claims: PortClaim[] }>();
    for (const proto of protos) {
      for (const entry of await kv.list(claimKeys.portsOf(proto)))
        all.set(entry.key, { version: entry.version, claims: (entry.value as unknown as PortBlock).claims });
    }
    return new PortBlocks(all);
  }

  private block(proto: Protocol, b: number) {
    const key = claimKeys.ports(proto, b);
    let block = this.all.get(key);
    if (!block) {
      block = { version: 0, claims: [] };
      this.all.set(key, block);
    }
    return { key, block };
  }

  /** Drop owner's claims in the blocks of first-last. */
  drop(proto: Protocol, first: number, last: number, owner: string): void {
    for (const b of blocksOf(first, last)) {
      const { key, block } = this.block(proto, b);
      const kept = block.claims.filter((c) => c.owner !== owner);
      if (kept.length !== block.claims.length) this.touched.add(key);
      block.claims = kept;
    }
  }

  add(proto: Protocol, claim: PortClaim): void {
    for (const b of blocksOf(claim.first, claim.last)) {
      const { key, block } = this.block(proto, b);
      block.claims = [...block.claims, claim];
      this.touched.add(key);
    }
  }

  /** The claim that clashes with wanted, if any. */
  private holder(proto: Protocol, wanted: Omit<PortClaim, 'owner'>): PortClaim | undefined {
    for (const b of blocksOf(wanted.first, wanted.last)) {
      const found = this.block(proto, b).block.claims.find((c) => clash(c, wanted));
      if (found) return found;
    }
    return undefined;
  }

  /** The ports a wish gets: the first free one (pick), or exactly the ones asked; NETCTL_PORT_IN_USE else. */
  async resolve(
    w: PortWish,
    owner: string,
    holderName: (owner: string) => Promise<string>,
  ): Promise<{ first: number; last: number }> {
    const hostIp = w.hostIp ? { hostIp: w.hostIp } : {};
    if (w.pick) {
      for (let port = w.first; port <= w.last; port++)
        if (!this.holder(w.proto, { first: port, last: port, ...hostIp })) return { first: port, last: port };
      throw new Errors.PortInUse(`${w.hostIp ?? '0.0.0.0'}:${w.first}-${w.last}/${w.proto}`, 'others');
    }
    const holder = this.holder(w.proto, { first: w.first, last: w.last, ...hostIp });
    if (holder) {
      const ports = w.last > w.first ? `${w.first}-${w.last}` : `${w.first}`;
      throw new Errors.PortInUse(
        `${w.hostIp ?? '0.0.0.0'}:${ports}/${w.proto}`,
        holder.owner === owner ? 'this endpoint' : await holderName(holder.owner),
      );
    }
    return { first: w.first, last: w.last };
  }
}

/** Drop every host port endpoint holds (the blocks its mappings touch), compared on the versions read. */
export async function dropPorts(
  kv: KvStore,
  endpoint: Pick<Endpoint, 'id' | 'portMappings'>,
): Promise<ClaimOps> {
  if (!endpoint.portMappings.length) return NO_CLAIMS;
  return (await takePorts(kv, endpoint.id, [], endpoint.portMappings, async () => '')).claim;
}

function blockWrites(
  blocks: Map<string, { version: number; claims: PortClaim[] }>,
  touched: Set<string>,
): ClaimOps {
  const compare: KvCompare[] = [];
  const ops: KvOp[] = [];
  for (const key of touched) {
    const block = blocks.get(key);
    if (!block) continue;
    compare.push({ key, version: block.version });
    ops.push(
      block.claims.length
        ? { type: 'put', key, value: { claims: block.claims } as unknown as JsonValue }
        : { type: 'delete', key },
    );
  }
  return { compare, ops };
}

/** Port requests as wishes (portRequestSchema's rules: 0 or a host range for one container port = pick). */
export function portWishes(
  requests: {
    proto: Protocol;
    hostIp?: string | undefined;
    hostPort: number;
    hostPortEnd?: number | undefined;
    containerPort: number;
    containerPortEnd?: number | undefined;
  }[],
): PortWish[] {
  return requests.map((r) => {
    const single = (r.containerPortEnd ?? r.containerPort) === r.containerPort;
    const pickRange =
      r.hostPort === 0
        ? EPHEMERAL_PORTS
        : single && r.hostPortEnd !== undefined && r.hostPortEnd > r.hostPort
          ? { first: r.hostPort, last: r.hostPortEnd }
          : undefined;
    return {
      proto: r.proto,
      hostIp: r.hostIp,
      first: pickRange?.first ?? r.hostPort,
      last: pickRange?.last ?? r.hostPortEnd ?? r.hostPort,
      pick: pickRange !== undefined,
      containerPort: r.containerPort,
      containerPortEnd: r.containerPortEnd,
    };
  });
}

/**
 * What a conflict on a claim key means to the caller: someone else holds
 * the attachment, the interface name or (on a port block) possibly the
 * port — the last is retried, since the block may have changed elsewhere.
 */
export function claimConflict(
  err: KvConflictError,
  names: { sandbox: string; network: string; ifname?: string | undefined },
): Error | undefined {
  if (err.key.startsWith(`${ROOT}/claims/attach/`))
    return new Errors.EndpointExists(names.sandbox, names.network);
  if (err.key.startsWith(`${ROOT}/claims/ifname/`))
    return new Errors.InterfaceExists(
      names.ifname ?? err.key.slice(err.key.lastIndexOf('/') + 1),
      names.sandbox,
    );
  return undefined;
}

/** Every member and claim key with its owners, for gc. */
export async function listClaims(kv: KvStore): Promise<{ key: string; owners: string[] }[]> {
  const out: { key: string; owners: string[] }[] = [];
  for (const prefix of claimKeys.all) {
    for (const entry of await kv.list(prefix)) {
      const value = entry.value as unknown;
      const owners =
        typeof value === 'string'
          ? [value]
          : ((value as Partial<PortBlock>).claims ?? []).map((c) => c.owner);
      out.push({ key: entry.key, owners: [...new Set(owners)] });
    }
  }
  return out;
}

/** Drop what owner holds in one claim key (the key, or its entries in a port block). */
export async function dropClaim(kv: KvStore, claimKey: string, owner: string): Promise<void> {
  for (;;) {
    const entry = await kv.get(claimKey);
    if (!entry) return;
    const value = entry.value as unknown;
    const op: KvOp | undefined =
      typeof value === 'string'
        ? value === owner
          ? { type: 'delete', key: claimKey }
          : undefined
        : dropOwnerFromBlock(claimKey, value as PortBlock, owner);
    if (!op) return;
    try {
      await kv.txn([{ key: claimKey, version: entry.version }], [op]);
      return;
    } catch (err) {
      if (!(err instanceof KvConflictError)) throw err;
    }
  }
}

/** A port block without owner's claims: its rewrite, or undefined when owner holds none there. */
function dropOwnerFromBlock(blockKey: string, block: PortBlock, owner: string): KvOp | undefined {
  const kept = block.claims.filter((c) => c.owner !== owner);
  if (kept.length === block.claims.length) return undefined;
  return kept.length
    ? { type: 'put', key: blockKey, value: { claims: kept } as unknown as JsonValue }
    : { type: 'delete', key: blockKey };
}
