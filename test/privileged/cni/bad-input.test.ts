/**
 * Bad input through the shim, as a runtime would send it, with a daemon and
 * standalone: each gets the spec's error code (and exit status) for what is
 * wrong, and changes nothing — not the kernel, not the store, not the
 * attachment that was there before.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONFIG_BYTES } from '../../../src/cni/skel.js';
import { createNetns } from '../../../src/kernel/index.js';
import { assertBuilt, Daemon, daemonInventory } from '../controller/daemon-fixture.js';
import { type CniCall, type CniHost, cniHost, execPlugin, ours } from './fixture.js';

beforeAll(assertBuilt);

const MODES = [
  { name: 'daemon', start: (host: CniHost) => Daemon.start(host.dir) },
  { name: 'standalone', start: async () => undefined },
] as const;

const GOOD = { cniVersion: '1.0.0', name: 'badnet', type: 'netctl-cni', subnet: '10.77.0.0/24' };
const IPAM = {
  cniVersion: '1.0.0',
  name: 'badipam',
  type: 'bridge',
  ipam: { type: 'netctl-ipam', subnet: '10.78.0.0/24' },
};

interface Case {
  what: string;
  plugin?: 'netctl-cni' | 'netctl-ipam';
  call?: Partial<CniCall>;
  config: unknown;
  code: number;
  msg: string;
  /** Text the details must contain (the field at fault). */
  details?: string;
}

const CASES: Case[] = [
  {
    what: 'stdin over the limit',
    config: JSON.stringify({ ...GOOD, pad: 'x'.repeat(MAX_CONFIG_BYTES) }),
    code: 5,
    msg: 'network configuration on stdin is too large',
    details: `more than ${MAX_CONFIG_BYTES} bytes`,
  },
  {
    what: 'malformed JSON',
    config: '{"cniVersion": "1.0.0", "name": ',
    code: 6,
    msg: 'error decoding the network configuration',
  },
  { what: 'JSON but no object', config: '[1, 2]', code: 6, msg: 'error decoding the network configuration' },
  {
    what: 'cniVersion a number',
    config: { ...GOOD, cniVersion: 1 },
    code: 6,
    msg: 'error decoding the network configuration',
  },
  {
    what: 'subnet a number',
    config: { ...GOOD, subnet: 42 },
    code: 7,
    msg: 'invalid network configuration',
    details: 'subnet',
  },
  {
    what: 'mtu a string',
    config: { ...GOOD, mtu: '1500' },
    code: 7,
    msg: 'invalid network configuration',
    details: 'mtu',
  },
  {
    what: 'ipMasq a string',
    config: { ...GOOD, ipMasq: 'yes' },
    code: 7,
    msg: 'invalid network configuration',
    details: 'ipMasq',
  },
  {
    what: 'portMappings of the wrong shape',
    config: { ...GOOD, runtimeConfig: { portMappings: [{ hostPort: 'http', containerPort: 80 }] } },
    code: 7,
    msg: 'invalid network configuration',
    details: 'portMappings',
  },
  {
    what: 'unknown network',
    config: { cniVersion: '1.0.0', name: 'nosuchnet', type: 'netctl-cni' },
    code: 7,
    msg: 'netctl network nosuchnet does not exist',
  },
  {
    what: 'a prefix length over 32',
    config: { ...GOOD, name: 'othernet', subnet: '10.79.0.0/33' },
    code: 7,
    msg: 'invalid network configuration',
    details: 'subnet',
  },
  {
    what: 'a bad CIDR in ipam',
    config: { cniVersion: '1.0.0', name: 'othernet', type: 'netctl-cni', ipam: { subnet: '10.79.0.300/24' } },
    code: 7,
    msg: 'invalid network configuration',
    details: 'ipam.subnet',
  },
  {
    what: 'another subnet than the network has',
    config: { ...GOOD, subnet: '10.80.0.0/24' },
    code: 7,
    msg: 'netctl network badnet exists with subnet 10.77.0.0/24',
  },
  {
    what: 'a name with a space',
    config: { ...GOOD, name: 'bad net' },
    code: 7,
    msg: 'invalid characters found in network name',
  },
  {
    what: 'a name starting with -',
    config: { ...GOOD, name: '-badnet' },
    code: 7,
    msg: 'invalid characters found in network name',
  },
  {
    what: 'a name that is a path',
    config: { ...GOOD, name: '../badnet' },
    code: 7,
    msg: 'invalid characters found in network name',
  },
  {
    what: 'a name that is no string',
    config: { ...GOOD, name: 7 },
    code: 7,
    msg: 'invalid characters found in network name',
  },
  {
    what: 'a netctl network name that is a path',
    config: { ...GOOD, network: 'a/b' },
    code: 7,
    msg: 'invalid network configuration',
    details: 'network',
  },
  {
    what: 'a container id with /',
    call: { containerId: 'bad/id' },
    config: GOOD,
    code: 4,
    msg: 'invalid CNI_CONTAINERID',
  },
  {
    what: 'a container id starting with .',
    call: { containerId: '.hidden' },
    config: GOOD,
    code: 4,
    msg: 'invalid CNI_CONTAINERID',
  },
  {
    what: 'an interface name of 16 characters',
    call: { ifname: 'e'.repeat(16) },
    config: GOOD,
    code: 4,
    msg: 'invalid CNI_IFNAME',
  },
  // The attachment that exists: a bad call for it must leave it be.
  {
    what: 'ADD of the existing container, a field of the wrong type',
    call: { containerId: 'c-ok' },
    config: { ...GOOD, mtu: -1 },
    code: 7,
    msg: 'invalid network configuration',
    details: 'mtu',
  },
  {
    what: 'DEL of the existing container, malformed JSON',
    call: { command: 'DEL', containerId: 'c-ok' },
    config: '{',
    code: 6,
    msg: 'error decoding the network configuration',
  },
  {
    what: 'DEL of the existing container, unknown version',
    call: { command: 'DEL', containerId: 'c-ok' },
    config: { ...GOOD, cniVersion: '9.9.9' },
    code: 1,
    msg: 'incompatible CNI versions',
  },
  // netctl-ipam, as another plugin's ipam.
  {
    what: 'ipam: a bad CIDR',
    plugin: 'netctl-ipam',
    config: { ...IPAM, ipam: { type: 'netctl-ipam', subnet: '10.78.0.0/99' } },
    code: 7,
    msg: 'invalid network configuration',
    details: 'ipam.subnet',
  },
  {
    what: 'ipam: a gateway that is no address',
    plugin: 'netctl-ipam',
    config: { ...IPAM, ipam: { ...IPAM.ipam, gateway: 'gw' } },
    code: 7,
    msg: 'invalid network configuration',
    details: 'ipam.gateway',
  },
  {
    what: 'ipam: no subnet',
    plugin: 'netctl-ipam',
    config: { ...IPAM, ipam: { type: 'netctl-ipam' } },
    code: 7,
    msg: 'ipam.subnet (or ipam.subnets) is required',
  },
  {
    what: 'ipam: no ipam section',
    plugin: 'netctl-ipam',
    config: { cniVersion: '1.0.0', name: 'badipam', type: 'bridge' },
    code: 7,
    msg: 'invalid network configuration',
    details: 'ipam',
  },
  {
    what: 'ipam: a name with a space',
    plugin: 'netctl-ipam',
    config: { ...IPAM, name: 'bad ipam' },
    code: 7,
    msg: 'invalid characters found in network name',
  },
];

