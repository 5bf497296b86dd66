import { describe, expect, it } from 'vitest';
import { parseSubnet } from '../../../src/address.js';
import { buildPoolRecord, DEFAULT_POOLS, pickDefaultSubnet, viewOfPool } from '../../../src/ipam/pool.js';

const now = new Date('2026-01-01T00:00:00Z');

describe('pool views', () => {
  it('an IPv4 /24: gateway .1, dynamic .1-.254 minus the gateway', () => {
    const view = viewOfPool(buildPoolRecord('local', parseSubnet('10.0.0.0/24'), {}, now));
    expect(view.record).toMatchObject({ id: 'local/10.0.0.0/24', gateway: '10.0.0.1' });
    expect([view.lo, view.hi, view.reservedInRange]).toEqual([1n, 254n, 1]);
  });

  it('ip-range limits dynamic bounds; network and broadcast stay out', () => {
    const v = viewOfPool(
      buildPoolRecord('local', parseSubnet('10.0.0.0/24'), { ipRange: '10.0.0.128/25' }, now),
    );
    expect([v.lo, v.hi, v.reservedInRange]).toEqual([128n, 254n, 0]);
    const low = viewOfPool(
      buildPoolRecord('local', parseSubnet('10.0.0.0/24'), { ipRange: '10.0.0.0/28' }, now),
    );
    expect([low.lo, low.hi, low.reservedInRange]).toEqual([1n, 15n, 1]);
  });

  it('/31 and /32 use every address; /32 has no default gateway', () => {
    const p31 = viewOfPool(buildPoolRecord('local', parseSubnet('10.0.0.0/31'), {}, now));
    expect([p31.lo, p31.hi, p31.record.gateway]).toEqual([0n, 1n, '10.0.0.0']);
    const p32 = viewOfPool(buildPoolRecord('local', parseSubnet('10.0.0.7/32'), {}, now));
    expect([p32.lo, p32.hi, p32.record.gateway]).toEqual([0n, 0n, undefined]);
  });

  it('IPv6 skips only the subnet-router anycast address', () => {
    const v = viewOfPool(buildPoolRecord('local', parseSubnet('fd00::/64'), {}, now));
    expect([v.lo, v.hi, v.record.gateway]).toEqual([1n, 2n ** 64n - 1n, 'fd00::1']);
  });

  it('rejects bad gateways, ranges and aux addresses with typed errors', () => {
    const s = parseSubnet('10.0.0.0/24');
    const cases: [object, string, RegExp][] = [
      [{ gateway: '10.0.1.1' }, 'ipam.address_out_of_range', /gateway 10\.0\.1\.1 is not in 10\.0\.0\.0\/24/],
      [{ gateway: '10.0.0.0' }, 'ipam.invalid_address', /network address/],
      [{ gateway: '10.0.0.255' }, 'ipam.invalid_address', /broadcast address/],
      [{ gateway: 'fd00::1' }, 'ipam.invalid_address', /IPv6 but subnet 10\.0\.0\.0\/24 is IPv4/],
      [{ gateway: 'nope' }, 'ipam.invalid_address', /not an IPv4 address/],
      [{ ipRange: '10.0.1.0/25' }, 'ipam.address_out_of_range', /ip-range 10\.0\.1\.0\/25 is not in/],
      [{ ipRange: '10.0.0.0/23' }, 'ipam.address_out_of_range', /ip-range/],
      [{ ipRange: '10.0.0.1/25' }, 'ipam.invalid_cidr', /host bits/],
      [{ ipRange: '10.0.0.255/32' }, 'ipam.invalid_request', /no assignable address/],
      [{ auxAddresses: { a: '10.0.2.1' } }, 'ipam.address_out_of_range', /aux address a 10\.0\.2\.1/],
      [{ auxAddresses: { a: '10.0.0.1' } }, 'ipam.invalid_request', /already the gateway/],
      [{ auxAddresses: { a: '10.0.0.9', b: '10.0.0.9' } }, 'ipam.invalid_request', /already aux address a/],
    ];
    for (const [request, code, message] of cases) {
      expect(() => buildPoolRecord('local', s, request, now), JSON.stringify(request)).toThrow(
        expect.objectContaining({ code, message: expect.stringMatching(message) }),
      );
    }
  });
});

describe('pickDefaultSubnet', () => {
  const local = DEFAULT_POOLS.local!;
  const global = DEFAULT_POOLS.global!;

  it('hands out Docker default pools in order, skipping what is taken', () => {
    expect(pickDefaultSubnet(local, 4, [])?.cidr).toBe('172.17.0.0/16');
    expect(pickDefaultSubnet(local, 4, [parseSubnet('172.17.0.0/16')])?.cidr).toBe('172.18.0.0/16');
    expect(
      pickDefaultSubnet(local, 4, [parseSubnet('172.17.5.0/24'), parseSubnet('172.18.0.0/15')])?.cidr,
    ).toBe('172.20.0.0/16');
    expect(pickDefaultSubnet(global, 4, [])?.cidr).toBe('10.0.0.0/24');
    expect(pickDefaultSubnet(global, 4, [parseSubnet('10.0.0.0/24'), parseSubnet('10.0.1.0/24')])?.cidr).toBe(
      '10.0.2.0/24',
    );
    expect(pickDefaultSubnet(global, 4, [parseSubnet('10.0.0.0/16')])?.cidr).toBe('10.1.0.0/24');
  });

  it('after the 172.x /16s come 192.168.x.0/20s; then nothing', () => {
    const taken = Array.from({ length: 15 }, (_, i) => parseSubnet(`172.${17 + i}.0.0/16`));
    expect(pickDefaultSubnet(local, 4, taken)?.cidr).toBe('192.168.0.0/20');
    expect(pickDefaultSubnet(local, 4, [...taken, parseSubnet('192.168.0.0/17')])?.cidr).toBe(
      '192.168.128.0/20',
    );
    expect(pickDefaultSubnet(local, 4, [...taken, parseSubnet('192.168.0.0/16')])).toBeUndefined();
  });

  it('is fast over a /8 carved into /24s with many pools taken', () => {
    const taken = Array.from({ length: 2000 }, (_, i) => parseSubnet(`10.${i >> 8}.${i & 255}.0/24`));
    const started = performance.now();
    expect(pickDefaultSubnet(global, 4, taken)?.cidr).toBe('10.7.208.0/24');
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('has no IPv6 defaults unless configured', () => {
    expect(pickDefaultSubnet(local, 6, [])).toBeUndefined();
    expect(pickDefaultSubnet([{ base: 'fd00::/48', size: 64 }], 6, [parseSubnet('fd00::/64')])?.cidr).toBe(
      'fd00:0:0:1::/64',
    );
  });
});
