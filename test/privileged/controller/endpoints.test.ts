/**
 * The Controller's endpoint records, on the real kernel (bridge driver with
 * its host side in a test netns, a fake firewall, an in-memory store): a
 * sandbox's record lists exactly its endpoints, join and leave find them
 * through it, addresses go back to the pool by owner, and /etc/hosts of
 * netctl's own sandboxes follows who is on the network.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller } from '../../../src/controller/controller.js';
import { State } from '../../../src/controller/state.js';
import type { Sandbox } from '../../../src/core/model.js';
import { BridgeDriver } from '../../../src/drivers/bridge/bridge.js';
import { defaultBridgeName } from '../../../src/drivers/bridge/options.js';
import { fakeFirewall } from '../../../src/firewall/testing/fake.js';
import { KvIpamDriver } from '../../../src/ipam/driver.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { linkAdd, linkByName, linkList, sysctlGet } from '../../../src/kernel/index.js';
import { createMemoryStore } from '../../../src/kv/testing/memory.js';
import { sandboxEtcDir } from '../../../src/paths.js';
import { removeSandboxEtc } from '../../../src/sandbox/etc.js';
import { ipJson, run } from '../../helpers/tools.js';
import { testNetns, uniqueName } from '../harness.js';

function setup() {
  const host = testNetns('host');
  const kv = createMemoryStore();
  const bridge = new BridgeDriver({ netns: host.path, firewall: fakeFirewall() });
  const controller = new Controller({
    state: new State(kv),
    ipam: new KvIpamDriver(new Ipam(kv)),
    drivers: [bridge],
    storeName: 'memory',
  });
  const made: { sandboxes: string[]; networks: string[] } = { sandboxes: [], networks: [] };
  // Awaited by each test in its finally (the harness's cleanups are synchronous).
  const done = async () => {
    for (const id of made.sandboxes.reverse()) {
      if (await controller.state.sandbox(id)) await controller.deleteSandbox(id);
    }
    for (const id of made.networks) {
      if (await controller.state.network(id)) await controller.deleteNetwork(id);
    }
    bridge.close();
  };
  const network = async (subnet: string) => {
    const n = await controller.createNetwork({ name: uniqueName('n'), ipam: { config: [{ subnet }] } });
    made.networks.push(n.id);
    return n;
  };
  const sandbox = async (): Promise<Sandbox> => {
    const s = await controller.createSandbox({ name: uniqueName('s') });
    made.sandboxes.push(s.id);
    return s;
  };
  return { host, kv, controller, network, sandbox, done };
}

/** IPv6 addresses on dev in the netns at path. */
const inet6 = (path: string, dev: string) =>
  ipJson<{ addr_info: { family: string; local: string }[] }[]>(['addr', 'show', 'dev', dev], path)
    .flatMap((l) => l.addr_info)
    .filter((a) => a.family === 'inet6')
    .map((a) => a.local);

/** Every address the controller's IPAM has handed out, with its owner. */
async function reservations(controller: Controller) {
  const pools = await controller.ipam.listPools();
  return (await Promise.all(pools.map((p) => controller.ipam.listReservations(p.poolId)))).flat();
}

const hosts = (sandbox: Sandbox) => readFileSync(join(sandboxEtcDir(sandbox.id), 'hosts'), 'utf8');

