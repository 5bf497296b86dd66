/**
 * netctl-cni's verbs against the FakeApi: which controller calls each verb
 * makes, what it answers, which errors it gives. The kernel side (real
 * interfaces, packets, the shim and the daemon) is in
 * test/privileged/cni/*.test.ts.
 */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { netctlCniHandlers } from '../../../src/cni/plugin.js';
import { CONTAINER_ID_LABEL, sandboxNameOf } from '../../../src/cni/sandbox.js';
import { dispatch } from '../../../src/cni/skel.js';
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { Errors } from '../../../src/errors.js';
import { netnsStandIns } from '../../helpers/netns-stand-ins.js';

let fake: FakeApi;
// Stand-ins for the containers' netns: the fake takes them, and checks any other CNI_NETNS for real.
const standIns = netnsStandIns();
const netns = (name: string) => standIns.path(name);
afterAll(() => standIns.remove());

beforeEach(() => {
  fake = new FakeApi({ checkKey: standIns.checkKey });
});

async function cni(command: string, config: object, env: Record<string, string> = {}) {
  let stdout = '';
  const code = await dispatch(
    {
      getenv: (name) =>
        ({
          CNI_COMMAND: command,
          CNI_CONTAINERID: 'c1',
          CNI_NETNS: netns('c1'),
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/opt/cni/bin',
          ...env,
        })[name],
      readStdin: async () => JSON.stringify(config),
      stdout: (text) => {
        stdout += text;
      },
    },
    netctlCniHandlers({ api: async () => fake }),
  );
  return { code, out: stdout ? JSON.parse(stdout) : undefined };
}

const conf = (extra: object = {}) => ({ cniVersion: '1.1.0', name: 'web', type: 'netctl-cni', ...extra });

async function webNetwork() {
  return fake.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
}

