/**
 * Checks for every value that ends up in an iptables-restore line. Each one
 * either returns the value in canonical form or throws FirewallInputError;
 * nothing here trusts its caller, because the values come from Docker, CNI
 * configs and the CLI.
 */
import ipaddr from 'ipaddr.js';
import type { Family } from '../address.js';
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

const DECIMAL = /^(0|[1-9][0-9]{0,2})$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;

/**
 * An IP address in canonical text (IPv6 compressed, lower case). Only plain
 * dotted-quad IPv4 ("10.1" or "010.0.0.1" mean other things to other
 * parsers) and IPv6 without a zone.
 */
export function ipAddress(field: string, value: unknown, family?: Family): { ip: string; family: Family } {
  if (typeof value === 'string') {
    if (value.split('.').length === 4 && value.split('.').every((part) => DECIMAL.test(part))) {
      if (ipaddr.IPv4.isValidFourPartDecimal(value)) {
        return checkFamily(field, value, { ip: ipaddr.IPv4.parse(value).toString(), family: 4 }, family);
      }
    } else if (IPV6_CHARS.test(value) && value.includes(':') && ipaddr.IPv6.isValid(value)) {
      return checkFamily(field, value, { ip: ipaddr.IPv6.parse(value).toString(), family: 6 }, family);
    }
  }
  throw new FirewallInputError(field, value, 'not an IPv4 or IPv6 address');
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
  if (typeof value === 'string') {
    const slash = value.indexOf('/');
    const length = value.slice(slash + 1);
    if (slash > 0 && /^(0|[1-9][0-9]{0,2})$/.test(length)) {
      const { ip, family: got } = ipAddress(field, value.slice(0, slash));
      const bits = Number(length);
      if (bits <= (got === 4 ? 32 : 128)) {
        checkFamily(field, value, { family: got }, family);
        const network =
          got === 4
            ? ipaddr.IPv4.networkAddressFromCIDR(`${ip}/${bits}`)
            : ipaddr.IPv6.networkAddressFromCIDR(`${ip}/${bits}`);
        return { cidr: `${network.toString()}/${bits}`, family: got };
      }
    }
  }
  throw new FirewallInputError(field, value, 'not a CIDR prefix such as 10.0.0.0/24 or fd00::/64');
}

/** A TCP/UDP/SCTP port, 1-65535. */
export function port(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new FirewallInputError(field, value, 'not a port number 1-65535');
  }
  return value;
}
