/**
 * CNI on an overlay network across two simulated hosts (bench/lib/cluster.ts:
 * a netns per host with its own daemon, one real redis-server): the
 * configuration `{"type": "netctl-cni", "network": "web"}` on each host,
 * its plugin talking to that host's daemon (NETCTL_SOCKET).
 *
 * First the plugin exec'd as a runtime execs it, from inside each host's
 * netns: STATUS, a container per host, ping across, MTU 1450, CHECK, DEL
 * withdrawn from the other host's FDB, a second DEL; a standalone run (no
 * daemon) is refused. Then podman (its CNI backend) on each host, in that host's netns:
 * a container on one host fetches a page from a container on the other.
 *
 * One cluster for the file; the tests run in order. Kernel state is read
 * with `ip`/`bridge` in the hosts' netns, never through netctl.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Cluster, type ClusterHost, startCluster } from '../../../bench/lib/cluster.js';
import { createNetns, deleteNetns } from '../../../src/kernel/index.js';
import { packageRoot } from '../../../src/paths.js';
import { ping } from '../../helpers/ping.js';
import { ipJson } from '../../helpers/tools.js';
import { expectedEntries, type Placed, peerEntries } from '../overlay/fixture.js';
import {
  type CniCall,
  type CniOutcome,
  execPlugin,
  type PluginHost,
  REFERENCE_PLUGINS,
} from './plugin-exec.js';
import { type Podman, startPodman } from './podman.js';

const SUBNET = '10.50.0.0/24';
const SUBNET_PREFIX = '10.50.0.';
const OVERLAY_MTU = 1450;
/** How long a join or leave may take to reach the other host's kernel. */
const CONVERGE_MS = 5000;
/** The configuration of the issue, the same on every host. */
const CONFIG = { cniVersion: '1.0.0', name: 'web', type: 'netctl-cni', network: 'web' };

let cluster: Cluster;
let h1: ClusterHost;
let h2: ClusterHost;
let networkId: string;
/** Container netns this file made (deleted in afterAll, whatever happened). */
const containerNetns: string[] = [];
const podmans: Podman[] = [];

/** What `netctl cni install` put in a host's dir: the plugin dir and the network config dir. */
const binDir = (host: ClusterHost) => join(host.dir, 'cni-bin');
const confDir = (host: ClusterHost) => join(host.dir, 'cni-conf');

/** The host's runtime: plugins from its plugin dir, run in its netns, talking to its daemon. */
function runtimeOf(host: ClusterHost): PluginHost {
  return {
    cniPath: `${binDir(host)}:${REFERENCE_PLUGINS}`,
    netns: host.netns,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NETCTL_SOCKET: host.socket, NETCTL_LOG_LEVEL: 'warn' },
  };
}

function cni(host: ClusterHost, call: CniCall, config: object = CONFIG): Promise<CniOutcome> {
  return execPlugin(runtimeOf(host), join(binDir(host), 'netctl-cni'), call, config);
}

/** A "container" of host: its netns, made as a runtime makes it before ADD. */
function containerOf(host: ClusterHost, name: string): string {
  const netnsName = `${cluster.tag}-${host.name}-${name}`;
  containerNetns.push(netnsName);
  return createNetns(netnsName);
}

interface AddResult {
  interfaces: { name: string; mac?: string; sandbox?: string }[];
  ips: { address: string; gateway?: string; interface?: number }[];
}

/** The container interface of an ADD's result, as overlay/fixture.ts's Placed. */
function placedOf(host: ClusterHost, netns: string, result: AddResult): Placed {
  const index = result.interfaces.findIndex((i) => i.name === 'eth0' && i.sandbox === netns);
  const address = result.ips.find((ip) => ip.interface === index)?.address;
  const mac = result.interfaces[index]?.mac;
  if (!address || !mac) throw new Error(`no eth0 with an address in ${JSON.stringify(result)}`);
  return { host, network: 'web', sandbox: netns, netns, ip: address.split('/')[0] as string, mac };
}

beforeAll(async () => {
  // The daemons run bin/netctl.js (dist/), the plugin is native/'s shim.
  if (!existsSync(join(packageRoot, 'dist', 'src', 'cli', 'main.js')))
    throw new Error('dist/ is not built: run `npm run build` first (npm test does)');
  cluster = await startCluster({ hosts: 2 });
  [h1, h2] = cluster.hosts as [ClusterHost, ClusterHost];
  const network = await h1.api.createNetwork({
    name: 'web',
    driver: 'overlay',
    ipam: { config: [{ subnet: SUBNET }] },
  });
  networkId = network.id;
  // Each host installs the plugins and web's conflist, as an operator would.
  for (const host of cluster.hosts) {
    const install = await host.cli([
      'cni',
      'install',
      '--bin-dir',
      binDir(host),
      '--conf-dir',
      confDir(host),
      '--network',
      'web',
    ]);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
  }
}, 60_000);

