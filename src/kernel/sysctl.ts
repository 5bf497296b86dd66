/**
 * Network sysctls, in any namespace. /proc/sys/net/* shows the namespace of
 * the thread that opens the file, so the read or write happens inside
 * withNetns.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hasErrorCode } from './errors.js';
import { type NetnsRef, withNetns } from './netns.js';

// Keys as sysctl(8) spells them; slashes allowed for names with dots
// (net/ipv4/conf/eth0.10/forwarding). No "..": a key is never a path escape.
const KEY = /^net[./][A-Za-z0-9_./-]+$/;

function sysctlPath(key: string): string {
  if (!KEY.test(key) || key.includes('..'))
    throw new TypeError(`invalid network sysctl ${JSON.stringify(key)}`);
  return `/proc/sys/${key.includes('/') ? key : key.replaceAll('.', '/')}`;
}

function inNetns<T>(ns: NetnsRef | undefined, fn: () => T): T {
  return ns === undefined ? fn() : withNetns(ns, fn);
}

/** Equivalent to: `sysctl -n KEY` (in ns, or the current namespace). */
export function sysctlGet(key: string, ns?: NetnsRef): string {
  const path = sysctlPath(key);
  return inNetns(ns, () => readFileSync(path, 'utf8').trim());
}

/** Equivalent to: `sysctl -w KEY=VALUE` (in ns, or the current namespace). */
export function sysctlSet(key: string, value: string, ns?: NetnsRef): void {
  const path = sysctlPath(key);
  inNetns(ns, () => writeFileSync(path, value));
}

/**
 * Equivalent to: `sysctl -w net.ipv6.conf.IFNAME.disable_ipv6=1`. Done before
 * the link comes up, it never gets a link-local address, so it sends no DAD,
 * router solicitation or MLD report: on a bridge every such multicast is
 * flooded to every port, which with hundreds of ports costs each new
 * endpoint more than the one before. False when the kernel has no IPv6 (no
 * /proc/sys/net/ipv6): nothing to turn off.
 */
export function disableIpv6(ifname: string, ns?: NetnsRef): boolean {
  try {
    sysctlSet(`net/ipv6/conf/${ifname}/disable_ipv6`, '1', ns);
    return true;
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT') && !existsSync('/proc/sys/net/ipv6')) return false;
    throw err;
  }
}
