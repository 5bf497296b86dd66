/**
 * Links: typed values and ip(8)-style verbs over one Netlink handle.
 * Shape follows vishvananda/netlink link.go: a Link union with a `kind`,
 * shared attributes, and one verb per `ip link` operation.
 */
import { type ifla, rt } from 'netlink';
import { crashPoint } from '../crash.js';
import { log } from '../log.js';
import { hasErrorCode, LinkKindMismatchError, LinkNotFoundError, linkLabel } from './errors.js';
import { bridgeInfo, parseLinkInfo, type VethPeerInfo, vethInfo, vxlanInfo } from './linkinfo.js';
import { bytesToMac, macToBytes } from './mac.js';
import { native } from './native.js';
import { AF_BRIDGE, CREATE, type Netlink, toBuffer } from './netlink.js';
import { type NetnsRef, openNetns } from './netns.js';
import { linkOwner, mayTake, NETCTL_GROUP, NotOwnedError, ownerTag, UNCLAIMED } from './owner.js';

const { MessageType } = rt;

/** Attributes every link has. */
export interface LinkAttrs {
  index: number;
  name: string;
  mtu: number;
  mac: string | undefined;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** RFC 2863 operational state: 'up', 'down', 'lowerlayerdown', 'unknown', ... */
  operState: string;
  masterIndex: number | undefined;
  alias: string | undefined;
  /** Device group (IFLA_GROUP); netctl's links are in NETCTL_GROUP (owner.ts). */
  group: number;
  /** IFLA_LINK: a veth's peer index, a vxlan's underlay (may be in another netns). */
  parentIndex: number | undefined;
}

export interface Bridge extends LinkAttrs {
  kind: 'bridge';
}
export interface Veth extends LinkAttrs {
  kind: 'veth';
}
export interface Vxlan extends LinkAttrs {
  kind: 'vxlan';
  vni: number;
  local: string | undefined;
  port: number;
  learning: boolean;
  proxy: boolean;
  underlayIndex: number | undefined;
}
/** Anything else: loopback, physical NICs, other virtual kinds. */
export interface Device extends LinkAttrs {
  kind: 'device';
  /** IFLA_INFO_KIND when the kernel reports one (e.g. "ifb"). */
  infoKind: string | undefined;
}
export type Link = Bridge | Veth | Vxlan | Device;

/** A link by name, by index, or as a value already read. */
export type LinkRef = string | number | { index: number };

interface NewLinkCommon {
  name: string;
  mtu?: number;
  mac?: string;
  /**
   * Who the link is for (`net:<id>`, `ep:<id>`): the link is made in
   * netctl's device group, and named owner's in its alias right after
   * (the kernel ignores IFLA_IFALIAS in a create; see owner.ts).
   */
  owner?: string;
  up?: boolean;
  /** Enslave to this bridge at creation. */
  master?: number;
}
export type NewLink =
  | (NewLinkCommon & { kind: 'bridge' })
  | (NewLinkCommon & { kind: 'veth'; peer: Omit<VethPeerInfo, 'netns'> & { netns?: NetnsRef } })
  | (NewLinkCommon & {
      kind: 'vxlan';
      vni: number;
      local?: string;
      /** UDP destination port; default 4789 (IANA). */
      port?: number;
      /** Default false: netctl programs the FDB itself. */
      learning?: boolean;
      /** Answer ARP/ND from the device's neighbour entries (no broadcast leaves the host). */
      proxy?: boolean;
      /** Underlay device index. */
      underlay?: number;
    });

const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

function toLink(message: Buffer): Link {
  const { data, attrs } = rt.parseLinkMessage(message);
  const common: LinkAttrs = {
    index: data.index ?? 0,
    name: attrs.ifname ?? '',
    mtu: attrs.mtu ?? 0,
    mac: attrs.address ? bytesToMac(attrs.address) : undefined,
    up: Boolean(data.flags?.up),
    operState: OPER_STATES[attrs.operstate ?? 0] ?? 'unknown',
    masterIndex: attrs.master || undefined,
    alias: attrs.ifalias || undefined,
    group: attrs.group ?? 0,
    parentIndex: attrs.link ? attrs.link.readUInt32LE(0) || undefined : undefined,
  };
  const info = parseLinkInfo(attrs.linkinfo);
  if ('vxlan' in info) {
    const { vni, local, port, learning, underlayIndex } = info.vxlan;
    const proxy = info.vxlan.proxy ?? false;
    return { ...common, kind: 'vxlan', vni, local, port, learning, proxy, underlayIndex };
  }
  if (info.kind === 'bridge') return { ...common, kind: 'bridge' };
  if (info.kind === 'veth') return { ...common, kind: 'veth' };
  return { ...common, kind: 'device', infoKind: info.kind };
}