afterAll(async () => {
  const errors: unknown[] = [];
  const attempt = async (fn: () => unknown) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  // One at a time: a podman's stop removes the cgroups podmans made since it started.
  for (const podman of podmans.splice(0)) await attempt(() => podman.stop());
  for (const name of containerNetns.splice(0)) await attempt(() => deleteNetns(name));
  await attempt(() => cluster?.close());
  if (errors.length) throw new AggregateError(errors, 'clean-up failed');
}, 60_000);

it('CNI calls on each host: STATUS, ADD, ping across at MTU 1450, CHECK, DEL withdrawn from the other host, DEL again', async () => {
  const ns1 = containerOf(h1, 'ctr');
  const ns2 = containerOf(h2, 'ctr');
  const add1: CniCall = { command: 'ADD', containerId: `${cluster.tag}-ctr1`, netns: ns1, ifname: 'eth0' };
  const add2: CniCall = { command: 'ADD', containerId: `${cluster.tag}-ctr2`, netns: ns2, ifname: 'eth0' };

  // STATUS (1.1.0) before any container: the network is ready on a host that has no devices of it yet.
  for (const host of [h1, h2])
    expect(await cni(host, { command: 'STATUS' }, { ...CONFIG, cniVersion: '1.1.0' })).toMatchObject({
      code: 0,
      stdout: '',
    });

  const [r1, r2] = await Promise.all([cni(h1, add1), cni(h2, add2)]);
  for (const r of [r1, r2]) {
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
  }
  const c1 = placedOf(h1, ns1, r1.json as unknown as AddResult);
  const c2 = placedOf(h2, ns2, r2.json as unknown as AddResult);
  expect(c1.ip.startsWith(SUBNET_PREFIX)).toBe(true);
  expect(c2.ip.startsWith(SUBNET_PREFIX)).toBe(true);
  expect(c1.ip).not.toBe(c2.ip);
  expect((r1.json as unknown as AddResult).ips[0]).toMatchObject({ address: `${c1.ip}/24` });
  for (const ns of [ns1, ns2]) {
    expect(ipJson<{ mtu: number }[]>(['link', 'show', 'eth0'], ns)[0]?.mtu).toBe(OVERLAY_MTU);
  }

  // Each host has programmed the other's container (a host's first join reads the peers).
  await expect
    .poll(() => peerEntries(h2, networkId, [c1]), { timeout: CONVERGE_MS, interval: 50 })
    .toEqual(expectedEntries([c1]));
  await expect
    .poll(() => peerEntries(h1, networkId, [c2]), { timeout: CONVERGE_MS, interval: 50 })
    .toEqual(expectedEntries([c2]));
  expect(await ping(ns1, c2.ip)).toBe(true);
  expect(await ping(ns2, c1.ip)).toBe(true);

  // CHECK with the ADD's result, as a runtime does.
  expect(await cni(h1, { ...add1, command: 'CHECK' }, { ...CONFIG, prevResult: r1.json })).toMatchObject({
    code: 0,
    stdout: '',
  });
  expect(await cni(h2, { ...add2, command: 'CHECK' }, { ...CONFIG, prevResult: r2.json })).toMatchObject({
    code: 0,
    stdout: '',
  });

  // DEL on h1: h2's kernel no longer sends c1's MAC to h1; a second DEL is fine.
  expect(await cni(h1, { ...add1, command: 'DEL' }, { ...CONFIG, prevResult: r1.json })).toMatchObject({
    code: 0,
  });
  await expect
    .poll(() => peerEntries(h2, networkId, [c1]), { timeout: CONVERGE_MS, interval: 50 })
    .toEqual([]);
  expect(await cni(h1, { ...add1, command: 'DEL' }, CONFIG)).toMatchObject({ code: 0, stdout: '' });
  expect(ipJson<{ ifname: string }[]>(['link', 'show'], ns1).map((l) => l.ifname)).toEqual(['lo']);
  expect(await ping(ns2, c1.ip, 1)).toBe(false);

  expect(await cni(h2, { ...add2, command: 'DEL' }, CONFIG)).toMatchObject({ code: 0 });
  expect(await cni(h2, { ...add2, command: 'DEL' }, CONFIG)).toMatchObject({ code: 0 });
  expect(await h1.api.listSandboxes()).toEqual([]);
  expect(await h2.api.listSandboxes()).toEqual([]);
});

