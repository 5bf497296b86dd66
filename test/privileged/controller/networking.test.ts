/**
 * Single-host networking end to end (issue 5): real controller, real
 * kernel, real packets, in the test run's private namespace.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { added, type Inventory, inventory } from '../../helpers/inventory.js';
import { ping } from '../../helpers/ping.js';
import {
  echoPeerServer,
  fetchFrom,
  httpGetArgv,
  inSandbox,
  startInSandbox,
  type World,
  world,
} from './fixture.js';

let w: World;
let empty: Inventory;

beforeEach(async () => {
  w = await world();
  empty = await inventory(w.api.state.kv);
});

afterEach(async () => {
  for (const s of await w.api.listSandboxes()) await w.api.deleteSandbox(s.id);
  for (const n of await w.api.listNetworks()) await w.api.deleteNetwork(n.id);
  const left = await inventory(w.api.state.kv);
  await w.close();
  expect(left).toEqual(empty);
});

async function sandboxOn(network: string, name: string, extra: { ipv4?: string; ports?: string } = {}) {
  const sandbox = await w.api.createSandbox({ name });
  await w.api.connect({
    network,
    sandbox: name,
    ...(extra.ipv4 ? { ipv4: extra.ipv4 } : {}),
    ...(extra.ports
      ? {
          portMappings: [
            {
              proto: 'tcp',
              hostPort: Number(extra.ports.split(':')[0]),
              containerPort: Number(extra.ports.split(':')[1]),
            },
          ],
        }
      : {}),
  });
  return sandbox;
}

describe('a bridge network', () => {
  it('connects its sandboxes to each other, by address and by name, and isolates other networks', async () => {
    await w.api.createNetwork({ name: 'front', ipam: { config: [{ subnet: '10.61.0.0/24' }] } });
    await w.api.createNetwork({ name: 'back', ipam: { config: [{ subnet: '10.62.0.0/24' }] } });
    const a = await sandboxOn('front', 'a');
    const b = await sandboxOn('front', 'b', { ipv4: '10.61.0.20' });
    const c = await sandboxOn('back', 'c');
    expect(await ping(a, '10.61.0.20')).toBe(true);
    expect(await ping(b, 'a')).toBe(true); // /etc/hosts of the sandbox names its peers
    const cAddr = (await w.api.inspectSandbox('c')).endpoints[0]?.ipv4?.split('/')[0] as string;
    expect(cAddr).toMatch(/^10\.62\.0\./);
    expect(await ping(a, cAddr, 1)).toBe(false);
    expect(await ping(c, '10.61.0.20', 1)).toBe(false);
    // Each reaches its own gateway.
    expect(await ping(c, '10.62.0.1')).toBe(true);
  });

  it('carries IPv6 beside IPv4 on a dual-stack network', async () => {
    await w.api.createNetwork({
      name: 'dual',
      enableIPv6: true,
      ipam: { config: [{ subnet: '10.75.0.0/24' }, { subnet: 'fd00:75::/64' }] },
    });
    const a = await sandboxOn('dual', 'a');
    await sandboxOn('dual', 'b', { ipv4: '10.75.0.9' });
    const [endpoint] = (await w.api.inspectSandbox('b')).endpoints;
    expect(endpoint?.ipv6).toMatch(/^fd00:75::[0-9a-f]+\/64$/);
    const bAddr6 = endpoint?.ipv6?.split('/')[0] as string;
    expect(await ping(a, bAddr6)).toBe(true);
    expect(await ping(a, 'fd00:75::1')).toBe(true); // the gateway on the bridge
    expect((await inSandbox(a, ['ip', '-6', 'route'])).stdout).toMatch(/^default via fd00:75::1/m);
  });

  it('masquerades traffic leaving the host: the outside sees the host address', async () => {
    await w.api.createNetwork({ name: 'out', ipam: { config: [{ subnet: '10.63.0.0/24' }] } });
    const a = await sandboxOn('out', 'a');
    const server = echoPeerServer(w.ext.path, 9000);
    try {
      const r = await inSandbox(a, ['busybox', 'nc', '-w', '2', '192.0.2.2', '9000']);
      expect(r.stdout.trim()).toBe('192.0.2.1');
    } finally {
      server.stop();
    }
  });

  it('publishes a port to the outside, to the host itself (127.0.0.1 and its address) and back to the sandbox (hairpin)', async () => {
    await w.api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.64.0.0/24' }] } });
    const web = await sandboxOn('web', 'web', { ports: '8080:80' });
    const httpd = startInSandbox(web, ['busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    try {
      await expect
        .poll(() => fetchFrom(web.key, 'http://127.0.0.1/hostname'), { timeout: 3000 })
        .toBe('web\n');
      expect(await fetchFrom(w.ext.path, 'http://192.0.2.1:8080/hostname')).toBe('web\n');
      expect(await fetchFrom(undefined, 'http://127.0.0.1:8080/hostname')).toBe('web\n');
      expect(await fetchFrom(undefined, 'http://192.0.2.1:8080/hostname')).toBe('web\n');
      const hairpin = await inSandbox(web, httpGetArgv('http://192.0.2.1:8080/hostname'));
      expect(hairpin.stdout).toBe('web\n');
      // An unpublished port stays closed from outside.
      expect(await fetchFrom(w.ext.path, 'http://192.0.2.1:8081/hostname')).toBeUndefined();
    } finally {
      await httpd.stop();
    }
  });

  it('has no way out when internal, while its members still reach each other', async () => {
    await w.api.createNetwork({
      name: 'vault',
      internal: true,
      ipam: { config: [{ subnet: '10.65.0.0/24' }] },
    });
    const a = await sandboxOn('vault', 'a');
    const b = await sandboxOn('vault', 'b');
    const bAddr = (await w.api.inspectSandbox('b')).endpoints[0]?.ipv4?.split('/')[0] as string;
    expect(await ping(a, bAddr)).toBe(true);
    expect(await ping(a, '192.0.2.2', 1)).toBe(false);
    const routes = await inSandbox(b, ['ip', 'route']);
    expect(routes.stdout).not.toMatch(/^default/m);
    // No host port leads into it: refused at connect and afterwards, and nothing changes.
    await w.api.createSandbox({ name: 'c' });
    const before = await inventory(w.api.state.kv);
    const published = [{ hostPort: 18099, containerPort: 80 }];
    const internalRefusal = {
      code: 'NETCTL_INVALID_REQUEST',
      message: expect.stringMatching(/vault is internal/),
    };
    await expect(
      w.api.connect({ network: 'vault', sandbox: 'c', portMappings: published }),
    ).rejects.toMatchObject(internalRefusal);
    const bEndpoint = (await w.api.inspectSandbox('b')).endpoints[0]?.id as string;
    await expect(w.api.publishPorts(bEndpoint, published)).rejects.toMatchObject(internalRefusal);
    expect(await inventory(w.api.state.kv)).toEqual(before);
  });

  it('honours a static address and refuses a duplicate without changing anything', async () => {
    await w.api.createNetwork({ name: 'fixed', ipam: { config: [{ subnet: '10.66.0.0/24' }] } });
    await sandboxOn('fixed', 'a', { ipv4: '10.66.0.50' });
    expect((await w.api.inspectSandbox('a')).endpoints[0]?.ipv4).toBe('10.66.0.50/24');
    await w.api.createSandbox({ name: 'b' });
    const before = await inventory(w.api.state.kv);
    await expect(w.api.connect({ network: 'fixed', sandbox: 'b', ipv4: '10.66.0.50' })).rejects.toMatchObject(
      {
        code: 'ipam.address_in_use',
      },
    );
    await expect(w.api.connect({ network: 'fixed', sandbox: 'b', ipv4: '10.99.0.5' })).rejects.toMatchObject({
      code: 'NETCTL_ADDRESS_OUT_OF_RANGE',
    });
    expect(await inventory(w.api.state.kv)).toEqual(before);
  });

  it('connects and disconnects a second network', async () => {
    await w.api.createNetwork({ name: 'one', ipam: { config: [{ subnet: '10.67.0.0/24' }] } });
    await w.api.createNetwork({ name: 'two', ipam: { config: [{ subnet: '10.68.0.0/24' }] } });
    const a = await sandboxOn('one', 'a');
    await sandboxOn('two', 'b');
    const bAddr = (await w.api.inspectSandbox('b')).endpoints[0]?.ipv4?.split('/')[0] as string;
    expect(await ping(a, bAddr, 1)).toBe(false);
    await w.api.connect({ network: 'two', sandbox: 'a' });
    const links = await inSandbox(a, ['ip', '-br', 'addr']);
    expect(links.stdout).toMatch(/^eth1\S*\s+UP\s+10\.68\.0\./m);
    expect(await ping(a, bAddr)).toBe(true);
    await w.api.disconnect('two', 'a');
    expect((await inSandbox(a, ['ip', '-br', 'link'])).stdout).not.toMatch(/^eth1/m);
    expect(await ping(a, bAddr, 1)).toBe(false);
    expect(await ping(a, '10.67.0.1')).toBe(true);
  });

  it('refuses to remove a network that has endpoints, and keeps it working', async () => {
    await w.api.createNetwork({ name: 'busy', ipam: { config: [{ subnet: '10.69.0.0/24' }] } });
    const a = await sandboxOn('busy', 'a');
    await expect(w.api.deleteNetwork('busy')).rejects.toMatchObject({
      code: 'NETCTL_NETWORK_IN_USE',
      message: 'network busy has active endpoints (a): disconnect them first',
    });
    expect(await ping(a, '10.69.0.1')).toBe(true);
  });

  it('leaves nothing behind once everything is removed', async () => {
    await w.api.createNetwork({ name: 'tmp', ipam: { config: [{ subnet: '10.70.0.0/24' }] } });
    await sandboxOn('tmp', 'a', { ports: '9090:90' });
    await sandboxOn('tmp', 'b');
    const busy = await inventory(w.api.state.kv);
    const made = added(empty, busy);
    expect(made.links).toHaveLength(3); // the bridge and two host-side veths
    expect(made.addresses).toHaveLength(3); // gateway and two endpoints
    expect(made.rules?.some((r) => r.includes('--dport 9090'))).toBe(true);
    await w.api.deleteSandbox('a');
    await w.api.deleteSandbox('b');
    await w.api.deleteNetwork('tmp');
    expect(await inventory(w.api.state.kv)).toEqual(empty);
  });
});

describe('sandbox network modes', () => {
  it("shares another sandbox's namespace (container:NAME), the host's (host), or has loopback only", async () => {
    await w.api.createNetwork({ name: 'm', ipam: { config: [{ subnet: '10.74.0.0/24' }] } });
    const a = await sandboxOn('m', 'a');
    const side = await w.api.createSandbox({ name: 'side', netnsOf: 'container:a' });
    expect(side).toMatchObject({ key: a.key, ownsNetns: false, netnsOf: a.id });
    expect((await inSandbox(side, ['ip', '-br', 'addr'])).stdout).toMatch(
      /^eth0\S*\s+UP\s+10\.74\.0\.2\/24/m,
    );
    await expect(w.api.connect({ network: 'm', sandbox: 'side' })).rejects.toMatchObject({
      code: 'NETCTL_INVALID_REQUEST',
      message: expect.stringMatching(/shares another sandbox/),
    });

    const h = await w.api.createSandbox({ name: 'h', netnsOf: 'host' });
    const hostLinks = (await inSandbox(h, ['ip', '-br', 'link'])).stdout;
    expect(hostLinks).toMatch(/^ext0@/m); // the host's own links
    await expect(w.api.connect({ network: 'm', sandbox: 'h' })).rejects.toMatchObject({
      message: expect.stringMatching(/can only join host networks/),
    });
    await w.api.createNetwork({ name: 'hostnet', driver: 'host' });
    await w.api.connect({ network: 'hostnet', sandbox: 'h' });
    await expect(w.api.connect({ network: 'hostnet', sandbox: 'a' })).rejects.toMatchObject({
      message: expect.stringMatching(/only sandboxes in the host's namespace/),
    });

    const lonely = await w.api.createSandbox({ name: 'lonely' });
    expect((await inSandbox(lonely, ['ip', '-br', 'link'])).stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^lo\s+UNKNOWN/),
    ]);
    await w.api.disconnect('hostnet', 'h');
  });
});

describe('bad input', () => {
  it('is refused with a clear error and changes nothing', async () => {
    await w.api.createNetwork({ name: 'base', ipam: { config: [{ subnet: '10.71.0.0/24' }] } });
    await w.api.createSandbox({ name: 's' });
    const before = await inventory(w.api.state.kv);
    // Called one at a time: each refusal is awaited before the next call starts.
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => w.api.createNetwork({ name: '-bad' }), 'NETCTL_INVALID_REQUEST', /not a valid name/],
      [
        () => w.api.createNetwork({ name: 'x', ipam: { config: [{ subnet: '10.0.0.300/24' }] } }),
        'NETCTL_INVALID_REQUEST',
        /not a valid CIDR/,
      ],
      [
        () => w.api.createNetwork({ name: 'x', ipam: { config: [{ subnet: '10.71.0.0/25' }] } }),
        'ipam.pool_overlap',
        /10\.71\.0\.0/,
      ],
      [
        () =>
          w.api.createNetwork({
            name: 'x',
            ipam: { config: [{ subnet: '10.72.0.0/24', gateway: '10.73.0.1' }] },
          }),
        'NETCTL_GATEWAY_OUTSIDE_SUBNET',
        /10\.73\.0\.1/,
      ],
      [() => w.api.createNetwork({ name: 'base' }), 'NETCTL_NETWORK_EXISTS', /base/],
      [() => w.api.createNetwork({ name: 'x', driver: 'nope' }), 'NETCTL_DRIVER_NOT_FOUND', /nope/],
      [
        () => w.api.createNetwork({ name: 'x', options: { 'com.docker.network.driver.mtu': 'big' } }),
        'NETCTL_INVALID_OPTION',
        /mtu/,
      ],
      [() => w.api.connect({ network: 'nowhere', sandbox: 's' }), 'NETCTL_NETWORK_NOT_FOUND', /nowhere/],
      [() => w.api.connect({ network: 'base', sandbox: 'nobody' }), 'NETCTL_SANDBOX_NOT_FOUND', /nobody/],
      [() => w.api.deleteNetwork('nowhere'), 'NETCTL_NETWORK_NOT_FOUND', /nowhere/],
      [
        () => w.api.createSandbox({ name: 'p', key: '/proc/self/ns/net' }),
        'NETCTL_INVALID_NETNS',
        /netctl's own/,
      ],
      [
        () => w.api.createNetwork({ name: 'x', ipam: { config: [{ subnet: '128.0.0.0/1' }] } }),
        'NETCTL_SUBNET_TOO_BROAD',
        /128\.0\.0\.0\/1/,
      ],
      [
        () => w.api.createNetwork({ name: 'x', ipam: { config: [{ subnet: '192.0.2.128/25' }] } }),
        'NETCTL_SUBNET_OVERLAPS_ROUTE',
        /192\.0\.2\.0\/24 dev ext0/,
      ],
      [
        () => w.api.createSandbox({ name: 'q', netnsOf: 'container:nobody' }),
        'NETCTL_SANDBOX_NOT_FOUND',
        /nobody/,
      ],
    ];
    for (const [call, code, message] of cases) {
      await expect(call()).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    }
    expect(await inventory(w.api.state.kv)).toEqual(before);
  });
});
