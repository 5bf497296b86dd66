/** Neighbour (ARP/NDP) entries: `ip neigh` verbs over one Netlink handle. */
import { rt } from 'netlink';
import { bytesToIp, type Family, familyOf, ipToBytes } from '../address.js';
import { linkLabel } from './errors.js';
import { type LinkRef, linkIndex, onLink } from './link.js';
import { bytesToMac, macToBytes } from './mac.js';
import { AF_INET, addressFamily, CREATE, type Netlink, REPLACE } from './netlink.js';

const { MessageType } = rt;

export interface NewNeigh {
  link: LinkRef;
  ip: string;
  mac: string;
}

export interface Neigh {
  linkIndex: number;
  ip: string;
  mac: string | undefined;
  family: Family;
  permanent: boolean;
  /** NUD_* names set on the entry: 'reachable', 'stale', 'permanent', ... */
  state: string[];
}

async function neighMessage(
  h: Netlink,
  link: LinkRef,
  ip: string,
  mac?: string,
): Promise<rt.NeighborMessage> {
  const attrs: rt.NeighborAttrs = { dst: ipToBytes(ip) };
  if (mac) attrs.lladdr = macToBytes(mac);
  return {
    kind: 'neighbor',
    data: {
      family: addressFamily(familyOf(ip)),
      ifindex: await linkIndex(h, link),
      state: { permanent: true },
    },
    attrs,
  };
}

async function newNeigh(h: Netlink, n: NewNeigh, flags: number, verb: string): Promise<void> {
  const message = await neighMessage(h, n.link, n.ip, n.mac);
  await h.request(
    MessageType.NEWNEIGH,
    (out) => rt.formatNeighborMessage(message, out),
    flags,
    `${verb} neighbour ${n.ip} lladdr ${n.mac} dev ${linkLabel(n.link)}`,
  );
}

/** Equivalent to: `ip neigh add IP lladdr MAC dev LINK nud permanent`. */
export function neighAdd(h: Netlink, n: NewNeigh): Promise<void> {
  return newNeigh(h, n, CREATE, 'add');
}

/** Equivalent to: `ip neigh replace IP lladdr MAC dev LINK nud permanent`. */
export function neighReplace(h: Netlink, n: NewNeigh): Promise<void> {
  return newNeigh(h, n, REPLACE, 'replace');
}

/** Equivalent to: `ip neigh del IP dev LINK`. An absent entry is success. */
export async function neighDel(h: Netlink, n: { link: LinkRef; ip: string }): Promise<void> {
  const message = await neighMessage(h, n.link, n.ip);
  await h.remove(
    MessageType.DELNEIGH,
    (out) => rt.formatNeighborMessage(message, out),
    'ENOENT',
    `delete neighbour ${n.ip} dev ${linkLabel(n.link)}`,
  );
}

function toNeigh(data: Buffer): Neigh {
  const { data: header, attrs } = rt.parseNeighborMessage(data);
  const state = Object.keys(header.state ?? {}).filter((k) => k !== '__unknown');
  return {
    linkIndex: header.ifindex ?? 0,
    ip: attrs.dst ? bytesToIp(attrs.dst) : '',
    mac: attrs.lladdr ? bytesToMac(attrs.lladdr) : undefined,
    family: header.family === AF_INET ? 4 : 6,
    permanent: Boolean(header.state?.permanent),
    state,
  };
}

/** Equivalent to: `ip neigh show [dev LINK]` for one family. */
export async function neighList(
  h: Netlink,
  filter: { link?: LinkRef; family?: Family } = {},
): Promise<Neigh[]> {
  const all = await h.dump(
    MessageType.GETNEIGH,
    (out) =>
      rt.formatNeighborMessage(
        { kind: 'neighbor', data: { family: addressFamily(filter.family ?? 4) }, attrs: {} },
        out,
      ),
    toNeigh,
    'list neighbours',
  );
  return onLink(h, filter.link, all, (n) => n.linkIndex);
}
