/**
 * IP addresses and prefixes: the one address module of the tree (Go has one
 * net.IP and one net.IPNet), for every layer from the kernel up. Built on
 * ipaddr.js (strict parsing, canonical text, bytes) and ip-cidr (subnet
 * bounds and sizes as bigints); nothing here parses address text by hand.
 *
 * Two views of "10.0.0.2/24":
 * - a Prefix is an address with its prefix length, host bits kept, as an
 *   interface address or a route is written (parsePrefix: what ip(8) takes);
 * - a Subnet is a network, host bits refused, with its bounds as integers
 *   (parseSubnet: what the IPAM allocates from). Addresses are bigints there
 *   so IPv4 and IPv6 share one code path.
 */
import IPCIDR from 'ip-cidr';
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

/**
 * Not an IP address, or one that can never be assigned (network, broadcast,
 * anycast). The code keeps the `ipam.` spelling it had when the IPAM owned
 * this parsing: the registry maps it (src/errors.ts LAYER_CODES, docs/errors.md).
 */
export class InvalidAddressError extends Error {
  override readonly name = 'InvalidAddressError';
  readonly code = 'ipam.invalid_address';
  constructor(
    readonly value: string,
    reason: string,
  ) {
    super(`invalid address ${JSON.stringify(value)}: ${reason}`);
  }
}

/** Not a CIDR, a CIDR with host bits set, or the wrong family (code: see InvalidAddressError). */
export class InvalidCidrError extends Error {
  override readonly name = 'InvalidCidrError';
  readonly code = 'ipam.invalid_cidr';
  constructor(
    readonly value: string,
    reason: string,
  ) {
    super(`invalid CIDR ${JSON.stringify(value)}: ${reason}`);
  }
}

function kindOf(addr: ipaddr.IPv4 | ipaddr.IPv6): Family {
  return addr.kind() === 'ipv4' ? 4 : 6;
}

// ---------------------------------------------------------------- addresses as text and bytes

export function familyOf(ip: string): Family {
  return kindOf(ipaddr.parse(ip));
}

/** Address text -> wire bytes (4 or 16), as netlink attributes carry them. */
export function ipToBytes(ip: string): Buffer {
  return Buffer.from(ipaddr.parse(ip).toByteArray());
}

