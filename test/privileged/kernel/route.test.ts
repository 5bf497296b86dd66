import { describe, expect, it } from 'vitest';
import {
  addrAdd,
  linkAdd,
  linkIndex,
  routeAdd,
  routeDel,
  routeList,
  routeReplace,
} from '../../../src/kernel/index.js';
import { ipJson } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
}

async function withAddressedVeth() {
  const ns = testNetns();
  await linkAdd(ns.nl, { kind: 'veth', name: 'v0', up: true, peer: { name: 'v1' } });
  await linkAdd(ns.nl, { kind: 'veth', name: 'w0', up: true, peer: { name: 'w1' } });
  await addrAdd(ns.nl, 'v0', '10.1.0.2/24');
  await addrAdd(ns.nl, 'v0', 'fd00:1::2/64', { noDad: true });
  return ns;
}

const ipRoutes = (netns: string, ...args: string[]) => ipJson<IpRoute[]>(['route', 'show', ...args], netns);

describe('routes', () => {
  it('adds a default route via a gateway, and a link-scope route on a device', async () => {
    const ns = await withAddressedVeth();
    await routeAdd(ns.nl, { dst: 'default', gateway: '10.1.0.1' });
    await routeAdd(ns.nl, { dst: '10.20.0.0/16', link: 'w0' });
    await routeAdd(ns.nl, {
      dst: '10.30.0.0/16',
      gateway: '10.1.0.1',
      link: 'v0',
      metric: 50,
      src: '10.1.0.2',
    });
    const routes = ipRoutes(ns.path);
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: '10.1.0.1', dev: 'v0' }),
    );
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.20.0.0/16', dev: 'w0', scope: 'link' }));
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: '10.30.0.0/16', gateway: '10.1.0.1', metric: 50, prefsrc: '10.1.0.2' }),
    );
  });

  it('adds IPv6 routes', async () => {
    const ns = await withAddressedVeth();
    await routeAdd(ns.nl, { dst: 'default', gateway: 'fd00:1::1' });
    await routeAdd(ns.nl, { dst: 'fd00:99::/64', link: 'w0' });
    const routes = ipJson<IpRoute[]>(['-6', 'route', 'show'], ns.path);
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: 'fd00:1::1', dev: 'v0' }),
    );
    expect(routes).toContainEqual(expect.objectContaining({ dst: 'fd00:99::/64', dev: 'w0' }));
  });

  it('refuses a duplicate add; replace moves the route', async () => {
    const ns = await withAddressedVeth();
    await routeAdd(ns.nl, { dst: '10.20.0.0/16', link: 'v0' });
    await expect(routeAdd(ns.nl, { dst: '10.20.0.0/16', link: 'v0' })).rejects.toMatchObject({
      code: 'EEXIST',
      message: `cannot add route 10.20.0.0/16 dev "v0" in netns ${ns.path}: EEXIST (file already exists)`,
    });
    await routeReplace(ns.nl, { dst: '10.20.0.0/16', link: 'w0' });
    expect(ipRoutes(ns.path, '10.20.0.0/16')).toEqual([expect.objectContaining({ dev: 'w0' })]);
  });

  it('uses other tables when asked', async () => {
    const ns = await withAddressedVeth();
    await routeAdd(ns.nl, { dst: '10.40.0.0/16', link: 'w0', table: 1000 });
    expect(ipRoutes(ns.path, 'table', '1000')).toContainEqual(
      expect.objectContaining({ dst: '10.40.0.0/16' }),
    );
    expect(ipRoutes(ns.path).map((r) => r.dst)).not.toContain('10.40.0.0/16');
    expect((await routeList(ns.nl, { table: 1000 })).map((r) => r.dst)).toEqual(['10.40.0.0/16']);
  });

  it('lists the main table like ip(8) does', async () => {
    const ns = await withAddressedVeth();
    await routeAdd(ns.nl, { dst: 'default', gateway: '10.1.0.1' });
    const v0 = await linkIndex(ns.nl, 'v0');
    const routes = await routeList(ns.nl);
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: '10.1.0.1', linkIndex: v0, family: 4 }),
    );
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.1.0.0/24', linkIndex: v0 }));
    expect(routes.length).toBe(ipRoutes(ns.path).length);
    const six = await routeList(ns.nl, { family: 6, link: 'v0' });
    expect(six.map((r) => r.dst)).toContain('fd00:1::/64');
  });

  it('deletes, and deleting an absent route is fine', async () => {
    const ns = await withAddressedVeth();
    await routeAdd(ns.nl, { dst: 'default', gateway: '10.1.0.1' });
    await routeDel(ns.nl, { dst: 'default', gateway: '10.1.0.1' });
    expect(ipRoutes(ns.path).map((r) => r.dst)).not.toContain('default');
    await expect(routeDel(ns.nl, { dst: 'default', gateway: '10.1.0.1' })).resolves.toBeUndefined();
  });

  it('passes an unreachable gateway error through', async () => {
    const ns = await withAddressedVeth();
    await expect(routeAdd(ns.nl, { dst: '10.50.0.0/16', gateway: '192.0.2.1' })).rejects.toMatchObject({
      code: 'ENETUNREACH',
      message: `cannot add route 10.50.0.0/16 via 192.0.2.1 in netns ${ns.path}: ENETUNREACH (network is unreachable)`,
    });
  });
});
