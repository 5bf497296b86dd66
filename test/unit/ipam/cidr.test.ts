import { describe, expect, it } from 'vitest';
import { Bitmap, BLOCK_SIZE } from '../../../src/ipam/bitmap.js';
import {
  containsSubnet,
  formatAddress,
  overlaps,
  parseAddress,
  parseSubnet,
} from '../../../src/ipam/cidr.js';

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

describe('Bitmap', () => {
  it('sets, clears, counts and finds clear bits, round-tripping through base64', () => {
    const b = Bitmap.empty();
    for (let i = 0; i < 20; i++) b.set(i);
    b.set(19);
    expect(b.used).toBe(20);
    expect(b.findClear(0, BLOCK_SIZE - 1)).toBe(20);
    b.clear(5);
    expect(b.findClear(0, BLOCK_SIZE - 1)).toBe(5);
    expect(b.findClear(6, 19)).toBe(-1);
    const copy = Bitmap.decode(b.encode());
    expect(copy.used).toBe(19);
    expect(copy.has(5)).toBe(false);
    expect(copy.has(19)).toBe(true);
    for (let i = 0; i < BLOCK_SIZE; i++) copy.set(i);
    expect(copy.findClear(0, BLOCK_SIZE - 1)).toBe(-1);
    expect(() => Bitmap.decode('AAAA')).toThrow(/corrupt/);
  });
});
