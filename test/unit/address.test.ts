import { describe, expect, it } from 'vitest';
import {
  broadcastAddress,
  bytesToIp,
  containsSubnet,
  familyOf,
  formatAddress,
  ipToBytes,
  matchCidr,
  overlaps,
  parseAddress,
  parsePrefix,
  parseSubnet,
  prefixNetwork,
} from '../../src/address.js';

describe('IP encoding', () => {
  it('encodes v4 and v6 to wire bytes and back', () => {
    expect([...ipToBytes('10.1.2.3')]).toEqual([10, 1, 2, 3]);
    expect(ipToBytes('fd00::1')).toHaveLength(16);
    expect(bytesToIp(ipToBytes('fd00::1'))).toBe('fd00::1');
    expect(familyOf('fd00::1')).toBe(6);
  });
});

describe('parsePrefix', () => {
  it('parses prefixes keeping host bits and computes broadcast', () => {
    const p = parsePrefix('10.1.2.3/24');
    expect(p).toEqual({ ip: '10.1.2.3', prefixLength: 24, family: 4 });
    expect(broadcastAddress(p)).toBe('10.1.2.255');
    expect(() => parsePrefix('10.1.2.3')).toThrow();
    expect(() => parsePrefix('10.1.2.3/33')).toThrow();
  });

  it('matches an address against a prefix of its own family only', () => {
    expect(matchCidr('10.1.2.3', '10.1.0.0/16')).toBe(true);
    expect(matchCidr('10.1.2.3', '10.1.2.9/24')).toBe(true);
    expect(matchCidr('10.2.0.1', '10.1.0.0/16')).toBe(false);
    expect(matchCidr('::ffff:10.1.2.3', '10.1.0.0/16')).toBe(false);
  });
});

describe('parseSubnet', () => {
  it('reads IPv4 and IPv6 subnets into canonical form', () => {
    expect(parseSubnet('10.0.0.0/24')).toEqual({
      cidr: '10.0.0.0/24',
      family: 4,
      prefixLength: 24,
      base: 0x0a000000n,
      size: 256n,
    });
    expect(parseSubnet('FD00:0:0::/64')).toMatchObject({ cidr: 'fd00::/64', family: 6, size: 2n ** 64n });
    expect(parseSubnet('0.0.0.0/0').size).toBe(2n ** 32n);
    expect(parseSubnet('10.1.2.3/32').size).toBe(1n);
  });

  it.each([
    ['10.0.0.0', /not in CIDR notation/],
    ['10.0.0.0/33', /not in CIDR notation/],
    ['10.0.0/24', /not in CIDR notation/],
    ['010.0.0.0/24', /not in CIDR notation/],
    ['banana/24', /not in CIDR notation/],
    ['10.0.0.0/24 ', /not in CIDR notation/],
    ['fd00::/129', /not in CIDR notation/],
    ['10.0.0.5/24', /host bits set; the network is 10\.0\.0\.0\/24/],
    ['fd00::1/64', /host bits set; the network is fd00::\/64/],
    ['::ffff:10.0.0.0/104', /IPv4-mapped/],
  ])('refuses %s with ipam.invalid_cidr', (text, message) => {
    expect(() => parseSubnet(text)).toThrow(
      expect.objectContaining({ code: 'ipam.invalid_cidr', message: expect.stringMatching(message) }),
    );
  });
});

describe('prefixNetwork', () => {
  it('reads a prefix as its network, host bits cleared, the address as strictly as parseAddress', () => {
    expect(prefixNetwork('10.77.0.5/24')).toMatchObject({
      cidr: '10.77.0.0/24',
      family: 4,
      prefixLength: 24,
    });
    expect(prefixNetwork('FD00::1:2/64').cidr).toBe('fd00::/64');
    expect(prefixNetwork('0.0.0.0/0').cidr).toBe('0.0.0.0/0');
    expect(prefixNetwork('10.0.0.1/32').cidr).toBe('10.0.0.1/32');
    for (const bad of [
      '10.1/8',
      '010.0.0.1/8',
      '10.0.0.0/33',
      'fd00::/129',
      '10.0.0.0/024',
      '10.0.0.0',
      '/24',
      'fe80::1%eth0/64',
    ])
      expect(() => prefixNetwork(bad), bad).toThrow();
  });
});

describe('parseAddress / formatAddress', () => {
  it('round-trips through integers', () => {
    for (const text of [
      '10.0.0.1',
      '255.255.255.255',
      '0.0.0.0',
      'fd00::1',
      '2001:db8::ff00:42:8329',
      '::',
    ]) {
      const a = parseAddress(text);
      expect(formatAddress(a.value, a.family)).toBe(text);
    }
    expect(parseAddress('FD00:0000::0001').text).toBe('fd00::1');
  });

  it.each(['10.1', '0xa.0.0.1', '10.0.0.256', 'fe80::1%eth0', '', '10.0.0.1/24'])('refuses %j', (text) => {
    expect(() => parseAddress(text)).toThrow(expect.objectContaining({ code: 'ipam.invalid_address' }));
  });
});

describe('subnet relations', () => {
  it('overlap and containment', () => {
    const a = parseSubnet('10.0.0.0/16');
    expect(overlaps(a, parseSubnet('10.0.255.0/24'))).toBe(true);
    expect(overlaps(parseSubnet('10.0.255.0/24'), a)).toBe(true);
    expect(overlaps(a, parseSubnet('10.1.0.0/16'))).toBe(false);
    expect(overlaps(a, parseSubnet('0.0.0.0/0'))).toBe(true);
    expect(overlaps(parseSubnet('fd00::/64'), parseSubnet('fd00::/8'))).toBe(true);
    expect(overlaps(parseSubnet('::/0'), a)).toBe(false);
    expect(containsSubnet(a, parseSubnet('10.0.3.0/24'))).toBe(true);
    expect(containsSubnet(parseSubnet('10.0.3.0/24'), a)).toBe(false);
  });
});
