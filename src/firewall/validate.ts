/**
 * Checks for every value that ends up in an iptables-restore line. Each one
 * either returns the value in canonical form or throws FirewallInputError;
 * nothing here trusts its caller, because the values come from Docker, CNI
 * configs and the CLI.
 */
import { type Family, parseAddress, prefixNetwork } from '../address.js';
import { LINK_NAME } from '../kernel/names.js';
import { FirewallInputError } from './errors.js';

// Linux dev_valid_name() allows more (anything but '/', ':' and whitespace),
// but nothing netctl creates needs more than this, and '+' would be an
// iptables wildcard.

/** A Linux interface name (IFNAMSIZ-1 = 15 bytes), not "." or "..". */
export function interfaceName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !LINK_NAME.test(value)) {
    throw new FirewallInputError(field, value, 'not an interface name (1-15 of A-Z a-z 0-9 _ . -)');
  }
  return value;
}

const HEX_ID = /^[0-9a-f]{1,64}$/;

/** A network or endpoint id: lower-case hex, as Docker's 64-character ids. */
export function hexId(field: string, value: unknown): string {
  if (typeof value !== 'string' || !HEX_ID.test(value)) {
    throw new FirewallInputError(field, value, 'not a hex id (1-64 of 0-9 a-f)');
  }
  return value;
}

/** What the address module's strict parser makes of value, or undefined when it refuses it. */
function strictly<T>(value: unknown, parse: (text: string) => T): T | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    return parse(value);
  } catch {
    return undefined;
  }
}

/**
 * An IP address in canonical text (IPv6 compressed, lower case). Only plain
 * dotted-quad IPv4 ("10.1" or "010.0.0.1" mean other things to other
 * parsers) and IPv6 without a zone (src/address.ts parseAddress).
 */
export function ipAddress(field: string, value: unknown, family?: Family): { ip: string; family: Family } {
  const address = strictly(value, parseAddress);
  if (!address) throw new FirewallInputError(field, value, 'not an IPv4 or IPv6 address');
  return checkFamily(field, value as string, { ip: address.text, family: address.family }, family);
}

function checkFamily<T extends { family: Family }>(field: string, value: string, got: T, want?: Family): T {
  if (want !== undefined && got.family !== want) {
    throw new FirewallInputError(field, value, `not an IPv${want} address`);
  }
  return got;
}

/**
 * A prefix such as "10.77.0.0/24", returned as its network address and
 * length ("10.77.0.5/24" becomes "10.77.0.0/24", as iptables would show it).
 */
export function cidr(field: string, value: unknown, family?: Family): { cidr: string; family: Family } {
  const network = strictly(value, prefixNetwork);
  if (!network)
    throw new FirewallInputError(field, value, 'not a CIDR prefix such as 10.0.0.0/24 or fd00::/64');
  checkFamily(field, value as string, network, family);
  return { cidr: network.cidr, family: network.family };
}

/** A TCP/UDP/SCTP port, 1-65535. */
export function port(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new FirewallInputError(field, value, 'not a port number 1-65535');
  }
  return value;
}