describe('Controller endpoints', () => {
  it('a sandbox record lists exactly its endpoints; join and leave find them through it', async () => {
    const { controller, network, sandbox, done } = setup();
    try {
      const a = await network('10.210.0.0/24');
      const b = await network('10.211.0.0/24');
      const box = await sandbox();
      const e0 = await controller.connect({ network: a.id, sandbox: box.name });
      const e1 = await controller.connect({ network: b.id, sandbox: box.name });
      expect((await controller.state.sandbox(box.id))?.endpointIds).toEqual([e0.id, e1.id]);
      const { endpoints } = await controller.inspectSandbox(box.id);
      expect(endpoints.map((e) => e.networkName).sort()).toEqual([a.name, b.name].sort());

      await expect(controller.connect({ network: a.id, sandbox: box.name })).rejects.toMatchObject({
        code: 'NETCTL_ENDPOINT_EXISTS',
      });
      expect((await controller.disconnect(a.id, box.id)).id).toBe(e0.id);
      expect((await controller.state.sandbox(box.id))?.endpointIds).toEqual([e1.id]);
      expect(await controller.state.endpoint(e0.id)).toBeUndefined();
      await expect(controller.disconnect(a.id, box.id)).rejects.toMatchObject({
        code: 'NETCTL_ENDPOINT_NOT_FOUND',
      });
    } finally {
      await done();
    }
  });

  it('IPv6 is off on both ends of an IPv4-only endpoint, on for an endpoint with an IPv6 address', async () => {
    const { host, controller, network, sandbox, done } = setup();
    try {
      const v4 = await network('10.218.0.0/24');
      const box = await sandbox();
      const e = await controller.connect({ network: v4.id, sandbox: box.name });
      const hostSide = e.driverData.hostIfname as string;
      expect(sysctlGet(`net/ipv6/conf/${hostSide}/disable_ipv6`, host.path)).toBe('1');
      expect(sysctlGet('net/ipv6/conf/eth0/disable_ipv6', box.key)).toBe('1');
      expect(inet6(box.key, 'eth0')).toEqual([]);

      const dual = await controller.createNetwork({
        name: uniqueName('n'),
        enableIPv6: true,
        ipam: { config: [{ subnet: '10.219.0.0/24' }, { subnet: 'fd00:219::/64' }] },
      });
      try {
        const e6 = await controller.connect({ network: dual.id, sandbox: box.name });
        expect(e6.ipv6).toBe('fd00:219::2/64');
        expect(sysctlGet('net/ipv6/conf/eth1/disable_ipv6', box.key)).toBe('0');
        expect(inet6(box.key, 'eth1')).toContain('fd00:219::2');
        await controller.disconnect(dual.id, box.id);
      } finally {
        await controller.deleteNetwork(dual.id);
      }
    } finally {
      await done();
    }
  });

  it('hairpin mode only on the bridge port of an endpoint that publishes ports', async () => {
    const { host, controller, network, sandbox, done } = setup();
    try {
      const net = await network('10.221.0.0/24');
      const [plain, web] = [await sandbox(), await sandbox()];
      const a = await controller.connect({ network: net.id, sandbox: plain.name });
      const b = await controller.connect({
        network: net.id,
        sandbox: web.name,
        portMappings: [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }],
      });
      const hairpin = (port: string) =>
        (
          JSON.parse(run('bridge', ['-j', '-d', 'link', 'show', 'dev', port], { netns: host.path })) as {
            hairpin: boolean;
          }[]
        )[0]?.hairpin;
      expect(hairpin(a.driverData.hostIfname as string)).toBe(false);
      expect(hairpin(b.driverData.hostIfname as string)).toBe(true);
    } finally {
      await done();
    }
  });

  it('leave gives the address back to the pool; deleting a sandbox removes its endpoints', async () => {
    const { host, controller, network, sandbox, done } = setup();
    try {
      const net = await network('10.212.0.0/24');
      const first = await sandbox();
      const e = await controller.connect({ network: net.id, sandbox: first.name });
      expect(e.ipv4).toBe('10.212.0.2/24');
      await controller.disconnect(net.id, first.id);
      expect(await controller.ipam.listReservations(net.ipam.poolIds[0] as string)).toEqual([
        expect.objectContaining({ address: '10.212.0.1/24', owner: `net:${net.id}` }),
      ]);

      const second = await sandbox();
      const e2 = await controller.connect({ network: net.id, sandbox: second.name });
      const veth = e2.driverData.hostIfname as string;
      expect((await linkList(host.nl)).map((l) => l.name)).toContain(veth);
      await controller.deleteSandbox(second.id);
      expect(await controller.state.endpoint(e2.id)).toBeUndefined();
      expect((await linkList(host.nl)).map((l) => l.name)).not.toContain(veth);
      expect((await controller.inspectNetwork(net.id)).endpoints).toEqual([]);
      expect(
        (await controller.ipam.listReservations(net.ipam.poolIds[0] as string)).map((r) => r.owner),
      ).toEqual([`net:${net.id}`]);
    } finally {
      await done();
    }
  });

  it("/etc/hosts of netctl's sandboxes names the peers on their networks, and forgets those that leave", async () => {
    const { controller, network, sandbox, done } = setup();
    try {
      const net = await network('10.213.0.0/24');
      const [a, b, c] = [await sandbox(), await sandbox(), await sandbox()];
      await controller.connect({ network: net.id, sandbox: a.name });
      await controller.connect({ network: net.id, sandbox: b.name, aliases: ['bee'] });
      await controller.connect({ network: net.id, sandbox: c.name });
      expect(hosts(a)).toContain(`10.213.0.3\t${b.name} bee\n`);
      expect(hosts(a)).toContain(`10.213.0.4\t${c.name}\n`);
      expect(hosts(a)).not.toContain(`10.213.0.2\t`); // its own address is not a peer
      expect(hosts(c)).toContain(`10.213.0.2\t${a.name}\n`);
      expect(hosts(c)).toContain(`127.0.1.1\t${c.hostname}\n`);

      await controller.disconnect(net.id, b.id);
      expect(hosts(a)).not.toContain(b.name);
      expect(hosts(c)).not.toContain(b.name);
      expect(hosts(c)).toContain(`10.213.0.2\t${a.name}\n`);
    } finally {
      await done();
    }
  });

  it("a runtime's sandbox is named in netctl's sandboxes' /etc/hosts but gets no /etc files itself", async () => {
    const { controller, network, sandbox, done } = setup();
    try {
      const net = await network('10.214.0.0/24');
      const own = await sandbox();
      const ns = testNetns('rt');
      const runtime = await controller.createSandbox({ name: uniqueName('r'), key: ns.path });
      try {
        await controller.connect({ network: net.id, sandbox: own.name });
        await controller.connect({ network: net.id, sandbox: runtime.name });
        expect(await controller.state.hostsFileSandboxes(net.id)).toEqual([own.id]);
        expect(hosts(own)).toContain(`10.214.0.3\t${runtime.name}\n`);
        expect(() => hosts(runtime)).toThrow(/ENOENT/);
        await controller.disconnect(net.id, runtime.id);
        expect(hosts(own)).not.toContain(runtime.name);
        await controller.disconnect(net.id, own.id);
        expect(await controller.state.hostsFileSandboxes(net.id)).toEqual([]);
      } finally {
        await controller.deleteSandbox(runtime.id);
      }
    } finally {
      await done();
    }
  });

  it("join and leave of runtimes' sandboxes never list every endpoint (flat cost per endpoint)", async () => {
    const { kv, controller, network, done } = setup();
    try {
      const net = await network('10.220.0.0/24');
      const nss = [testNetns('rt'), testNetns('rt')];
      const boxes = [];
      for (const ns of nss)
        boxes.push(await controller.createSandbox({ name: uniqueName('r'), key: ns.path }));
      try {
        const listed: string[] = [];
        const list = kv.list.bind(kv);
        kv.list = (prefix, options) => {
          listed.push(prefix);
          return list(prefix, options);
        };
        for (const box of boxes) await controller.connect({ network: net.id, sandbox: box.name });
        for (const box of boxes) await controller.disconnect(net.id, box.id);
        kv.list = list;
        expect(listed.filter((prefix) => /\/(endpoints|sandboxes)\/$/.test(prefix))).toEqual([]);
      } finally {
        for (const box of boxes) await controller.deleteSandbox(box.id);
      }
    } finally {
      await done();
    }
  });

  it('a sandbox whose /etc files are gone (a reboot empties /run) is skipped, not an error', async () => {
    const { controller, network, sandbox, done } = setup();
    try {
      const net = await network('10.217.0.0/24');
      const [a, b] = [await sandbox(), await sandbox()];
      await controller.connect({ network: net.id, sandbox: a.name });
      removeSandboxEtc(a.id);
      await controller.connect({ network: net.id, sandbox: b.name });
      expect(hosts(b)).toContain(`10.217.0.2\t${a.name}\n`);
      await controller.deleteSandbox(a.id);
      expect(hosts(b)).not.toContain(a.name);
    } finally {
      await done();
    }
  });

  it('a sandbox that leaves a network forgets its peers there and keeps those of its other networks', async () => {
    const { controller, network, sandbox, done } = setup();
    try {
      const one = await network('10.215.0.0/24');
      const two = await network('10.216.0.0/24');
      const [a, b, c] = [await sandbox(), await sandbox(), await sandbox()];
      await controller.connect({ network: one.id, sandbox: a.name });
      await controller.connect({ network: two.id, sandbox: a.name });
      await controller.connect({ network: one.id, sandbox: b.name });
      await controller.connect({ network: two.id, sandbox: c.name });
      expect(hosts(a)).toContain(`10.215.0.3\t${b.name}\n`);
      expect(hosts(a)).toContain(`10.216.0.3\t${c.name}\n`);
      expect(hosts(b)).not.toContain(c.name);
      await controller.disconnect(two.id, a.id);
      expect(hosts(a)).not.toContain(c.name);
      expect(hosts(a)).toContain(`10.215.0.3\t${b.name}\n`);
      expect(hosts(c)).not.toContain(a.name);
    } finally {
      await done();
    }
  });
  it('gives an endpoint the MAC of its IPv4 address and announces only a MAC chosen otherwise', async () => {
    const { controller, network, sandbox, done } = setup();
    try {
      const n = await network('10.223.0.0/24');
      const derived = await sandbox();
      const e = await controller.connect({ network: n.id, sandbox: derived.name, ipv4: '10.223.0.7' });
      expect(e.mac).toBe('02:42:0a:df:00:07');
      const eth0 = ipJson<{ address: string }[]>(['link', 'show', 'dev', 'eth0'], derived.key)[0];
      expect(eth0?.address).toBe('02:42:0a:df:00:07');
      expect(sysctlGet('net/ipv4/conf/eth0/arp_notify', derived.key)).toBe('0');

      const chosen = await sandbox();
      await controller.connect({ network: n.id, sandbox: chosen.name, mac: '02:aa:bb:cc:dd:ee' });
      expect(ipJson<{ address: string }[]>(['link', 'show', 'dev', 'eth0'], chosen.key)[0]?.address).toBe(
        '02:aa:bb:cc:dd:ee',
      );
      expect(sysctlGet('net/ipv4/conf/eth0/arp_notify', chosen.key)).toBe('1');
    } finally {
      await done();
    }
  });

  it("refuses an endpoint past the Linux bridge's 1,023 ports with a clear error, and keeps nothing of it", async () => {
    const { host, controller, network, sandbox, done } = setup();
    try {
      const n = await network('10.222.0.0/20');
      const master = (await linkByName(host.nl, defaultBridgeName(n.id))).index;
      // Fill the bridge with bare veths: the test netns takes them with it.
      for (let i = 0; i < 1023; i++)
        await linkAdd(host.nl, { kind: 'veth', name: `fill${i}`, master, peer: { name: `fill${i}p` } });
      const box = await sandbox();
      const before = await reservations(controller);
      await expect(controller.connect({ network: n.id, sandbox: box.name })).rejects.toMatchObject({
        code: 'NETCTL_NETWORK_FULL',
        message: `network ${n.name} is full: its bridge has 1023 ports, the most the Linux bridge takes`,
      });
      expect(await reservations(controller)).toEqual(before);
      expect((await controller.state.sandbox(box.id))?.endpointIds).toEqual([]);
      expect((await linkList(host.nl)).filter((l) => l.alias?.startsWith('netctl:ep:'))).toEqual([]);
      expect(ipJson<{ ifname: string }[]>(['link', 'show'], box.key).map((l) => l.ifname)).toEqual(['lo']);
    } finally {
      await done();
    }
  });
});