export function bytesToIp(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

// ---------------------------------------------------------------- prefixes (host bits kept)

export interface Prefix {
  ip: string;
  prefixLength: number;
  family: Family;
}

/** "10.0.0.2/24" -> its parts; the address keeps its host bits. */
export function parsePrefix(cidr: string): Prefix {
  const [addr, length] = ipaddr.parseCIDR(cidr);
  return { ip: addr.toString(), prefixLength: length, family: kindOf(addr) };
}

/** Directed broadcast address of an IPv4 prefix (what `ip addr add ... brd +` sets). */
export function broadcastAddress(prefix: Prefix): string {
  return ipaddr.IPv4.broadcastAddressFromCIDR(`${prefix.ip}/${prefix.prefixLength}`).toString();
}

/** True when ip lies inside cidr (same family; host bits of cidr ignored). */
export function matchCidr(ip: string, cidr: string): boolean {
  const addr = ipaddr.parse(ip);
  const [base, length] = ipaddr.parseCIDR(cidr);
  return addr.kind() === base.kind() && addr.match(base, length);
}

// ---------------------------------------------------------------- addresses and subnets as integers

export interface Address {
  /** Canonical text (RFC 5952 for IPv6). */
  readonly text: string;
  readonly family: Family;
  readonly value: bigint;
}

export interface Subnet {
  /** Canonical text: "10.0.0.0/24", "fd00::/64". */
  readonly cidr: string;
  readonly family: Family;
  readonly prefixLength: number;
  /** Network address as an integer. */
  readonly base: bigint;
  /** Number of addresses, 2^(32 or 128 - prefixLength). */
  readonly size: bigint;
}

function toBigint(bytes: number[]): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

/** Integer → canonical address text. */
export function formatAddress(value: bigint, family: Family): string {
  const length = family === 4 ? 4 : 16;
  const bytes = new Array<number>(length);
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/**
 * A single address, strictly: dotted quad for IPv4 (ipaddr.js alone would
 * take "10.1" or "0xa.0.0.1"), no zone id for IPv6.
 */
export function parseAddress(text: string, what = 'address'): Address {
  if (typeof text !== 'string' || text === '')
    throw new InvalidAddressError(String(text), `${what} is empty`);
  const v6 = text.includes(':');
  const valid = v6
    ? ipaddr.IPv6.isValid(text) && !text.includes('%')
    : ipaddr.IPv4.isValidFourPartDecimal(text);
  if (!valid || !IPCIDR.isValidAddress(text)) {
    throw new InvalidAddressError(text, `${what} is not an IP${v6 ? 'v6' : 'v4'} address`);
  }
  const addr = ipaddr.parse(text);
  return { text: addr.toString(), family: kindOf(addr), value: toBigint(addr.toByteArray()) };
}

/**
 * A subnet in CIDR notation with no host bits set ("10.0.0.5/24" is refused
 * with the network it probably meant, as CNI host-local and dockerd do).
 */
export function parseSubnet(text: string, what = 'subnet'): Subnet {
  const cached = subnets.get(text);
  if (cached) return cached;
  const subnet = parseSubnetUncached(text, what);
  if (subnets.size >= 4096) subnets.clear();
  subnets.set(text, Object.freeze(subnet));
  return subnet;
}

/** Parsed subnets by their text: pool ids are parsed on every call, and ip-cidr takes ~45 µs a parse. */
const subnets = new Map<string, Subnet>();

function parseSubnetUncached(text: string, what: string): Subnet {
  if (typeof text !== 'string' || !ipaddr.isValidCIDR(text) || !IPCIDR.isValidCIDR(text)) {
    throw new InvalidCidrError(String(text), `${what} is not in CIDR notation (address/prefix-length)`);
  }
  const [addr, prefixLength] = ipaddr.parseCIDR(text);
  const family = kindOf(addr);
  const address = parseAddress(addr.toString(), what);
  const range = new IPCIDR(text);
  // ip-cidr reads "::ffff:a.b.c.d/n" as an IPv4 network; we do not take mapped subnets.
  if (family === 6 && range.address.v4) {
    throw new InvalidCidrError(text, 'IPv4-mapped IPv6 subnets are not supported; give the IPv4 subnet');
  }
  const base = range.start<bigint>({ type: 'bigInteger' });
  const size = range.size as bigint;
  const canonical = `${formatAddress(base, family)}/${prefixLength}`;
  if (address.value !== base) {
    throw new InvalidCidrError(text, `${what} has host bits set; the network is ${canonical}`);
  }
  return { cidr: canonical, family, prefixLength, base, size };
}

export function lastAddress(subnet: Subnet): bigint {
  return subnet.base + subnet.size - 1n;
}

export function containsAddress(subnet: Subnet, value: bigint): boolean {
  return value >= subnet.base && value <= lastAddress(subnet);
}

/** inner lies entirely within outer (same family). */
export function containsSubnet(outer: Subnet, inner: Subnet): boolean {
  return (
    outer.family === inner.family && inner.base >= outer.base && lastAddress(inner) <= lastAddress(outer)
  );
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.family === b.family && a.base <= lastAddress(b) && b.base <= lastAddress(a);
}

/** The subnet of `prefixLength` starting at `base` (which must be aligned). */
export function subnetAt(base: bigint, prefixLength: number, family: Family): Subnet {
  const bits = family === 4 ? 32 : 128;
  return parseSubnet(`${formatAddress(base, family)}/${prefixLength}`, `subnet (${bits} bits)`);
}

/**
 * A prefix as its network: "10.77.0.5/24" is 10.77.0.0/24, as iptables
 * shows it (parseSubnet refuses the host bits instead). The address is
 * read as strictly as parseAddress reads one.
 */
export function prefixNetwork(text: string, what = 'prefix'): Subnet {
  const slash = typeof text === 'string' ? text.indexOf('/') : -1;
  const length = slash > 0 ? text.slice(slash + 1) : '';
  if (!/^(0|[1-9][0-9]{0,2})$/.test(length))
    throw new InvalidCidrError(String(text), `${what} is not in CIDR notation (address/prefix-length)`);
  const address = parseAddress(text.slice(0, slash), what);
  const width = address.family === 4 ? 32 : 128;
  const bits = Number(length);
  if (bits > width) throw new InvalidCidrError(text, `${what} has a prefix length over ${width}`);
  const hostBits = (1n << BigInt(width - bits)) - 1n;
  return subnetAt(address.value & ~hostBits, bits, address.family);
}
