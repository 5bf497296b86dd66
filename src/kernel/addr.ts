/** Addresses: `ip addr` verbs over one Netlink handle. */
import { rt } from 'netlink';
import { broadcastAddress, bytesToIp, type Family, ipToBytes, parsePrefix } from '../address.js';
import { linkLabel } from './errors.js';
import { type LinkRef, linkIndex, onLink } from './link.js';
import { AF_INET, addressFamily, CREATE, type Netlink, REPLACE } from './netlink.js';

const { MessageType } = rt;

export interface Addr {
  /** Index of the link holding it. */
  index: number;
  /** Address with prefix length, e.g. "10.0.0.2/24". */
  cidr: string;
  ip: string;
  prefixLength: number;
  family: Family;
  scope: number;
  label: string | undefined;
}

export interface AddrOptions {
  /** IFA_F_NODAD: usable at once (an IPv6 container address must not wait for DAD). */
  noDad?: boolean;
  /** IFA_F_NOPREFIXROUTE: do not add the connected route. */
  noPrefixRoute?: boolean;
}

async function addrMessage(
  h: Netlink,
  link: LinkRef,
  cidr: string,
  options: AddrOptions,
): Promise<rt.AddressMessage> {
  const prefix = parsePrefix(cidr);
  const bytes = ipToBytes(prefix.ip);
  const flags: rt.AddressFlags = {};
  if (options.noDad) flags.nodad = true;
  if (options.noPrefixRoute) flags.noprefixroute = true;
  const attrs: rt.AddressAttrs = { local: bytes, address: bytes, flags };
  // As vishvananda/netlink AddrAdd: IPv4 gets its broadcast unless /31 or /32.
  if (prefix.family === 4 && prefix.prefixLength < 31) attrs.broadcast = ipToBytes(broadcastAddress(prefix));
  return {
    kind: 'address',
    data: {
      family: addressFamily(prefix.family),
      prefixlen: prefix.prefixLength,
      index: await linkIndex(h, link),
    },
    attrs,
  };
}

async function newAddr(
  h: Netlink,
  link: LinkRef,
  cidr: string,
  options: AddrOptions,
  flags: number,
  operation: string,
) {
  const message = await addrMessage(h, link, cidr, options);
  await h.request(MessageType.NEWADDR, (out) => rt.formatAddressMessage(message, out), flags, operation);
}

/** Equivalent to: `ip addr add CIDR dev LINK`. Throws KernelError EEXIST if present. */
export function addrAdd(h: Netlink, link: LinkRef, cidr: string, options: AddrOptions = {}): Promise<void> {
  return newAddr(h, link, cidr, options, CREATE, `add address ${cidr} to ${linkLabel(link)}`);
}

/** Equivalent to: `ip addr replace CIDR dev LINK` (idempotent add). */
export function addrReplace(
  h: Netlink,
  link: LinkRef,
  cidr: string,
  options: AddrOptions = {},
): Promise<void> {
  return newAddr(h, link, cidr, options, REPLACE, `replace address ${cidr} on ${linkLabel(link)}`);
}

/** Equivalent to: `ip addr del CIDR dev LINK`. An absent address is success. */
export async function addrDel(h: Netlink, link: LinkRef, cidr: string): Promise<void> {
  const message = await addrMessage(h, link, cidr, {});
  await h.remove(
    MessageType.DELADDR,
    (out) => rt.formatAddressMessage(message, out),
    'EADDRNOTAVAIL',
    `delete address ${cidr} from ${linkLabel(link)}`,
  );
}

function toAddr(data: Buffer): Addr {
  const { data: header, attrs } = rt.parseAddressMessage(data);
  const raw = attrs.local ?? attrs.address ?? Buffer.alloc(0);
  const ip = bytesToIp(raw);
  const prefixLength = header.prefixlen ?? 0;
  return {
    index: header.index ?? 0,
    cidr: `${ip}/${prefixLength}`,
    ip,
    prefixLength,
    family: header.family === AF_INET ? 4 : 6,
    scope: header.scope ?? 0,
    label: attrs.label,
  };
}

/** Equivalent to: `ip addr show [dev LINK]` for one family or both. */
export async function addrList(
  h: Netlink,
  filter: { link?: LinkRef; family?: Family } = {},
): Promise<Addr[]> {
  const family = filter.family ? addressFamily(filter.family) : 0;
  const all = await h.dump(
    MessageType.GETADDR,
    (out) => rt.formatAddressMessage({ kind: 'address', data: { family }, attrs: {} }, out),
    toAddr,
    'list addresses',
  );
  return onLink(h, filter.link, all, (a) => a.index);
}