describe.each(MODES)('bad input, $name', (mode) => {
  it('each gets its CNI error code and exit status, and changes nothing', async () => {
    const host = cniHost();
    await mode.start(host);
    const ok = createNetns(`bo${mode.name[0]}`);
    const bad = createNetns(`bb${mode.name[0]}`);
    const good = await execPlugin(
      host,
      ours(host),
      { command: 'ADD', containerId: 'c-ok', netns: ok, ifname: 'eth0' },
      GOOD,
    );
    expect(good.code, good.stdout).toBe(0);
    const ipamGood = await execPlugin(
      host,
      ours(host, 'netctl-ipam'),
      { command: 'ADD', containerId: 'c-ok', netns: ok, ifname: 'eth1' },
      IPAM,
    );
    expect(ipamGood.code, ipamGood.stdout).toBe(0);
    const before = await daemonInventory(host.dir);

    for (const c of CASES) {
      const call: CniCall = { command: 'ADD', containerId: 'c-bad', netns: bad, ifname: 'eth0', ...c.call };
      if (call.containerId === 'c-ok') call.netns = ok;
      const r = await execPlugin(host, ours(host, c.plugin), call, c.config);
      expect(r.code, c.what).toBe(c.code);
      expect(r.json, `${c.what}: ${r.stdout}`).toMatchObject({ code: c.code, msg: c.msg });
      if (c.details) expect(r.json?.details, c.what).toContain(c.details);
    }

    expect(await daemonInventory(host.dir)).toEqual(before);
  }, 120_000);
});
