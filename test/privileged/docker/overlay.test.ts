/**
 * Docker on a netctl overlay across hosts (issue 13): two simulated hosts
 * (bench/lib/cluster.ts: a netns and a netctl daemon each, one Redis),
 * each with a real dockerd 20.10 of its own in its netns whose plugins are
 * that host's daemon's (bench/lib/dockerd.ts). The overlay is made once
 * with netctl and adopted by each host's dockerd under its own NetworkID
 * (`-d netctl-overlay --ipam-opt netctl.name=web -o netctl.name=web`);
 * containers reach each other across hosts by address.
 *
 * One cluster and two dockerds for the file; the tests run in order.
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, type ClusterHost, startCluster } from '../../../bench/lib/cluster.js';
import { type Dockerd, startDockerd } from '../../../bench/lib/dockerd.js';
import { clusterKeys } from '../../../src/controller/keys.js';
import type { Network } from '../../../src/core/model.js';
import { macFromIpv4 } from '../../../src/kernel/index.js';
import { CLUSTER_ROOT, openStore } from '../../../src/kv/index.js';
import { packageRoot } from '../../../src/paths.js';
import { fetchFrom } from '../controller/fixture.js';
import { expectedEntries, peerEntries } from '../overlay/fixture.js';
import { HTTPD } from './fixture.js';

const SUBNET = '10.50.0.0/24';
/** How long a join may take to reach the other host's kernel. */
const CONVERGE_MS = 5000;
/** `docker network create` of the overlay on a host: netctl's, adopted. */
const ADOPT = ['-d', 'netctl-overlay', '--ipam-driver', 'netctl', '--ipam-opt', 'netctl.name=web'];

let cluster: Cluster;
let h1: ClusterHost;
let h2: ClusterHost;
/** Each host's dockerd, by host name. */
const dockerds = new Map<string, Dockerd>();
let networkId: string;

const dockerdOf = (host: ClusterHost): Dockerd => {
  const d = dockerds.get(host.name);
  if (!d) throw new Error(`no dockerd on ${host.name} (beforeAll failed?)`);
  return d;
};

async function docker(host: ClusterHost, ...args: string[]): Promise<string> {
  return (await dockerdOf(host).docker(args, 60_000)).stdout.trim();
}

async function dockerFails(host: ClusterHost, ...args: string[]): Promise<string> {
  try {
    await dockerdOf(host).docker(args, 60_000);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`docker ${args.join(' ')} succeeded on ${host.name}`);
}

async function netctl(host: ClusterHost, ...args: string[]): Promise<string> {
  const r = await host.cli(args);
  if (r.code !== 0) throw new Error(`netctl ${args.join(' ')} on ${host.name}: ${r.stderr}`);
  return r.stdout;
}

/** The host's view of network `name` (`netctl network ls --format json`). */
async function listed(host: ClusterHost, name: string): Promise<{ id: string; dockerId?: string }> {
  const all = JSON.parse(await netctl(host, 'network', 'ls', '--no-trunc', '--format', 'json')) as {
    id: string;
    name: string;
    dockerId?: string;
  }[];
  const found = all.find((n) => n.name === name);
  if (!found) throw new Error(`${host.name} does not list ${name}`);
  return found;
}

/** A container's address and MAC on web. */
async function placement(host: ClusterHost, container: string): Promise<{ ip: string; mac: string }> {
  const out = await docker(
    host,
    'inspect',
    '-f',
    '{{with index .NetworkSettings.Networks "web"}}{{.IPAddress}} {{.MacAddress}}{{end}}',
    container,
  );
  const [ip = '', mac = ''] = out.split(' ');
  return { ip, mac };
}

/** The shared record of the network and who holds each address of its pool (the store itself, not a daemon). */
async function shared(): Promise<{ network: Network; owners: Map<string, string> }> {
  const kv = await openStore(cluster.redis.url);
  try {
    const network = (await kv.get(clusterKeys.network(networkId)))?.value as unknown as Network;
    const prefix = `${CLUSTER_ROOT}/ipam/addrs/global/${SUBNET.replace('/', '_')}/`;
    const owners = new Map(
      (await kv.list(prefix)).map((e) => [
        e.key.slice(prefix.length),
        (e.value as unknown as { owner: string }).owner,
      ]),
    );
    return { network, owners };
  } finally {
    await kv.close();
  }
}

