import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { disableIpv6, linkAdd, linkSetUp, sysctlGet, sysctlSet } from '../../../src/kernel/index.js';
import { ipJson, run } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

describe('sysctls', () => {
  it('writes and reads in one namespace without touching the current one', () => {
    const ns = testNetns();
    const here = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const other = here === '1' ? '0' : '1';
    sysctlSet('net.ipv4.ip_forward', other, ns.path);
    expect(run('sysctl', ['-n', 'net.ipv4.ip_forward'], { netns: ns.path }).trim()).toBe(other);
    expect(sysctlGet('net.ipv4.ip_forward', ns.path)).toBe(other);
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe(here);
    expect(sysctlGet('net/ipv4/ip_forward')).toBe(here);
  });

  it('disableIpv6: a link turned off before it is up never gets a link-local address', async () => {
    const ns = testNetns();
    await linkAdd(ns.nl, { kind: 'veth', name: 'quiet0', peer: { name: 'loud0' } });
    expect(disableIpv6('quiet0', ns.path)).toBe(true);
    await linkSetUp(ns.nl, 'quiet0');
    await linkSetUp(ns.nl, 'loud0');
    expect(sysctlGet('net/ipv6/conf/quiet0/disable_ipv6', ns.path)).toBe('1');
    const inet6 = (dev: string) =>
      ipJson<{ addr_info: { family: string }[] }[]>(['addr', 'show', 'dev', dev], ns.path)
        .flatMap((l) => l.addr_info)
        .filter((a) => a.family === 'inet6');
    expect(inet6('quiet0')).toEqual([]);
    expect(inet6('loud0')).not.toEqual([]);
    expect(() => disableIpv6('nosuch0', ns.path)).toThrow(/ENOENT/);
  });

  it('accepts slash form for names with dots and refuses anything outside net.*', () => {
    const ns = testNetns();
    expect(sysctlGet('net/ipv4/conf/lo/forwarding', ns.path)).toMatch(/^[01]$/);
    for (const bad of ['kernel.hostname', 'net/../kernel/hostname', '/etc/passwd', 'net.']) {
      expect(() => sysctlGet(bad)).toThrow(TypeError);
    }
  });
});
