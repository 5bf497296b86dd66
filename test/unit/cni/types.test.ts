import { describe, expect, it } from 'vitest';
import {
  anyResultSchema,
  convertResult,
  mergeResults,
  parseCniArgs,
  type Result,
  upconvertResult,
  versionAtLeast,
} from '../../../src/cni/types.js';

describe('prevResult in any version', () => {
  it('reads a 0.4.0 result (ips with version) up into 1.1.0, and back down unchanged', () => {
    const v040 = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x' }],
      ips: [{ version: '4', address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: {},
    };
    const up = upconvertResult(anyResultSchema.parse(v040));
    expect(up).toEqual({
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x' }],
      ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
    const { dns: _empty, ...rest } = v040;
    expect(convertResult(up, '0.4.0')).toEqual(rest);
  });

  it('an IPAM result has no interfaces (SPEC.md "Delegated plugins")', () => {
    const up = upconvertResult(
      anyResultSchema.parse({ cniVersion: '1.0.0', ips: [{ address: 'fd00::5/64' }] }),
    );
    expect(convertResult(up, '0.3.1')).toEqual({
      cniVersion: '0.3.1',
      ips: [{ version: '6', address: 'fd00::5/64' }],
    });
  });

  it('refuses an address that is not CIDR', () => {
    expect(anyResultSchema.safeParse({ ips: [{ address: '10.1.0.2' }] }).success).toBe(false);
  });
});

describe('chaining', () => {
  it('appends our interfaces, shifts our IPs to them, keeps the earlier DNS', () => {
    const prev: Result = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'dummy0' }, { name: 'net1', sandbox: '/run/netns/x' }],
      ips: [{ address: '192.168.5.2/24', interface: 1 }],
      dns: { nameservers: ['192.168.5.1'] },
    };
    const own: Result = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'br' }, { name: 'eth0', sandbox: '/run/netns/x' }],
      ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
      dns: { nameservers: ['10.1.0.1'] },
    };
    expect(mergeResults(prev, own)).toEqual({
      cniVersion: '1.1.0',
      interfaces: [
        { name: 'dummy0' },
        { name: 'net1', sandbox: '/run/netns/x' },
        { name: 'br' },
        { name: 'eth0', sandbox: '/run/netns/x' },
      ],
      ips: [
        { address: '192.168.5.2/24', interface: 1 },
        { address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 3 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
      dns: { nameservers: ['192.168.5.1'] },
    });
    expect(mergeResults(undefined, own)).toBe(own);
  });
});

it('versions compare as semver', () => {
  expect(versionAtLeast('0.4.0', '0.4.0')).toBe(true);
  expect(versionAtLeast('1.0.0', '0.4.0')).toBe(true);
  expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
  expect(versionAtLeast('0.10.0', '0.4.0')).toBe(true);
});

it('CNI_ARGS: KEY=VALUE pairs separated by ;', () => {
  expect([...parseCniArgs('IgnoreUnknown=1;IP=10.1.0.5,fd00::5;K8S_POD_NAME=a=b')]).toEqual([
    ['IgnoreUnknown', '1'],
    ['IP', '10.1.0.5,fd00::5'],
    ['K8S_POD_NAME', 'a=b'],
  ]);
  expect(parseCniArgs('').size).toBe(0);
  expect(() => parseCniArgs('IP')).toThrow(/invalid pair/);
  expect(() => parseCniArgs('=x')).toThrow(/invalid pair/);
});
