import { describe, expect, it } from 'vitest';
import {
  linkAdd,
  linkIndex,
  neighAdd,
  neighDel,
  neighList,
  neighReplace,
} from '../../../src/kernel/index.js';
import { ipJson } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state: string[];
}

async function withVeth() {
  const ns = testNetns();
  await linkAdd(ns.nl, { kind: 'veth', name: 'v0', up: true, peer: { name: 'v1' } });
  return ns;
}

describe('neighbours', () => {
  it('adds permanent IPv4 and IPv6 entries', async () => {
    const ns = await withVeth();
    await neighAdd(ns.nl, { link: 'v0', ip: '10.0.0.5', mac: '02:00:00:00:00:05' });
    await neighAdd(ns.nl, { link: 'v0', ip: 'fd00::5', mac: '02:00:00:00:00:06' });
    expect(ipJson<IpNeigh[]>(['neigh', 'show', 'dev', 'v0'], ns.path)).toContainEqual(
      expect.objectContaining({ dst: '10.0.0.5', lladdr: '02:00:00:00:00:05', state: ['PERMANENT'] }),
    );
    expect(ipJson<IpNeigh[]>(['-6', 'neigh', 'show', 'dev', 'v0'], ns.path)).toContainEqual(
      expect.objectContaining({ dst: 'fd00::5', lladdr: '02:00:00:00:00:06', state: ['PERMANENT'] }),
    );
  });

  it('refuses a duplicate add; replace changes the MAC', async () => {
    const ns = await withVeth();
    await neighAdd(ns.nl, { link: 'v0', ip: '10.0.0.5', mac: '02:00:00:00:00:05' });
    await expect(
      neighAdd(ns.nl, { link: 'v0', ip: '10.0.0.5', mac: '02:00:00:00:00:05' }),
    ).rejects.toMatchObject({
      code: 'EEXIST',
      message: `cannot add neighbour 10.0.0.5 lladdr 02:00:00:00:00:05 dev "v0" in netns ${ns.path}: EEXIST (file already exists)`,
    });
    await neighReplace(ns.nl, { link: 'v0', ip: '10.0.0.5', mac: '02:00:00:00:00:99' });
    expect(ipJson<IpNeigh[]>(['neigh', 'show', 'dev', 'v0'], ns.path)).toEqual([
      expect.objectContaining({ dst: '10.0.0.5', lladdr: '02:00:00:00:00:99' }),
    ]);
  });

  it('lists entries with their link, MAC and state', async () => {
    const ns = await withVeth();
    await neighAdd(ns.nl, { link: 'v0', ip: '10.0.0.5', mac: '02:00:00:00:00:05' });
    const v0 = await linkIndex(ns.nl, 'v0');
    expect(await neighList(ns.nl, { link: 'v0' })).toEqual([
      {
        linkIndex: v0,
        ip: '10.0.0.5',
        mac: '02:00:00:00:00:05',
        family: 4,
        permanent: true,
        state: ['permanent'],
      },
    ]);
  });

  it('deletes, and deleting an absent entry is fine', async () => {
    const ns = await withVeth();
    await neighAdd(ns.nl, { link: 'v0', ip: '10.0.0.5', mac: '02:00:00:00:00:05' });
    await neighDel(ns.nl, { link: 'v0', ip: '10.0.0.5' });
    expect(ipJson<IpNeigh[]>(['neigh', 'show', 'dev', 'v0'], ns.path)).toEqual([]);
    await expect(neighDel(ns.nl, { link: 'v0', ip: '10.0.0.5' })).resolves.toBeUndefined();
  });
});
