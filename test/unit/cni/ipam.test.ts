/** netctl-ipam's verbs on the real IPAM over the in-memory store. */
import { beforeEach, describe, expect, it } from 'vitest';
import { attachmentOwner, netctlIpamHandlers } from '../../../src/cni/ipam.js';
import { dispatch } from '../../../src/cni/skel.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { MemoryStore } from '../../../src/kv/testing/memory.js';

let ipam: Ipam;

beforeEach(() => {
  ipam = new Ipam(new MemoryStore());
});

const conf = (ipamSection: object = {}, extra: object = {}) => ({
  cniVersion: '1.1.0',
  name: 'refnet',
  type: 'bridge',
  ipam: { type: 'netctl-ipam', subnet: '10.7.0.0/24', routes: [{ dst: '0.0.0.0/0' }], ...ipamSection },
  ...extra,
});

async function call(command: string, config: object, env: Record<string, string> = {}) {
  let stdout = '';
  const code = await dispatch(
    {
      getenv: (n) =>
        ({
          CNI_COMMAND: command,
          CNI_CONTAINERID: 'c1',
          CNI_NETNS: '/run/netns/x',
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/x',
          ...env,
        })[n],
      readStdin: async () => JSON.stringify(config),
      stdout: (t) => {
        stdout += t;
      },
    },
    netctlIpamHandlers({ ipam: async () => ipam }),
  );
  return { code, out: stdout ? JSON.parse(stdout) : undefined };
}

describe('netctl-ipam', () => {
  it('ADD: an address and the gateway from its own pool, the configured routes, no interfaces', async () => {
    const r = await call('ADD', conf());
    expect(r).toEqual({
      code: 0,
      out: {
        cniVersion: '1.1.0',
        ips: [{ address: '10.7.0.2/24', gateway: '10.7.0.1' }],
        routes: [{ dst: '0.0.0.0/0' }],
      },
    });
    const [pool] = await ipam.listPools('local');
    expect(pool).toMatchObject({ subnet: '10.7.0.0/24', owner: 'cni-ipam:refnet', gateway: '10.7.0.1' });
    expect(await ipam.allocationsOf(attachmentOwner('c1', 'eth0'))).toEqual([
      { poolId: pool?.poolId, address: '10.7.0.2' },
    ]);
  });

  it('ADD again for the same attachment gets the same address; another gets the next', async () => {
    await call('ADD', conf());
    expect((await call('ADD', conf())).out.ips[0].address).toBe('10.7.0.2/24');
    expect((await call('ADD', conf(), { CNI_CONTAINERID: 'c2' })).out.ips[0].address).toBe('10.7.0.3/24');
  });

  it('a static address from runtimeConfig or CNI_ARGS; dual stack with subnets', async () => {
    expect(
      (await call('ADD', conf({}, { runtimeConfig: { ips: ['10.7.0.40/24'] } }))).out.ips[0].address,
    ).toBe('10.7.0.40/24');
    expect(
      (await call('ADD', conf(), { CNI_CONTAINERID: 'c2', CNI_ARGS: 'IP=10.7.0.41' })).out.ips[0].address,
    ).toBe('10.7.0.41/24');
    const dual = conf({
      subnet: undefined,
      subnets: [{ subnet: '10.8.0.0/24' }, { subnet: 'fd08::/64', gateway: 'fd08::1' }],
    });
    expect((await call('ADD', { ...dual, name: 'dual' }, { CNI_CONTAINERID: 'c3' })).out.ips).toEqual([
      { address: '10.8.0.2/24', gateway: '10.8.0.1' },
      { address: 'fd08::2/64', gateway: 'fd08::1' },
    ]);
  });

  it('a refused ADD changes nothing: the pool it made and the address it took go back', async () => {
    const dual = conf({ subnet: undefined, subnets: [{ subnet: '10.8.0.0/24' }, { subnet: 'fd08::/64' }] });
    // The IPv4 address is taken; the static IPv6 one is outside its subnet.
    const refused = await call('ADD', dual, { CNI_ARGS: 'IP=fd09::5' });
    expect(refused.code).not.toBe(0);
    expect(await ipam.listPools('local')).toEqual([]);
    expect(await ipam.allocationsOf(attachmentOwner('c1', 'eth0'))).toEqual([]);
    // A pool it found (another attachment's) stays, with what that one holds.
    await call('ADD', conf(), { CNI_CONTAINERID: 'c2' });
    expect((await call('ADD', conf(), { CNI_ARGS: 'IP=10.9.0.5' })).code).not.toBe(0);
    expect((await ipam.listPools('local')).map((p) => p.allocated)).toEqual([1]);
  });

  it('DEL releases, and again is fine', async () => {
    await call('ADD', conf());
    expect((await call('DEL', conf())).code).toBe(0);
    expect(await ipam.allocationsOf(attachmentOwner('c1', 'eth0'))).toEqual([]);
    expect((await call('DEL', conf())).code).toBe(0);
    expect((await call('DEL', conf({ subnet: '10.99.0.0/24' }))).code).toBe(0);
  });

  it('CHECK: the reservation and prevResult must agree', async () => {
    const added = (await call('ADD', conf())).out;
    expect((await call('CHECK', conf({}, { prevResult: added }))).code).toBe(0);
    await call('DEL', conf());
    expect((await call('CHECK', conf({}, { prevResult: added }))).out).toMatchObject({ code: 102 });
  });

  it('GC releases the attachments not in the list', async () => {
    for (const id of ['a', 'b', 'c']) await call('ADD', conf(), { CNI_CONTAINERID: id });
    const gc = { ...conf(), 'cni.dev/valid-attachments': [{ containerID: 'b', ifname: 'eth0' }] };
    expect((await call('GC', gc)).code).toBe(0);
    expect((await ipam.listAllocations()).map((a) => a.owner)).toEqual(['cni:b/eth0']);
  });

  it("a subnet that is another pool's, or no subnet at all: error 7", async () => {
    await ipam.requestPool({ subnet: '10.7.0.0/24', owner: 'net:abc' });
    expect((await call('ADD', conf())).out).toMatchObject({
      code: 7,
      msg: 'subnet 10.7.0.0/24 is already a netctl pool of net:abc',
    });
    expect((await call('ADD', conf({ subnet: undefined }))).out).toMatchObject({ code: 7 });
    expect((await call('ADD', conf({ subnet: '10.7.0.0/16' }))).out).toMatchObject({
      code: 100,
      details: 'NETCTL_POOL_OVERLAP',
    });
  });

  it('50 concurrent first ADDs: one pool, 50 distinct addresses', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => call('ADD', conf(), { CNI_CONTAINERID: `c${i}` })),
    );
    expect(results.every((r) => r.code === 0)).toBe(true);
    expect(new Set(results.map((r) => r.out.ips[0].address)).size).toBe(50);
    expect(await ipam.listPools('local')).toHaveLength(1);
  });
});