function notFound(err: unknown, link: string | number): unknown {
  return hasErrorCode(err, 'ENODEV') ? new LinkNotFoundError(link) : err;
}

/** The ifinfomsg + attributes that identify ref (index, or IFLA_IFNAME for a name). */
function target(ref: LinkRef): { data: rt.Link; attrs: ifla.LinkAttrs } {
  if (typeof ref === 'string') return { data: { index: 0 }, attrs: { ifname: ref } };
  return { data: { index: typeof ref === 'number' ? ref : ref.index }, attrs: {} };
}

function refLabel(ref: LinkRef): string | number {
  return typeof ref === 'object' ? ref.index : ref;
}

/** Equivalent to: `ip link show NAME`. Throws LinkNotFoundError. */
export async function linkByName(h: Netlink, name: string): Promise<Link> {
  return linkGet(h, name);
}

/** Equivalent to: `ip link show` for one index. Throws LinkNotFoundError. */
export async function linkByIndex(h: Netlink, index: number): Promise<Link> {
  return linkGet(h, index);
}

async function linkGet(h: Netlink, ref: LinkRef): Promise<Link> {
  const { data, attrs } = target(ref);
  try {
    const [reply] = await h.request(
      MessageType.GETLINK,
      (out) => rt.formatLinkMessage({ kind: 'link', data, attrs }, out),
      0,
      `get link ${linkLabel(ref)}`,
    );
    if (!reply) throw new LinkNotFoundError(refLabel(ref));
    return toLink(reply.data);
  } catch (err) {
    throw notFound(err, refLabel(ref));
  }
}

/** Index of ref, looking it up by name when needed. */
export async function linkIndex(h: Netlink, ref: LinkRef): Promise<number> {
  if (typeof ref === 'number') return ref;
  if (typeof ref === 'object') return ref.index;
  return (await linkByName(h, ref)).index;
}

/** The items that belong to link (all of them when link is undefined), as `ip ... dev LINK` filters. */
export async function onLink<T>(
  h: Netlink,
  link: LinkRef | undefined,
  items: T[],
  indexOf: (item: T) => number,
): Promise<T[]> {
  if (link === undefined) return items;
  const index = await linkIndex(h, link);
  return items.filter((item) => indexOf(item) === index);
}

/** Equivalent to: `ip link show`. */
export async function linkList(h: Netlink): Promise<Link[]> {
  return h.dump(
    MessageType.GETLINK,
    (out) => rt.formatLinkMessage({ kind: 'link', data: {}, attrs: {} }, out),
    toLink,
    'list links',
  );
}

/**
 * Equivalent to: `ip link add NAME [mtu M] [address MAC] [master BR] [up]
 * [group G] type bridge | veth peer name P [netns NS] | vxlan id VNI ...`;
 * then `ip link set NAME alias netctl:OWNER` when an owner is given.
 * A veth's peer is created directly in its namespace (no later move, which
 * costs the kernel ~19 ms). Throws KernelError EEXIST when NAME exists.
 */
export async function linkAdd(h: Netlink, spec: NewLink): Promise<void> {
  const attrs: ifla.LinkAttrs = { ifname: spec.name };
  if (spec.mtu) attrs.mtu = spec.mtu;
  if (spec.mac) attrs.address = macToBytes(spec.mac);
  if (spec.master) attrs.master = spec.master;
  if (spec.owner) attrs.group = NETCTL_GROUP;
  const peerNetns =
    spec.kind === 'veth' && typeof spec.peer.netns === 'string' ? openNetns(spec.peer.netns) : undefined;
  try {
    switch (spec.kind) {
      case 'bridge':
        attrs.linkinfo = bridgeInfo();
        break;
      case 'veth': {
        const { netns: ref, ...peer } = spec.peer;
        const netns = peerNetns ?? (typeof ref === 'object' ? ref : undefined);
        attrs.linkinfo = vethInfo({ ...peer, ...(netns ? { netns } : {}) });
        break;
      }
      case 'vxlan':
        attrs.linkinfo = vxlanInfo({
          vni: spec.vni,
          port: spec.port ?? 4789,
          learning: spec.learning ?? false,
          proxy: spec.proxy ?? false,
          ...(spec.local ? { local: spec.local } : {}),
          ...(spec.underlay ? { underlayIndex: spec.underlay } : {}),
        });
        break;
    }
    const flags = spec.up ? { up: true as const } : {};
    await h.request(
      MessageType.NEWLINK,
      (out) => rt.formatLinkMessage({ kind: 'link', data: { flags, change: flags }, attrs }, out),
      CREATE,
      `add link ${linkLabel(spec.name)} (${kindText(spec)})`,
    );
  } finally {
    peerNetns?.close();
  }
  crashPoint('link.tag');
  if (spec.owner) await linkSetAlias(h, spec.name, ownerTag(spec.owner));
}

