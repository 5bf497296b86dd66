/**
 * Forwarding database entries (AF_BRIDGE neighbours): `bridge fdb` verbs.
 * netctl's overlay writes one static entry per remote endpoint on its vxlan
 * device (`self`, with the remote VTEP as dst) since learning is off.
 */
import { FlagsNew, rt } from 'netlink';
import { hasErrorCode } from './errors.js';
import { AF_BRIDGE, bytesToIp, ipToBytes } from './inet.js';
import { type LinkRef, linkIndex } from './link.js';
import { bytesToMac, macToBytes } from './mac.js';
import type { Netlink } from './netlink.js';

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
  permanent: boolean;
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
      state: { permanent: true },
      flags: e.master ? { master: true } : { self: true },
    },
    attrs,
  };
}

/** Equivalent to: `bridge fdb append MAC dev LINK dst IP self permanent` (adds another dst). */
export async function fdbAppend(h: Netlink, e: NewFdbEntry): Promise<void> {
  const message = await fdbMessage(h, e);
  await h.request(
    MessageType.NEWNEIGH,
    (out) => rt.formatNeighborMessage(message, out),
    FlagsNew.CREATE | FlagsNew.APPEND,
  );
}

/** Equivalent to: `bridge fdb replace MAC dev LINK dst IP self permanent`. */
export async function fdbReplace(h: Netlink, e: NewFdbEntry): Promise<void> {
  const message = await fdbMessage(h, e);
  await h.request(
    MessageType.NEWNEIGH,
    (out) => rt.formatNeighborMessage(message, out),
    FlagsNew.CREATE | FlagsNew.REPLACE,
  );
}

/** Equivalent to: `bridge fdb del MAC dev LINK [dst IP]`. An absent entry is success. */
export async function fdbDel(h: Netlink, e: NewFdbEntry): Promise<void> {
  const message = await fdbMessage(h, e);
  try {
    await h.request(MessageType.DELNEIGH, (out) => rt.formatNeighborMessage(message, out));
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return;
    throw err;
  }
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
  };
}

/** Equivalent to: `bridge fdb show [dev LINK]`. */
export async function fdbList(h: Netlink, filter: { link?: LinkRef } = {}): Promise<FdbEntry[]> {
  const index = filter.link === undefined ? undefined : await linkIndex(h, filter.link);
  const all = await h.dump(
    MessageType.GETNEIGH,
    (out) => rt.formatNeighborMessage({ kind: 'neighbor', data: { family: AF_BRIDGE }, attrs: {} }, out),
    toFdbEntry,
  );
  return index === undefined ? all : all.filter((e) => e.linkIndex === index);
}
