import { describe, expect, it } from 'vitest';
import { fdbAppend, fdbDel, fdbList, fdbReplace, linkAdd, linkIndex } from '../../../src/kernel/index.js';
import { run } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

interface BridgeFdb {
  mac: string;
  ifname: string;
  dst?: string;
  vni?: number;
  flags: string[];
  state: string;
}

function bridgeFdb(netns: string, dev: string): BridgeFdb[] {
  return JSON.parse(run('bridge', ['-j', 'fdb', 'show', 'dev', dev], { netns })) as BridgeFdb[];
}

async function withVxlan() {
  const ns = testNetns();
  await linkAdd(ns.nl, { kind: 'vxlan', name: 'vx0', vni: 4097, local: '192.0.2.1' });
  return ns;
}

describe('fdb', () => {
  it('appends several VTEPs for the flood entry and a unicast entry with its dst', async () => {
    const ns = await withVxlan();
    await fdbAppend(ns.nl, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
    await fdbAppend(ns.nl, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.3' });
    await fdbAppend(ns.nl, { link: 'vx0', mac: '02:00:0a:00:00:02', dst: '192.0.2.2' });
    const entries = bridgeFdb(ns.path, 'vx0').filter((e) => e.dst);
    expect(entries.map((e) => `${e.mac} ${e.dst} ${e.state}`).sort()).toEqual([
      '00:00:00:00:00:00 192.0.2.2 permanent',
      '00:00:00:00:00:00 192.0.2.3 permanent',
      '02:00:0a:00:00:02 192.0.2.2 permanent',
    ]);
    expect(entries.every((e) => e.flags.includes('self'))).toBe(true);
  });

  it('replaces the dst of an entry that moved, and stores a VNI', async () => {
    const ns = await withVxlan();
    await fdbAppend(ns.nl, { link: 'vx0', mac: '02:00:0a:00:00:02', dst: '192.0.2.2' });
    await fdbReplace(ns.nl, { link: 'vx0', mac: '02:00:0a:00:00:02', dst: '192.0.2.9', vni: 5000 });
    const entries = bridgeFdb(ns.path, 'vx0').filter((e) => e.mac === '02:00:0a:00:00:02');
    expect(entries).toEqual([expect.objectContaining({ dst: '192.0.2.9', vni: 5000 })]);
  });

  it('lists entries of one device', async () => {
    const ns = await withVxlan();
    await fdbAppend(ns.nl, { link: 'vx0', mac: '02:00:0a:00:00:02', dst: '192.0.2.2' });
    const index = await linkIndex(ns.nl, 'vx0');
    const entries = (await fdbList(ns.nl, { link: 'vx0' })).filter((e) => e.dst);
    expect(entries).toEqual([
      {
        linkIndex: index,
        mac: '02:00:0a:00:00:02',
        dst: '192.0.2.2',
        vni: undefined,
        master: false,
        self: true,
        permanent: true,
        static: false,
      },
    ]);
  });

  it('deletes one dst, and deleting an absent entry is fine', async () => {
    const ns = await withVxlan();
    await fdbAppend(ns.nl, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
    await fdbAppend(ns.nl, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.3' });
    await fdbDel(ns.nl, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
    expect(bridgeFdb(ns.path, 'vx0').map((e) => e.dst)).toEqual(['192.0.2.3']);
    await expect(
      fdbDel(ns.nl, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' }),
    ).resolves.toBeUndefined();
  });

  it('adds a static entry to a bridge port (master)', async () => {
    const ns = testNetns();
    await linkAdd(ns.nl, { kind: 'bridge', name: 'br0' });
    const master = await linkIndex(ns.nl, 'br0');
    await linkAdd(ns.nl, { kind: 'veth', name: 'p0', master, peer: { name: 'p1' } });
    await fdbReplace(ns.nl, { link: 'p0', mac: '02:00:00:00:aa:01', master: true });
    const entry = (await fdbList(ns.nl, { link: 'p0' })).find((e) => e.mac === '02:00:00:00:aa:01');
    // Static, not permanent: a permanent bridge entry is the bridge's own address.
    expect(entry).toMatchObject({ master: true, permanent: false, static: true });
    expect(bridgeFdb(ns.path, 'p0').map((e) => e.mac)).toContain('02:00:00:00:aa:01');
  });
});