/** What a new link is, for messages: `bridge`, `veth, peer "eth0" in netns /run/netns/c1`, `vxlan, id 4097`. */
function kindText(spec: NewLink): string {
  switch (spec.kind) {
    case 'bridge':
      return 'bridge';
    case 'veth': {
      const ns = spec.peer.netns;
      const where = ns === undefined ? '' : ` in netns ${typeof ns === 'string' ? ns : ns.path}`;
      return `veth, peer ${linkLabel(spec.peer.name)}${where}`;
    }
    case 'vxlan':
      return `vxlan, id ${spec.vni}`;
  }
}

/**
 * Create spec's link for its owner unless the owner has it already. A link
 * of that name that is someone else's is NotOwnedError, and one of another
 * kind LinkKindMismatchError (plugins/main/bridge: "already exists but is
 * not a bridge"); either way nothing is changed. A netctl link left
 * unclaimed by a crash (owner.ts) is taken over. Returns the link as the
 * kernel has it.
 */
export async function ensureLink(h: Netlink, spec: NewLink & { owner: string }): Promise<Link> {
  try {
    await linkAdd(h, spec);
  } catch (err) {
    if (!hasErrorCode(err, 'EEXIST')) throw err;
  }
  let link = await linkByName(h, spec.name);
  if (!mayTake(link, spec.owner))
    throw new NotOwnedError(describeLink(h, spec.name), spec.owner, linkOwner(link));
  if (linkOwner(link) === UNCLAIMED) {
    await linkSetAlias(h, link, ownerTag(spec.owner));
    link = await linkByName(h, spec.name);
  }
  if (link.kind !== spec.kind) {
    throw new LinkKindMismatchError(
      spec.name,
      spec.kind,
      link.kind === 'device' ? (link.infoKind ?? 'device') : link.kind,
    );
  }
  return link;
}

/**
 * Equivalent to: `ip link del NAME`. A link that is already gone is success.
 *
 * Resolves as soon as the link is unregistered (gone from the namespace, its
 * name free). The kernel then still waits ~15-20 ms for an RCU grace period
 * before it answers; that wait runs on a native thread, so the event loop is
 * never blocked and concurrent deletes overlap (src/kernel/native: deleteLink).
 */
export async function linkDel(h: Netlink, ref: LinkRef): Promise<void> {
  let index: number;
  try {
    index = await linkIndex(h, ref);
  } catch (err) {
    if (err instanceof LinkNotFoundError) return;
    throw err;
  }
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    native.deleteLink(h.netns.fd, index, (err, phase) => {
      const failure =
        err && err.code !== 'ENODEV'
          ? h.error(err.errno, 'RTM_DELLINK', `delete link ${linkLabel(ref)}`)
          : undefined;
      if (settled) {
        if (failure) log.error({ err: failure, index }, 'link delete failed after the link was unregistered');
        return;
      }
      if (phase === 'unregistered' || !failure) {
        settled = true;
        resolve();
      } else if (phase === 'done') {
        settled = true;
        reject(failure);
      }
    });
  });
}

/** `ip link set REF WHAT`: `what` says the change for messages (`mtu 1400`). */
async function linkSet(
  h: Netlink,
  ref: LinkRef,
  what: string,
  change: Partial<rt.Link>,
  set: ifla.LinkAttrs,
  label = linkLabel(ref),
): Promise<void> {
  const { data, attrs } = target(ref);
  try {
    await h.request(
      MessageType.SETLINK,
      (out) =>
        rt.formatLinkMessage(
          { kind: 'link', data: { ...data, ...change }, attrs: { ...attrs, ...set } },
          out,
        ),
      0,
      `set link ${label} ${what}`,
    );
  } catch (err) {
    throw notFound(err, refLabel(ref));
  }
}

/** Equivalent to: `ip link set NAME up`. */
export function linkSetUp(h: Netlink, ref: LinkRef): Promise<void> {
  return linkSet(h, ref, 'up', { flags: { up: true }, change: { up: true } }, {});
}

/** Equivalent to: `ip link set NAME down`. */
export function linkSetDown(h: Netlink, ref: LinkRef): Promise<void> {
  return linkSet(h, ref, 'down', { flags: {}, change: { up: true } }, {});
}

/** Equivalent to: `ip link set NAME mtu MTU`. */
export function linkSetMtu(h: Netlink, ref: LinkRef, mtu: number): Promise<void> {
  return linkSet(h, ref, `mtu ${mtu}`, {}, { mtu });
}

/** Equivalent to: `ip link set NAME address MAC`. */
export function linkSetMac(h: Netlink, ref: LinkRef, mac: string): Promise<void> {
  return linkSet(h, ref, `address ${mac}`, {}, { address: macToBytes(mac) });
}

