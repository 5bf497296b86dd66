import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sysctlGet, sysctlSet } from '../../../src/kernel/index.js';
import { run, testNetns } from '../harness.js';

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

  it('accepts slash form for names with dots and refuses anything outside net.*', () => {
    const ns = testNetns();
    expect(sysctlGet('net/ipv4/conf/lo/forwarding', ns.path)).toMatch(/^[01]$/);
    for (const bad of ['kernel.hostname', 'net/../kernel/hostname', '/etc/passwd', 'net.']) {
      expect(() => sysctlGet(bad)).toThrow(TypeError);
    }
  });
});
