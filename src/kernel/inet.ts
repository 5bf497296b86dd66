/** IP address <-> wire bytes, and prefix parsing, for netlink attributes. */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_BRIDGE = 7;

export function familyOf(ip: string): Family {
  return ipaddr.parse(ip).kind() === 'ipv4' ? 4 : 6;
}

export function addressFamily(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function ipToBytes(ip: string): Buffer {
  return Buffer.from(ipaddr.parse(ip).toByteArray());
}

export function bytesToIp(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

export interface Prefix {
  ip: string;
  prefixLength: number;
  family: Family;
}

/** "10.0.0.2/24" -> its parts; the address keeps its host bits. */
export function parsePrefix(cidr: string): Prefix {
  const [addr, length] = ipaddr.parseCIDR(cidr);
  return { ip: addr.toString(), prefixLength: length, family: addr.kind() === 'ipv4' ? 4 : 6 };
}

/** Directed broadcast of an IPv4 prefix (what `ip addr add ... brd +` sets). */
export function ipv4Broadcast(prefix: Prefix): Buffer {
  return Buffer.from(
    ipaddr.IPv4.broadcastAddressFromCIDR(`${prefix.ip}/${prefix.prefixLength}`).toByteArray(),
  );
}

/** True when ip lies inside cidr (same family). */
export function matchCidr(ip: string, cidr: string): boolean {
  const addr = ipaddr.parse(ip);
  const [base, length] = ipaddr.parseCIDR(cidr);
  return addr.kind() === base.kind() && addr.match(base, length);
}