/** Equivalent to: `ip link set NAME alias TEXT` (netctl records owners here). */
export function linkSetAlias(h: Netlink, ref: LinkRef, alias: string): Promise<void> {
  return linkSet(h, ref, `alias ${JSON.stringify(alias)}`, {}, { ifalias: alias });
}

/** Equivalent to: `ip link set NAME master BRIDGE`. */
export async function linkSetMaster(h: Netlink, ref: LinkRef, master: LinkRef): Promise<void> {
  return linkSet(h, ref, `master ${linkLabel(master)}`, {}, { master: await linkIndex(h, master) });
}

/** Equivalent to: `ip link set NAME nomaster`. */
export function linkSetNoMaster(h: Netlink, ref: LinkRef): Promise<void> {
  return linkSet(h, ref, 'nomaster', {}, { master: 0 });
}

// if_link.h: IFLA_PROTINFO nests IFLA_BRPORT_* for a bridge port; NLA_F_NESTED
// tells br_setlink it is the nested form, not the old one-byte port state.
const IFLA_PROTINFO = 12;
const NLA_F_NESTED = 0x8000;
const IFLA_BRPORT_MODE = 4;

/**
 * Equivalent to: `bridge link set dev NAME hairpin on|off` — whether the
 * bridge may send a frame back out of the port it came in on, which a
 * container reaching its own published port through the host needs.
 */
export async function linkSetHairpin(h: Netlink, ref: LinkRef, on: boolean): Promise<void> {
  const index = await linkIndex(h, ref);
  const mode = toBuffer((out) => out.push(IFLA_BRPORT_MODE, Buffer.from([on ? 1 : 0])));
  // The header by hand: the netlink package's AttrStream.push drops the NLA_F_NESTED bit.
  const protinfo = Buffer.alloc(4);
  protinfo.writeUInt16LE(4 + mode.length, 0);
  protinfo.writeUInt16LE(IFLA_PROTINFO | NLA_F_NESTED, 2);
  try {
    await h.request(
      MessageType.SETLINK,
      (out) => {
        out.emit(rt.formatLink({ family: AF_BRIDGE, index }));
        out.emit([protinfo, mode]);
      },
      0,
      `set link ${linkLabel(ref)} hairpin ${on ? 'on' : 'off'}`,
    );
  } catch (err) {
    throw notFound(err, refLabel(ref));
  }
}

/** Equivalent to: `ip link set NAME name NEWNAME` (the link must be down). */
export async function linkSetName(h: Netlink, ref: LinkRef, name: string): Promise<void> {
  // By index: a name in the request would be read as the link to change.
  return linkSet(h, await linkIndex(h, ref), `name ${linkLabel(name)}`, {}, { ifname: name }, linkLabel(ref));
}

/**
 * Equivalent to: `ip link set NAME netns NS`. Costs the kernel ~19 ms; create
 * veth peers in place instead where possible.
 */
export async function linkSetNs(h: Netlink, ref: LinkRef, ns: NetnsRef): Promise<void> {
  const netns = typeof ns === 'string' ? openNetns(ns) : ns;
  try {
    await linkSet(h, ref, `netns ${netns.path}`, {}, { netNsFd: netns.fd });
  } finally {
    if (typeof ns === 'string') netns.close();
  }
}

// Owner-checked verbs (owner.ts): what netctl changes or deletes must be its own.

/** The link as the kernel has it, or undefined when there is none. */
export async function linkIfExists(h: Netlink, ref: LinkRef): Promise<Link | undefined> {
  try {
    return await linkGet(h, ref);
  } catch (err) {
    if (hasErrorCode(err, 'ENODEV')) return undefined;
    throw err;
  }
}

/**
 * The link named, checked to be owner's (or netctl's and unclaimed);
 * undefined when there is none. Throws NotOwnedError for anyone else's.
 */
export async function ownedLink(h: Netlink, name: string, owner: string): Promise<Link | undefined> {
  const link = await linkIfExists(h, name);
  if (link && !mayTake(link, owner)) throw new NotOwnedError(describeLink(h, name), owner, linkOwner(link));
  return link;
}

/** `link NAME`, with the namespace when the handle is not in this thread's own. */
export function describeLink(h: Netlink, name: string): string {
  return `link ${name}${h.place}`;
}

/**
 * Delete link NAME if it is owner's (or netctl's and unclaimed); absent is
 * success. Anyone else's is left as it is: NotOwnedError. The delete goes
 * by the index that was checked, so a link renamed meanwhile is not hit.
 */
export async function linkDelOwned(h: Netlink, name: string, owner: string): Promise<void> {
  const link = await ownedLink(h, name, owner);
  if (link) await linkDel(h, link.index);
}