describe('ADD', () => {
  it("waits out another ADD's delete-if-empty of the container's sandbox, and never deletes it from under an attachment", async () => {
    await webNetwork();
    await fake.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    expect((await cni('ADD', conf())).code).toBe(0);
    const [sandbox] = fake.sandboxes.values();
    if (!sandbox) throw new Error('no sandbox');
    // Another ADD's cleanup has marked it and is looking at its attachments (it finds web's).
    sandbox.deleting = true;
    setTimeout(() => {
      sandbox.deleting = false;
    }, 50);
    const second = await cni('ADD', conf({ name: 'db' }), { CNI_IFNAME: 'eth1' });
    expect(second.code).toBe(0);
    expect([...fake.sandboxes.values()].map((s) => s.id)).toEqual([sandbox.id]);
    expect(fake.calls.filter((c) => c.method === 'deleteSandbox')).toEqual([]);
    expect((await fake.inspectSandbox(sandbox.id)).endpoints.map((e) => e.networkName).sort()).toEqual([
      'db',
      'web',
    ]);
  });

  it('attaches a sandbox for the container to the named network and reports it', async () => {
    await webNetwork();
    const r = await cni('ADD', conf());
    expect(r.code).toBe(0);
    const [sandbox] = fake.sandboxes.values();
    expect(sandbox).toMatchObject({
      name: 'cni-c1',
      key: netns('c1'),
      ownsNetns: false,
      labels: { [CONTAINER_ID_LABEL]: 'c1' },
    });
    const [endpoint] = fake.endpoints.values();
    expect(endpoint).toMatchObject({ ifname: 'eth0', ipv4: '10.1.0.2/24' });
    // The fake's bridge network records its bridge (no MAC); its endpoints no host-side veth.
    const bridge = [...fake.networks.values()][0]?.driverData.bridge;
    expect(r.out).toEqual({
      cniVersion: '1.1.0',
      interfaces: [{ name: bridge }, { name: 'eth0', mac: endpoint?.mac, sandbox: netns('c1') }],
      ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
    });
  });

  it('names another netctl network with "network"; passes dns through', async () => {
    await webNetwork();
    const r = await cni(
      'ADD',
      conf({ name: 'podman-web', network: 'web', dns: { nameservers: ['10.1.0.1'] } }),
    );
    expect(r.out).toMatchObject({ ips: [{ address: '10.1.0.2/24' }], dns: { nameservers: ['10.1.0.1'] } });
  });

  it('takes static address, MAC and port mappings from runtimeConfig', async () => {
    await webNetwork();
    const r = await cni(
      'ADD',
      conf({
        runtimeConfig: {
          ips: ['10.1.0.50/24'],
          mac: '02:11:22:33:44:55',
          portMappings: [
            { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
            { hostPort: 53, containerPort: 53, protocol: 'UDP', hostIP: '127.0.0.1' },
          ],
        },
      }),
    );
    expect(r.code).toBe(0);
    expect(fake.calls.find((c) => c.method === 'connect')?.args[0]).toMatchObject({
      ifname: 'eth0',
      ipv4: '10.1.0.50',
      mac: '02:11:22:33:44:55',
      portMappings: [
        { proto: 'tcp', hostPort: 8080, containerPort: 80 },
        { proto: 'udp', hostIp: '127.0.0.1', hostPort: 53, containerPort: 53 },
      ],
    });
    expect(r.out.interfaces[1]).toMatchObject({ name: 'eth0', mac: '02:11:22:33:44:55' });
  });

  it('takes IP and MAC from CNI_ARGS; refuses unknown keys unless IgnoreUnknown', async () => {
    await webNetwork();
    expect((await cni('ADD', conf(), { CNI_ARGS: 'FOO=1' })).out).toMatchObject({
      code: 2,
      msg: 'unsupported CNI_ARGS key FOO=1',
    });
    const r = await cni('ADD', conf(), { CNI_ARGS: 'IgnoreUnknown=1;FOO=1;IP=10.1.0.9' });
    expect(r.out.ips[0].address).toBe('10.1.0.9/24');
  });

  it("makes the network from the configuration's subnet on first use, and insists on it afterwards", async () => {
    const r = await cni('ADD', conf({ subnet: '10.9.0.0/24', mtu: 1400, ipMasq: false }));
    expect(r.code).toBe(0);
    expect([...fake.networks.values()][0]).toMatchObject({
      name: 'web',
      ipam: { config: [{ subnet: '10.9.0.0/24' }] },
      options: {
        'com.docker.network.driver.mtu': '1400',
        'com.docker.network.bridge.enable_ip_masquerade': 'false',
      },
      labels: { 'netctl.cni.config': 'web' },
    });
    const other = await cni('ADD', conf({ subnet: '10.8.0.0/24' }), {
      CNI_CONTAINERID: 'c2',
      CNI_NETNS: netns('c2'),
    });
    expect(other.out).toMatchObject({ code: 7, msg: 'netctl network web exists with subnet 10.9.0.0/24' });
  });

  it("a subnet another network's record holds: error 100 at once, no waiting as for a creation in flight", async () => {
    await fake.createNetwork({ name: 'other', ipam: { config: [{ subnet: '10.9.0.0/16' }] } });
    const started = Date.now();
    const r = await cni('ADD', conf({ subnet: '10.9.1.0/24' }));
    expect(r.out).toMatchObject({ code: 100, details: 'NETCTL_POOL_OVERLAP' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(fake.sandboxes.size).toBe(0);
  });

  it('an unknown network without a subnet: error 7 saying how to make it', async () => {
    const r = await cni('ADD', conf());
    expect(r).toMatchObject({ code: 7, out: { code: 7, msg: 'netctl network web does not exist' } });
    expect(r.out.details).toContain('netctl network create');
    expect(fake.sandboxes.size).toBe(0);
  });

  it('an interface of that name already in the container: error 100; the sandbox stays for the first', async () => {
    await webNetwork();
    await cni('ADD', conf());
    const again = await cni('ADD', conf());
    expect(again.out).toMatchObject({ code: 100, msg: 'interface eth0 already exists in container c1' });
    expect(fake.endpoints.size).toBe(1);
  });

  it('a failed connect leaves no sandbox behind', async () => {
    await webNetwork();
    fake.failNext.set('connect', new Errors.NoAvailableAddress('10.1.0.0/24'));
    expect((await cni('ADD', conf())).out).toMatchObject({
      code: 100,
      details: 'NETCTL_NO_AVAILABLE_ADDRESS',
    });
    expect(fake.sandboxes.size).toBe(0);
  });

  it('refuses what it cannot do: another IPAM type, bandwidth, a netns that is not there', async () => {
    await webNetwork();
    expect((await cni('ADD', conf({ ipam: { type: 'host-local' } }))).out).toMatchObject({
      code: 2,
      msg: 'unsupported field ipam.type="host-local"',
    });
    expect((await cni('ADD', conf({ runtimeConfig: { bandwidth: { ingressRate: 1 } } }))).out.code).toBe(2);
    expect((await cni('ADD', conf(), { CNI_NETNS: '/nonexistent/ns' })).out).toMatchObject({
      code: 4,
      msg: 'invalid CNI_NETNS',
    });
    expect((await cni('ADD', conf(), { CNI_NETNS: '/proc/self/ns/net' })).out.details).toContain(
      "netctl's own network namespace",
    );
    expect((await cni('ADD', conf({ mtu: 'big' }))).out).toMatchObject({
      code: 7,
      msg: 'invalid network configuration',
    });
  });
});

describe('DEL', () => {
  it('disconnects and removes the sandbox; again, or for an unknown container, is success', async () => {
    await webNetwork();
    await cni('ADD', conf());
    expect((await cni('DEL', conf())).code).toBe(0);
    expect(fake.endpoints.size).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
    expect((await cni('DEL', conf())).code).toBe(0);
    expect((await cni('DEL', conf(), { CNI_CONTAINERID: 'never-added' })).code).toBe(0);
    expect((await cni('DEL', conf({ name: 'no-such-network' }))).code).toBe(0);
  });

  it("works without CNI_NETNS, and leaves the container's other attachment alone", async () => {
    await webNetwork();
    await fake.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    await cni('ADD', conf());
    const sandbox = [...fake.sandboxes.values()][0];
    await fake.connect({ network: 'db', sandbox: sandbox?.id as string, ifname: 'eth1' });
    let stdout = '';
    const code = await dispatch(
      {
        getenv: (n) => ({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' })[n],
        readStdin: async () => JSON.stringify(conf()),
        stdout: (t) => {
          stdout += t;
        },
      },
      netctlCniHandlers({ api: async () => fake }),
    );
    expect({ code, stdout }).toEqual({ code: 0, stdout: '' });
    expect([...fake.endpoints.values()].map((e) => e.ifname)).toEqual(['eth1']);
    expect(fake.sandboxes.size).toBe(1);
  });
});

describe('CHECK', () => {
  it('passes after ADD; reports what the controller finds missing, with the repair hint (error 102)', async () => {
    await webNetwork();
    const added = (await cni('ADD', conf({ cniVersion: '1.0.0' }))).out;
    const check = () => cni('CHECK', conf({ cniVersion: '1.0.0', prevResult: added }));
    expect((await check()).code).toBe(0);
    fake.missing.set([...fake.networks.values()][0]?.id as string, ['bridge nc-1', '4 firewall rule(s)']);
    const r = await check();
    expect(r.out).toMatchObject({
      code: 102,
      msg: 'attachment c1/eth0 to network web is not as ADD left it',
    });
    expect(r.out.details).toBe(
      "missing: bridge nc-1, 4 firewall rule(s) (`netctl repair web` puts the network's part back)",
    );
  });

  it('needs prevResult (7), knows no other container (3), checks prevResult against the attachment', async () => {
    await webNetwork();
    expect((await cni('CHECK', conf())).out).toMatchObject({ code: 7, msg: 'required prevResult missing' });
    const added = (await cni('ADD', conf())).out;
    expect((await cni('CHECK', conf({ prevResult: added }), { CNI_CONTAINERID: 'c9' })).out.code).toBe(3);
    const wrong = { ...added, ips: [{ address: '10.1.0.99/24', interface: 1 }] };
    expect((await cni('CHECK', conf({ prevResult: wrong }))).out.details).toContain(
      'prevResult lacks address 10.1.0.2/24',
    );
  });
});

describe('STATUS', () => {
  it('ready; 50 when the network is not there (and the configuration cannot make it) or the store is down; 51 when it is broken', async () => {
    expect((await cni('STATUS', conf())).out).toMatchObject({
      code: 50,
      msg: 'netctl network web does not exist',
    });
    expect((await cni('STATUS', conf({ subnet: '10.1.0.0/24' }))).code).toBe(0);
    const web = await webNetwork();
    expect((await cni('STATUS', conf())).code).toBe(0);
    fake.missing.set(web.id, ['bridge nc-1']);
    expect((await cni('STATUS', conf())).out).toMatchObject({
      code: 51,
      details: 'missing: bridge nc-1 (`netctl repair web` puts it back)',
    });
    fake.failNext.set('health', new Errors.StoreUnavailable('lmdb', 'gone'));
    expect((await cni('STATUS', conf())).out).toMatchObject({ code: 50 });
  });
});

describe('GC', () => {
  it("removes the network's CNI attachments not in the list, and never the CLI's or Docker's sandboxes", async () => {
    await webNetwork();
    for (const id of ['keep', 'gone1', 'gone2'])
      await cni('ADD', conf(), { CNI_CONTAINERID: id, CNI_NETNS: netns(id) });
    await fake.createSandbox({ name: 'cli-box' });
    await fake.connect({ network: 'web', sandbox: 'cli-box' });
    const gc = (attachments?: object[]) =>
      cni('GC', conf(attachments ? { 'cni.dev/valid-attachments': attachments } : {}));
    expect((await gc()).out).toMatchObject({ code: 7, msg: 'cni.dev/valid-attachments missing' });
    expect((await gc([{ containerID: 'keep', ifname: 'eth0' }])).code).toBe(0);
    expect([...fake.sandboxes.values()].map((s) => s.name).sort()).toEqual(['cli-box', 'cni-keep']);
    expect(fake.endpoints.size).toBe(2);
    // The same container with another interface name is another attachment.
    expect((await gc([{ containerID: 'keep', ifname: 'eth1' }])).code).toBe(0);
    expect([...fake.sandboxes.values()].map((s) => s.name)).toEqual(['cli-box']);
    expect(await gc([]).then((r) => r.code)).toBe(0);
    expect((await cni('GC', conf({ name: 'nonet', 'cni.dev/valid-attachments': [] }))).code).toBe(0);
  });

  it("leaves a container's sandbox that has no attachment to the network yet (an ADD between its two steps)", async () => {
    await webNetwork();
    // What an ADD has made just before it connects: the container's sandbox, empty.
    const early = await fake.createSandbox({
      name: sandboxNameOf('starting'),
      key: netns('starting'),
      labels: { [CONTAINER_ID_LABEL]: 'starting' },
    });
    expect((await cni('GC', conf({ 'cni.dev/valid-attachments': [] }))).code).toBe(0);
    expect(fake.sandboxes.has(early.id)).toBe(true);
  });
});

it("sandbox names fit netctl's 64 characters and stay distinct for long container ids", () => {
  const a = `${'a'.repeat(64)}`;
  const b = `${'a'.repeat(63)}b`;
  expect(sandboxNameOf('abc')).toBe('cni-abc');
  expect(sandboxNameOf(a)).toHaveLength(64);
  expect(sandboxNameOf(a)).not.toBe(sandboxNameOf(b));
  expect(sandboxNameOf(a)).toMatch(/^cni-a+-[0-9a-f]{12}$/);
});