it('a standalone run (no daemon on NETCTL_SOCKET) on the shared store is refused: overlays need the daemon', async () => {
  const ns = containerOf(h1, 'alone');
  const runtime = runtimeOf(h1);
  const stateDir = join(cluster.dir, 'standalone-state');
  const r = await execPlugin(
    {
      ...runtime,
      env: {
        ...runtime.env,
        NETCTL_SOCKET: join(cluster.dir, 'no-daemon.sock'),
        NETCTL_STATE_DIR: stateDir,
        NETCTL_KV: cluster.redis.url,
      },
    },
    join(binDir(h1), 'netctl-cni'),
    { command: 'ADD', containerId: `${cluster.tag}-alone`, netns: ns, ifname: 'eth0' },
    CONFIG,
  );
  expect(r.json, r.stderr).toMatchObject({
    code: 7,
    details: expect.stringContaining('NETCTL_SHARED_STORE_REQUIRED'),
  });
  expect(r.code).toBe(7);
  expect(ipJson<{ ifname: string }[]>(['link', 'show'], ns).map((l) => l.ifname)).toEqual(['lo']);
});

it('podman (CNI backend) on each host, in its netns: a container on h2 fetches a page from one on h1, and pings it', async () => {
  for (const host of cluster.hosts) {
    const dir = join(host.dir, 'podman');
    mkdirSync(dir);
    // NETCTL_SOCKET reaches the plugin: libcni passes podman's environment on, and conmon_env_vars the cleanup's.
    podmans.push(
      await startPodman(
        dir,
        binDir(host),
        confDir(host),
        { NETCTL_SOCKET: host.socket },
        { netns: host.netns },
      ),
    );
  }
  const [p1, p2] = podmans as [Podman, Podman];
  // Each podman (so the plugins it execs, conmon, the cleanup) runs in its host's netns.
  for (const [i, podman] of podmans.entries())
    expect(statSync(`/proc/${podman.pid}/ns/net`).ino).toBe(statSync(cluster.hosts[i]!.netns).ino);
  for (const podman of [p1, p2]) {
    expect((await podman.run(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])).split('\n')).toContain(
      'web netctl-cni',
    );
  }
  await p1.run([
    'run',
    '-d',
    '--name',
    'server',
    '--network',
    'web',
    'localhost/busybox',
    'httpd',
    '-f',
    '-p',
    '80',
    '-h',
    '/www',
  ]);
  await p2.run(['run', '-d', '--name', 'client', '--network', 'web', 'localhost/busybox', 'sleep', '600']);
  const ipOf = async (podman: Podman, name: string) =>
    (
      await podman.run(['inspect', name, '--format', '{{(index .NetworkSettings.Networks "web").IPAddress}}'])
    ).trim();
  const [serverIp, clientIp] = [await ipOf(p1, 'server'), await ipOf(p2, 'client')];
  expect(serverIp.startsWith(SUBNET_PREFIX)).toBe(true);
  expect(clientIp.startsWith(SUBNET_PREFIX)).toBe(true);
  expect(serverIp).not.toBe(clientIp);
  expect(await p2.run(['exec', 'client', 'ip', 'link', 'show', 'eth0'])).toContain(`mtu ${OVERLAY_MTU}`);

  expect(await ping((args) => p2.run(['exec', 'client', 'ping', ...args]), serverIp)).toBe(true);
  expect(await ping((args) => p1.run(['exec', 'server', 'ping', ...args]), clientIp)).toBe(true);
  expect(await p2.run(['exec', 'client', 'busybox', 'wget', '-O', '-', `http://${serverIp}/`])).toBe(
    'hello from podman\n',
  );

  // podman rm on h1 (its CNI DEL) withdraws the server from h2's kernel.
  const serverMac = (
    await p1.run(['inspect', 'server', '--format', '{{(index .NetworkSettings.Networks "web").MacAddress}}'])
  ).trim();
  const server = { ip: serverIp, mac: serverMac };
  expect(await peerEntries(h2, networkId, [server])).toEqual(
    [`${serverMac} dst ${h1.address}`, `${serverMac} master`, `${serverIp} lladdr ${serverMac}`].sort(),
  );
  await p1.run(['rm', '--force', '--time', '0', 'server']);
  await expect
    .poll(() => peerEntries(h2, networkId, [server]), { timeout: CONVERGE_MS, interval: 50 })
    .toEqual([]);
  await p2.run(['rm', '--force', '--time', '0', 'client']);
  expect(await h1.api.listSandboxes()).toEqual([]);
  expect(await h2.api.listSandboxes()).toEqual([]);
}, 90_000);