/** NetworkDriver.GetCapabilities of the host's netctl-overlay socket, as dockerd asks it (no body, no Content-Type). */
function capabilities(host: ClusterHost): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: join(host.pluginDir ?? '', 'netctl-overlay.sock'),
        method: 'POST',
        path: '/NetworkDriver.GetCapabilities',
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString('utf8');
        });
        res.on('end', () => resolve(JSON.parse(body)));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  // The daemons run from dist/ (npm test builds it first).
  if (!existsSync(join(packageRoot, 'dist', 'src', 'server', 'docker', 'server.js')))
    throw new Error('dist/ lacks the Docker plugin: run `npm run build` first (npm test does)');
  cluster = await startCluster({ hosts: 2, dockerPlugins: true });
  [h1, h2] = cluster.hosts as [ClusterHost, ClusterHost];
  await Promise.all(
    cluster.hosts.map(async (host) => {
      if (!host.pluginDir) throw new Error('the cluster serves no plugin sockets');
      const d = await startDockerd(`${cluster.tag}-${host.name}-dk`, {
        netns: host.netns,
        pluginDir: host.pluginDir,
      });
      dockerds.set(host.name, d);
    }),
  );
}, 120_000);

afterAll(async () => {
  try {
    for (const d of dockerds.values()) {
      const containers = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (containers.length) await d.docker(['rm', '-f', ...containers], 60_000);
      const networks = (await d.docker(['network', 'ls', '-q', '--filter', 'driver=netctl-overlay'])).stdout
        .split('\n')
        .filter(Boolean);
      if (networks.length) await d.docker(['network', 'rm', ...networks]);
    }
  } finally {
    for (const d of dockerds.values()) await d.stop();
    await cluster?.close();
  }
}, 120_000);

