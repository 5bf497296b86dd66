/**
 * Forwarding database entries (AF_BRIDGE neighbours): `bridge fdb` verbs.
 * netctl's overlay writes one static entry per remote endpoint on its vxlan
 * device (`self`, with the remote VTEP as dst) since learning is off.
 */
import { rt } from 'netlink';
import { bytesToIp, ipToBytes } from '../address.js';
import { linkLabel } from './errors.js';
import { type LinkRef, linkIndex, onLink } from './link.js';
import { bytesToMac, macToBytes } from './mac.js';
import { AF_BRIDGE, APPEND, type Netlink, REPLACE } from './netlink.js';

const { MessageType } = rt;

export interface NewFdbEntry {
  /** The vxlan device (or bridge port) the entry belongs to. */
  link: LinkRef;
  mac: string;
  /** Remote VTEP address. */
  dst?: string;
  vni?: number;
  /** Entry in the bridge's table (`master`) rather than the device's own (`self`). */
  master?: boolean;
}

export interface FdbEntry {
  linkIndex: number;
  mac: string;
  dst: string | undefined;
  vni: number | undefined;
  master: boolean;
  self: boolean;
  /** In a bridge's table: the bridge's own address (frames to it go up the stack). */
  permanent: boolean;
  /** A static entry (NUD_NOARP): a bridge-table entry that does not age. */
  static: boolean;
}

async function fdbMessage(h: Netlink, e: NewFdbEntry): Promise<rt.NeighborMessage> {
  const attrs: rt.NeighborAttrs = { lladdr: macToBytes(e.mac) };
  if (e.dst) attrs.dst = ipToBytes(e.dst);
  if (e.vni !== undefined) {
    const vni = Buffer.alloc(4);
    vni.writeUInt32LE(e.vni); // NDA_VNI is a host-order u32
    attrs.vni = vni;
  }
  return {
    kind: 'neighbor',
    data: {
      family: AF_BRIDGE,
      ifindex: await linkIndex(h, e.link),
      // In the bridge's table `permanent` means the bridge's own address (frames
      // to it go up the stack): a remote endpoint's entry there is `static`.
      state: e.master ? { noarp: true } : { permanent: true },
      flags: e.master ? { master: true } : { self: true },
    },
    attrs,
  };
}

/** The entry as bridge(8) would write it, for messages: `fdb entry 02:.. dst 192.0.2.1 dev "vx0"`. */
function describeFdbEntry(e: NewFdbEntry): string {
  let text = `fdb entry ${e.mac}`;
  if (e.dst) text += ` dst ${e.dst}`;
  if (e.vni !== undefined) text += ` vni ${e.vni}`;
  return `${text} dev ${linkLabel(e.link)} ${e.master ? 'master' : 'self'}`;
}

async function newFdbEntry(h: Netlink, e: NewFdbEntry, flags: number, verb: string): Promise<void> {
  const message = await fdbMessage(h, e);
  await h.request(
    MessageType.NEWNEIGH,
    (out) => rt.formatNeighborMessage(message, out),
    flags,
    `${verb} ${describeFdbEntry(e)}`,
  );
}

/** Equivalent to: `bridge fdb append MAC dev LINK dst IP self permanent` (adds another dst). */
export function fdbAppend(h: Netlink, e: NewFdbEntry): Promise<void> {
  return newFdbEntry(h, e, APPEND, 'append');
}

/** Equivalent to: `bridge fdb replace MAC dev LINK dst IP self permanent` (or `master static`). */
export function fdbReplace(h: Netlink, e: NewFdbEntry): Promise<void> {
  return newFdbEntry(h, e, REPLACE, 'replace');
}

/** Equivalent to: `bridge fdb del MAC dev LINK [dst IP]`. An absent entry is success. */
export async function fdbDel(h: Netlink, e: NewFdbEntry): Promise<void> {
  const message = await fdbMessage(h, e);
  await h.remove(
    MessageType.DELNEIGH,
    (out) => rt.formatNeighborMessage(message, out),
    'ENOENT',
    `delete ${describeFdbEntry(e)}`,
  );
}

function toFdbEntry(data: Buffer): FdbEntry {
  const { data: header, attrs } = rt.parseNeighborMessage(data);
  return {
    linkIndex: header.ifindex ?? 0,
    mac: attrs.lladdr ? bytesToMac(attrs.lladdr) : '',
    dst: attrs.dst ? bytesToIp(attrs.dst) : undefined,
    vni: attrs.vni ? attrs.vni.readUInt32LE(0) : undefined,
    // Dumps mark bridge-table entries with NDA_MASTER (the bridge), not NTF_MASTER.
    master: Boolean(header.flags?.master) || attrs.master !== undefined,
    self: Boolean(header.flags?.self),
    permanent: Boolean(header.state?.permanent),
    static: Boolean(header.state?.noarp),
  };
}

/** Equivalent to: `bridge fdb show [dev LINK]`. */
export async function fdbList(h: Netlink, filter: { link?: LinkRef } = {}): Promise<FdbEntry[]> {
  const all = await h.dump(
    MessageType.GETNEIGH,
    (out) => rt.formatNeighborMessage({ kind: 'neighbor', data: { family: AF_BRIDGE }, attrs: {} }, out),
    toFdbEntry,
    'list fdb entries',
  );
  return onLink(h, filter.link, all, (e) => e.linkIndex);
}
