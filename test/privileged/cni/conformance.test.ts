/**
 * netctl-cni conformance, exec'd as a runtime execs it: through the shim
 * to a running daemon, and standalone (no daemon: the shim runs the plugin
 * in-process) — the same answers either way. Every verb, the spec's error
 * codes and exit statuses, real interfaces, addresses, routes and packets,
 * DEL's idempotence, CHECK finding what was removed by hand (and `netctl
 * repair` putting a network back), GC, and 50 ADDs at once.
 */
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { createNetns, deleteNetns } from '../../../src/kernel/index.js';
import { EMPTY } from '../../helpers/inventory.js';
import { ping } from '../../helpers/ping.js';
import { ipJson, run } from '../../helpers/tools.js';
import { assertBuilt, Daemon, daemonInventory, netctl, withLocal } from '../controller/daemon-fixture.js';
import { fetchFrom } from '../controller/fixture.js';
import { type CniCall, type CniHost, cniHost, execPlugin, ours, outsideNetns } from './fixture.js';

beforeAll(assertBuilt);

/** A container's netns, as a runtime makes it before ADD (daemon-fixture's afterEach removes what is left). */
function container(name: string): string {
  return createNetns(name);
}

const conf = (extra: object = {}) => ({ cniVersion: '1.0.0', name: 'cninet', type: 'netctl-cni', ...extra });

interface Mode {
  name: 'daemon' | 'standalone';
  start(host: CniHost): Promise<Daemon | undefined>;
}

const MODES: Mode[] = [
  { name: 'daemon', start: (host) => Daemon.start(host.dir) },
  { name: 'standalone', start: async () => undefined },
];

async function reservations(dir: string): Promise<string[]> {
  return (await daemonInventory(dir)).addresses;
}