describe('Docker on a netctl overlay across two hosts', () => {
  it('each host adopts the one overlay under its own Docker id; the shared record holds none', async () => {
    await netctl(h1, 'network', 'create', '-d', 'overlay', '--subnet', SUBNET, 'web');
    networkId = (await listed(h1, 'web')).id;
    // Local scope, so each dockerd keeps the network itself (global is refused without swarm).
    expect(await capabilities(h1)).toEqual({ Scope: 'local', ConnectivityScope: 'global' });
    const [d1, d2] = await Promise.all(
      [h1, h2].map((h) => docker(h, 'network', 'create', ...ADOPT, '-o', 'netctl.name=web', 'web')),
    );
    expect(d1).not.toBe(d2);
    expect(await docker(h1, 'network', 'inspect', '-f', '{{.Scope}}', 'web')).toBe('local');
    expect(await listed(h1, 'web')).toMatchObject({ id: networkId, dockerId: d1 });
    expect(await listed(h2, 'web')).toMatchObject({ id: networkId, dockerId: d2 });
    expect((await shared()).network.dockerId).toBeUndefined();
    // Docker cannot make an overlay of its own: each host's would be another network.
    expect(
      await dockerFails(h1, 'network', 'create', '-d', 'netctl-overlay', '--ipam-driver', 'netctl', 'mine'),
    ).toMatch(/adopted by each host's Docker/);
  });

  it('containers on two hosts reach each other by address: ping and HTTP', async () => {
    await docker(h1, 'run', '-d', '--name', 'www', '--network', 'web', '-p', '8080:80', ...HTTPD);
    await docker(h2, 'run', '-d', '--name', 'peer', '--network', 'web', 'busybox', 'sleep', '3600');
    const a = await placement(h1, 'www');
    const b = await placement(h2, 'peer');
    expect(a.ip).toMatch(/^10\.50\.0\.\d+$/);
    expect(b.ip).toMatch(/^10\.50\.0\.\d+$/);
    expect(a.ip).not.toBe(b.ip);
    // The overlay driver's random MAC, not one that follows the address; Docker passes none.
    expect(a.mac).not.toBe(macFromIpv4(a.ip));
    // Each join wrote its peer record: the other host programmed it.
    const onH2 = expectedEntries([{ host: h1, network: 'web', sandbox: 'www', netns: '', ...a }]);
    expect(
      await until(
        () => peerEntries(h2, networkId, [a]),
        (e) => e.join() === onH2.join(),
        CONVERGE_MS,
      ),
    ).toEqual(onH2);
    const onH1 = expectedEntries([{ host: h2, network: 'web', sandbox: 'peer', netns: '', ...b }]);
    expect(
      await until(
        () => peerEntries(h1, networkId, [b]),
        (e) => e.join() === onH1.join(),
        CONVERGE_MS,
      ),
    ).toEqual(onH1);
    await docker(h2, 'exec', 'peer', 'ping', '-c', '1', '-W', '2', a.ip);
    await docker(h1, 'exec', 'www', 'ping', '-c', '1', '-W', '2', b.ip);
    expect(
      await docker(h2, 'run', '--rm', '--network', 'web', 'busybox', 'wget', '-qO-', `http://${a.ip}/`),
    ).toBe('hello from docker');
    // -p publishes on the host the container runs on.
    expect(await fetchFrom(h2.netns, `http://${h1.address}:8080/`)).toBe('hello from docker\n');
  });

  it("the two hosts' Docker addresses never meet: each is held by its own host's Docker", async () => {
    // Four at once from each host, against the one cluster pool.
    await Promise.all(
      [h1, h2].flatMap((h) =>
        [1, 2, 3, 4].map((i) =>
          docker(h, 'run', '-d', '--name', `${h.name}-${i}`, '--network', 'web', 'busybox', 'sleep', '3600'),
        ),
      ),
    );
    const { owners } = await shared();
    const ips: string[] = [];
    for (const h of [h1, h2]) {
      const hostId = (await h.api.health()).cluster?.hostId;
      const mine = [...[1, 2, 3, 4].map((i) => `${h.name}-${i}`), h === h1 ? 'www' : 'peer'];
      for (const container of mine) {
        const { ip } = await placement(h, container);
        ips.push(ip);
        expect(owners.get(ip)).toMatch(
          new RegExp(`^docker:global/10\\.50\\.0\\.0/24@${hostId}\\.[0-9a-f]{8}$`),
        );
      }
    }
    expect(new Set(ips).size).toBe(10);
  });

  it('docker network rm on one host leaves the netctl network, the other host adoption and its addresses', async () => {
    const a = await placement(h1, 'www');
    const before = await shared();
    const containers = async (h: ClusterHost) => (await docker(h, 'ps', '-aq')).split('\n').filter(Boolean);
    const addressesOf = async (h: ClusterHost) =>
      Promise.all(
        (await docker(h, 'ps', '-a', '--format', '{{.Names}}'))
          .split('\n')
          .map(async (c) => (await placement(h, c)).ip),
      );
    const [ofH1, ofH2] = [await addressesOf(h1), await addressesOf(h2)];
    await docker(h2, 'rm', '-f', ...(await containers(h2)));
    await docker(h2, 'network', 'rm', 'web');
    const after = await shared();
    // h2's Docker gave back its own addresses (ReleaseAddress, ReleasePool), nothing of h1's, not the gateway.
    for (const ip of ofH2) expect(after.owners.has(ip)).toBe(false);
    for (const ip of ofH1) expect(after.owners.get(ip)).toBe(before.owners.get(ip));
    expect(after.owners.get('10.50.0.1')).toBe(`net:${networkId}`);
    expect(after.owners.size).toBe(before.owners.size - ofH2.length);
    expect(await listed(h1, 'web')).toMatchObject({ id: networkId, dockerId: expect.any(String) });
    expect((await listed(h2, 'web')).dockerId).toBeUndefined();
    // Another host's Docker still has it: netctl refuses to remove it anywhere.
    const rm = await h2.cli(['network', 'rm', 'web']);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toMatch(/docker network rm on host [0-9a-f]{16}/);
    // Adopted again on h2: a container there reaches h1's at once.
    await docker(h2, 'network', 'create', ...ADOPT, '-o', 'netctl.name=web', 'web');
    expect(
      await docker(h2, 'run', '--rm', '--network', 'web', 'busybox', 'wget', '-qO-', `http://${a.ip}/`),
    ).toBe('hello from docker');
  });
});
