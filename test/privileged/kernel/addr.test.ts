import { describe, expect, it } from 'vitest';
import {
  addrAdd,
  addrDel,
  addrList,
  addrReplace,
  LinkNotFoundError,
  linkAdd,
  linkIndex,
} from '../../../src/kernel/index.js';
import { ipJson } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

interface IpAddr {
  ifname: string;
  addr_info: {
    family: string;
    local: string;
    prefixlen: number;
    broadcast?: string;
    dadfailed?: boolean;
    tentative?: boolean;
  }[];
}

function ipAddrs(netns: string, dev: string): string[] {
  const [link] = ipJson<IpAddr[]>(['addr', 'show', 'dev', dev], netns);
  return (link?.addr_info ?? [])
    .filter((a) => !a.local.startsWith('fe80:'))
    .map((a) => `${a.local}/${a.prefixlen}`);
}

async function withVeth() {
  const ns = testNetns();
  await linkAdd(ns.nl, { kind: 'veth', name: 'v0', up: true, peer: { name: 'v1' } });
  return ns;
}

describe('addresses', () => {
  it('adds IPv4 with its broadcast, and IPv6 without DAD delay', async () => {
    const ns = await withVeth();
    await addrAdd(ns.nl, 'v0', '10.1.2.3/24');
    await addrAdd(ns.nl, 'v0', 'fd00:1::3/64', { noDad: true });
    expect(ipAddrs(ns.path, 'v0').sort()).toEqual(['10.1.2.3/24', 'fd00:1::3/64']);
    const [link] = ipJson<IpAddr[]>(['addr', 'show', 'dev', 'v0'], ns.path);
    expect(link?.addr_info.find((a) => a.local === '10.1.2.3')?.broadcast).toBe('10.1.2.255');
    expect(link?.addr_info.find((a) => a.local === 'fd00:1::3')?.tentative).toBeUndefined();
  });

  it('refuses a duplicate add, while replace is idempotent', async () => {
    const ns = await withVeth();
    await addrAdd(ns.nl, 'v0', '10.1.2.3/24');
    await expect(addrAdd(ns.nl, 'v0', '10.1.2.3/24')).rejects.toMatchObject({
      code: 'EEXIST',
      syscall: 'RTM_NEWADDR',
      message: `cannot add address 10.1.2.3/24 to "v0" in netns ${ns.path}: EEXIST (file already exists)`,
    });
    await addrReplace(ns.nl, 'v0', '10.1.2.3/24');
    await addrReplace(ns.nl, 'v0', '10.1.2.4/24');
    expect(ipAddrs(ns.path, 'v0').sort()).toEqual(['10.1.2.3/24', '10.1.2.4/24']);
  });

  it('lists by link and family, matching ip(8)', async () => {
    const ns = await withVeth();
    await addrAdd(ns.nl, 'v0', '10.1.2.3/24');
    await addrAdd(ns.nl, 'v1', '10.9.9.9/16');
    await addrAdd(ns.nl, 'v0', 'fd00:1::3/64', { noDad: true });
    const v0 = await linkIndex(ns.nl, 'v0');
    const four = await addrList(ns.nl, { link: 'v0', family: 4 });
    expect(four).toEqual([
      { index: v0, cidr: '10.1.2.3/24', ip: '10.1.2.3', prefixLength: 24, family: 4, scope: 0, label: 'v0' },
    ]);
    const six = (await addrList(ns.nl, { link: v0, family: 6 })).map((a) => a.cidr);
    expect(six).toContain('fd00:1::3/64');
    const all = (await addrList(ns.nl)).map((a) => a.cidr);
    expect(all).toEqual(expect.arrayContaining(['10.1.2.3/24', '10.9.9.9/16', 'fd00:1::3/64']));
  });

  it('deletes, and deleting an absent address is fine', async () => {
    const ns = await withVeth();
    await addrAdd(ns.nl, 'v0', '10.1.2.3/24');
    await addrDel(ns.nl, 'v0', '10.1.2.3/24');
    expect(ipAddrs(ns.path, 'v0')).toEqual([]);
    await expect(addrDel(ns.nl, 'v0', '10.1.2.3/24')).resolves.toBeUndefined();
  });

  it('reports an unknown link', async () => {
    const ns = testNetns();
    await expect(addrAdd(ns.nl, 'nope0', '10.0.0.1/24')).rejects.toBeInstanceOf(LinkNotFoundError);
  });

  it('rejects a string that is not a CIDR before touching the kernel', async () => {
    const ns = await withVeth();
    await expect(addrAdd(ns.nl, 'v0', '10.0.0.300/24')).rejects.toThrow();
    await expect(addrAdd(ns.nl, 'v0', '10.0.0.1')).rejects.toThrow();
    expect(ipAddrs(ns.path, 'v0')).toEqual([]);
  });
});