describe.each(MODES)('netctl-cni, $name', (mode) => {
  async function setup() {
    const host = cniHost();
    const daemon = await mode.start(host);
    const cni = (call: CniCall, config: unknown, env?: Record<string, string>) =>
      execPlugin(host, ours(host), call, config, env);
    return { host, daemon, cni };
  }

  it('VERSION, and the error codes and exit statuses: malformed JSON 6, missing env 4, unsupported version 1, unknown network 7', async () => {
    const { cni } = await setup();
    const ns = container(`cv${mode.name[0]}`);
    const add: CniCall = { command: 'ADD', containerId: 'c1', netns: ns, ifname: 'eth0' };
    const version = await cni({ command: 'VERSION' }, { cniVersion: '0.4.0' });
    expect(version).toMatchObject({
      code: 0,
      json: { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] },
    });
    const cases: [CniCall, unknown, number, string][] = [
      [add, '{"cniVersion": "1.0.0", "name": ', 6, 'error decoding the network configuration'],
      [
        { command: 'ADD', ifname: 'eth0' },
        conf(),
        4,
        'required env variables [CNI_CONTAINERID,CNI_NETNS] missing',
      ],
      [{ ...add, ifname: 'bad/name' }, conf(), 4, 'invalid CNI_IFNAME'],
      [add, conf({ cniVersion: '0.2.0' }), 1, 'incompatible CNI versions'],
      [add, conf(), 7, 'netctl network cninet does not exist'],
      [{ ...add, netns: '/run/netns/no-such-ns' }, conf({ subnet: '10.71.0.0/24' }), 4, 'invalid CNI_NETNS'],
      [{ command: 'GC' }, conf({ cniVersion: '1.0.0' }), 4, 'required env variables [CNI_PATH] missing'],
    ];
    for (const [call, config, code, msg] of cases) {
      // GC's CNI_PATH is set by execPlugin; take it away for that case.
      const r = await cni(call, config, call.command === 'GC' ? { CNI_PATH: '' } : {});
      expect(r.code, msg).toBe(code);
      expect(r.json, msg).toMatchObject({ code, msg });
    }
    expect((await cni({ command: 'FROB' as 'ADD' }, conf())).code).toBe(4);
  });

  it('ADD: interface, address, routes; reaches the gateway and another container; CHECK; DEL twice; DEL releases the address', async () => {
    const { host, cni } = await setup();
    // A network made with `netctl network create`, named in the configuration.
    expect(
      (await netctl(host.dir, ['network', 'create', '--subnet', '10.72.0.0/24', 'made-by-cli'])).status,
    ).toBe(0);
    const config = conf({ name: 'podnet', network: 'made-by-cli' });
    const ns1 = container(`ca${mode.name[0]}1`);
    const ns2 = container(`ca${mode.name[0]}2`);
    const add1 = await cni({ command: 'ADD', containerId: 'ctr-1', netns: ns1, ifname: 'eth0' }, config);
    expect(add1.stderr).toBe('');
    expect(add1.code).toBe(0);
    const result = add1.json as {
      interfaces: { name: string; mac: string; sandbox?: string }[];
      ips: { address: string; gateway: string; interface: number }[];
      routes: { dst: string; gw: string }[];
    };
    const [bridge, hostVeth, eth0] = result.interfaces;
    expect(eth0).toMatchObject({ name: 'eth0', sandbox: ns1 });
    expect(result.ips).toEqual([{ address: '10.72.0.2/24', gateway: '10.72.0.1', interface: 2 }]);
    expect(result.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.72.0.1' }]);
    // The result is what the kernel has.
    const [link] = ipJson(['addr', 'show', 'eth0'], ns1) as {
      address: string;
      addr_info: { local: string; prefixlen: number }[];
    }[];
    expect(link?.address).toBe(eth0?.mac);
    expect(link?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain('10.72.0.2/24');
    expect(ipJson(['route', 'show', 'default'], ns1)).toMatchObject([{ gateway: '10.72.0.1', dev: 'eth0' }]);
    expect(ipJson(['link', 'show', hostVeth?.name as string])).toMatchObject([
      { address: hostVeth?.mac, master: bridge?.name },
    ]);
    expect(ipJson(['link', 'show', bridge?.name as string])).toMatchObject([{ address: bridge?.mac }]);

    const add2 = await cni({ command: 'ADD', containerId: 'ctr-2', netns: ns2, ifname: 'eth0' }, config);
    expect(add2.code).toBe(0);
    expect(await ping(ns1, '10.72.0.1')).toBe(true);
    expect(await ping(ns1, '10.72.0.3')).toBe(true);

    const check = (ns: string, prev: unknown) =>
      cni(
        { command: 'CHECK', containerId: 'ctr-1', netns: ns, ifname: 'eth0' },
        { ...config, prevResult: prev },
      );
    expect(await check(ns1, result)).toMatchObject({ code: 0, stdout: '' });
    run('ip', ['link', 'del', 'eth0'], { netns: ns1 });
    const broken = await check(ns1, result);
    expect(broken.code).toBe(102);
    expect(broken.json).toMatchObject({
      code: 102,
      msg: 'attachment ctr-1/eth0 to network made-by-cli is not as ADD left it',
    });
    expect(broken.json?.details).toContain(`interface eth0 in netns ${ns1}`);

    const del1: CniCall = { command: 'DEL', containerId: 'ctr-1', netns: ns1, ifname: 'eth0' };
    expect(await cni(del1, { ...config, prevResult: result })).toMatchObject({ code: 0, stdout: '' });
    expect(await cni(del1, { ...config, prevResult: result })).toMatchObject({ code: 0, stdout: '' });
    expect(await reservations(host.dir)).not.toContainEqual(expect.stringContaining('10.72.0.2/24'));
    // The second container's netns is gone before its DEL (a runtime that cleaned up first): still released.
    deleteNetns(ns2);
    expect(await cni({ command: 'DEL', containerId: 'ctr-2', ifname: 'eth0' }, config)).toMatchObject({
      code: 0,
    });
    expect(await reservations(host.dir)).not.toContainEqual(expect.stringContaining('10.72.0.3/24'));
    // Nothing left but the network itself; removing it leaves nothing at all.
    expect((await daemonInventory(host.dir)).sandboxes).toEqual([]);
    expect((await netctl(host.dir, ['network', 'rm', 'made-by-cli'])).status).toBe(0);
    deleteNetns(ns1);
    expect(await daemonInventory(host.dir)).toEqual(EMPTY);
  });

  it('an ADD of an attached container with an unusable CNI_NETNS is refused (4) and its sandbox stays', async () => {
    const { host, cni } = await setup();
    const ns = container(`kp${mode.name[0]}`);
    const config = conf({ subnet: '10.74.0.0/24' });
    const add: CniCall = { command: 'ADD', containerId: 'kept', netns: ns, ifname: 'eth0' };
    expect((await cni(add, config)).code).toBe(0);
    const before = await daemonInventory(host.dir);
    // The plugin's own netns (the host's, here), and a path with no netns.
    for (const netns of ['/proc/self/ns/net', '/run/netns/no-such-ns']) {
      expect(await cni({ ...add, netns }, config)).toMatchObject({
        code: 4,
        json: { code: 4, msg: 'invalid CNI_NETNS' },
      });
    }
    expect(await daemonInventory(host.dir)).toEqual(before);
    expect((await cni({ ...add, command: 'DEL' }, config)).code).toBe(0);
    deleteNetns(ns);
    expect((await netctl(host.dir, ['network', 'rm', 'cninet'])).status).toBe(0);
  });

  it('50 concurrent ADDs get 50 distinct addresses; 50 concurrent DELs release them all', async () => {
    const { host, cni } = await setup();
    const config = conf({ subnet: '10.73.0.0/24' });
    const ids = Array.from({ length: 50 }, (_, i) => i);
    const netns = ids.map((i) => container(`cc${mode.name[0]}${i}`));
    const adds = await Promise.all(
      ids.map((i) =>
        cni({ command: 'ADD', containerId: `many-${i}`, netns: netns[i], ifname: 'eth0' }, config),
      ),
    );
    expect(adds.filter((r) => r.code !== 0).map((r) => r.stdout)).toEqual([]);
    const addresses = adds.map((r) => (r.json?.ips as { address: string }[] | undefined)?.[0]?.address);
    expect(new Set(addresses).size).toBe(50);
    for (const [i, ns] of netns.entries()) {
      const [link] = ipJson(['addr', 'show', 'eth0'], ns) as {
        addr_info: { local: string; prefixlen: number }[];
      }[];
      expect(link?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain(addresses[i]);
    }
    const dels = await Promise.all(
      ids.map((i) =>
        cni({ command: 'DEL', containerId: `many-${i}`, netns: netns[i], ifname: 'eth0' }, config),
      ),
    );
    expect(dels.filter((r) => r.code !== 0).map((r) => r.stdout)).toEqual([]);
    const inv = await daemonInventory(host.dir);
    expect(inv.sandboxes).toEqual([]);
    expect(inv.addresses).toHaveLength(1); // the gateway
    for (const ns of netns) deleteNetns(ns);
    expect((await netctl(host.dir, ['network', 'rm', 'cninet'])).status).toBe(0);
  }, 120_000);
});

describe('netctl-cni with a daemon', () => {
  it('CHECK names a bridge or rules gone; STATUS says 51; `netctl repair` puts them back and traffic flows again', async () => {
    const host = cniHost();
    await Daemon.start(host.dir);
    const cni = (call: CniCall, config: unknown) => execPlugin(host, ours(host), call, config);
    const config = conf({ cniVersion: '1.1.0', subnet: '10.74.0.0/24' });
    const [ns1, ns2] = [container('cr1'), container('cr2')];
    const add = await cni({ command: 'ADD', containerId: 'r1', netns: ns1, ifname: 'eth0' }, config);
    await cni({ command: 'ADD', containerId: 'r2', netns: ns2, ifname: 'eth0' }, config);
    const bridge = (add.json?.interfaces as { name: string }[] | undefined)?.[0]?.name as string;
    const check = () =>
      cni(
        { command: 'CHECK', containerId: 'r1', netns: ns1, ifname: 'eth0' },
        { ...config, prevResult: add.json },
      );
    const status = () => cni({ command: 'STATUS' }, config);
    expect((await status()).code).toBe(0);

    execFileSync('ip', ['link', 'del', bridge]);
    const broken = await check();
    expect(broken.code).toBe(102);
    expect(broken.json?.details).toContain(`missing: bridge ${bridge}`);
    expect(broken.json?.details).toContain('netctl repair cninet');
    expect((await status()).json).toMatchObject({
      code: 51,
      msg: 'netctl network cninet is missing part of its kernel side',
    });
    expect(await ping(ns1, '10.74.0.3', 1)).toBe(false);

    const repair = await netctl(host.dir, ['repair', 'cninet']);
    expect(repair.status).toBe(0);
    expect(repair.stdout).toContain(`missing: bridge ${bridge}`);
    expect((await check()).code).toBe(0);
    expect(await ping(ns1, '10.74.0.3')).toBe(true);

    // netctl's NAT rules flushed by hand.
    execFileSync('iptables', ['-t', 'nat', '-F', 'NETCTL-POSTROUTING']);
    const noRules = await check();
    expect(noRules.json?.details).toMatch(/missing: \d+ firewall rule\(s\)/);
    expect((await netctl(host.dir, ['repair'])).status).toBe(0);
    expect((await check()).code).toBe(0);

    for (const [id, ns] of [
      ['r1', ns1],
      ['r2', ns2],
    ] as const)
      expect((await cni({ command: 'DEL', containerId: id, netns: ns, ifname: 'eth0' }, config)).code).toBe(
        0,
      );
  });

  it('runtimeConfig: static address, MAC, and a published port reachable from outside', async () => {
    const host = cniHost();
    await Daemon.start(host.dir);
    const cni = (call: CniCall, config: unknown) => execPlugin(host, ours(host), call, config);
    const ext = outsideNetns('cpext', 'cpx0');
    const ns = container('cpweb');
    const config = conf({
      subnet: '10.75.0.0/24',
      runtimeConfig: {
        ips: ['10.75.0.80/24'],
        mac: '02:00:00:75:00:80',
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      },
    });
    const add = await cni({ command: 'ADD', containerId: 'web', netns: ns, ifname: 'eth0' }, config);
    expect(add.code).toBe(0);
    expect(add.json).toMatchObject({ ips: [{ address: '10.75.0.80/24' }] });
    expect((add.json?.interfaces as { mac: string }[] | undefined)?.[2]?.mac).toBe('02:00:00:75:00:80');
    expect(ipJson(['link', 'show', 'eth0'], ns)).toMatchObject([{ address: '02:00:00:75:00:80' }]);
    const server = execFileSync(
      'sh',
      ['-c', `nsenter --net=${ns} -- busybox httpd -p 80 -h /etc && echo started`],
      {
        encoding: 'utf8',
      },
    );
    expect(server).toContain('started');
    try {
      // Node's fetch, not busybox wget (1.35's segfaults now and then).
      expect(await fetchFrom(ext, 'http://192.0.2.1:8080/hostname')).toBe(
        execFileSync('cat', ['/etc/hostname'], { encoding: 'utf8' }),
      );
    } finally {
      execFileSync('sh', ['-c', `for p in $(ip netns pids ${ns.split('/').pop()}); do kill $p; done`]);
    }
    expect((await cni({ command: 'DEL', containerId: 'web', netns: ns, ifname: 'eth0' }, config)).code).toBe(
      0,
    );
    expect((await daemonInventory(host.dir)).rules.filter((r) => r.includes('8080'))).toEqual([]);
    execFileSync('ip', ['link', 'del', 'cpx0']);
  });

  it("GC removes the network's CNI attachments not in cni.dev/valid-attachments, and nothing else", async () => {
    const host = cniHost();
    const daemon = await Daemon.start(host.dir);
    const cni = (call: CniCall, config: unknown) => execPlugin(host, ours(host), call, config);
    const config = conf({ cniVersion: '1.1.0', subnet: '10.76.0.0/24' });
    for (const id of ['keep', 'lost1', 'lost2']) {
      expect(
        (await cni({ command: 'ADD', containerId: id, netns: container(`cg${id}`), ifname: 'eth0' }, config))
          .code,
      ).toBe(0);
    }
    // A sandbox the CLI made on the same network: not CNI's, never GC's.
    await daemon?.api.createSandbox({ name: 'cli-box' });
    await daemon?.api.connect({ network: 'cninet', sandbox: 'cli-box' });
    const before = await daemonInventory(host.dir);
    const gc = await cni(
      { command: 'GC' },
      { ...config, 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] },
    );
    expect(gc).toMatchObject({ code: 0, stdout: '' });
    const after = await daemonInventory(host.dir);
    expect(after.sandboxes.map((s) => s.split(' ')[0]).sort()).toEqual(['cli-box', 'cni-keep']);
    expect(after.addresses).toHaveLength(before.addresses.length - 2);
    expect(after.links).toHaveLength(before.links.length - 2);
    for (const name of ['cglost1', 'cglost2'])
      expect(ipJson(['link', 'show'], `/run/netns/${name}`).map((l) => l.ifname)).toEqual(['lo']);
    await daemon?.api.deleteSandbox('cli-box');
    expect(
      (await cni({ command: 'DEL', containerId: 'keep', netns: '/run/netns/cgkeep', ifname: 'eth0' }, config))
        .code,
    ).toBe(0);
  });

  it('the daemon and the standalone plugin share one state: ADD through the daemon, DEL without it', async () => {
    const host = cniHost();
    const daemon = await Daemon.start(host.dir);
    const cni = (call: CniCall, config: unknown) => execPlugin(host, ours(host), call, config);
    const config = conf({ subnet: '10.77.0.0/24' });
    const ns = container('cshare');
    const add = await cni({ command: 'ADD', containerId: 'shared', netns: ns, ifname: 'eth0' }, config);
    expect(add.code).toBe(0);
    await daemon?.stop();
    const del = await cni({ command: 'DEL', containerId: 'shared', netns: ns, ifname: 'eth0' }, config);
    expect(del).toMatchObject({ code: 0, stdout: '' });
    expect((await daemonInventory(host.dir)).sandboxes).toEqual([]);
    expect(await withLocal(host.dir, async (api) => (await api.inspectNetwork('cninet')).endpoints)).toEqual(
      [],
    );
  });
});
