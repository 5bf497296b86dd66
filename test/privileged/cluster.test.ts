/**
 * bench/lib/cluster.ts, the simulated hosts the overlay tests and benchmark
 * run on: each host's daemon answers in its own netns and makes its bridge
 * networks there, the hosts reach each other over the underlay, Redis keeps
 * its data across a stop, and close() leaves no netns, link, process or dir
 * behind — also when the start fails half-way.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, startCluster } from '../../bench/lib/cluster.js';
import { packageRoot } from '../../src/paths.js';
import { ping } from '../helpers/ping.js';
import { ipJson } from '../helpers/tools.js';

// The daemons run bin/netctl.js, which runs dist/.
beforeAll(() => {
  if (!existsSync(join(packageRoot, 'dist', 'src', 'cli', 'main.js')))
    throw new Error('dist/ is not built: run `npm run build` first (npm test does)');
});

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What a cluster may leave: netns, links in this (the caller's) netns, its processes and dir. */
function leftovers(cluster: Cluster, pids: number[]): string[] {
  const found: string[] = [];
  const netns = readdirSync('/run/netns');
  if (netns.length) found.push(`netns: ${netns.join(' ')}`);
  const links = ipJson<{ ifname: string }[]>(['link', 'show'])
    .map((l) => l.ifname)
    .filter((name) => name !== 'lo');
  if (links.length) found.push(`links: ${links.join(' ')}`);
  const running = pids.filter(alive);
  if (running.length) found.push(`processes: ${running.join(' ')}`);
  if (existsSync(cluster.dir)) found.push(`dir: ${cluster.dir}`);
  return found;
}

describe('startCluster', () => {
  it('two hosts: a bridge network and a sandbox on each, the underlay between them, Redis stopped and started with its data, nothing left after close()', async () => {
    const cluster = await startCluster({ hosts: 2 });
    const pids: number[] = [];
    try {
      const [h1, h2] = cluster.hosts;
      if (!h1 || !h2) throw new Error('two hosts asked for');
      expect([h1.name, h1.address, h2.name, h2.address]).toEqual(['h1', '10.99.0.1', 'h2', '10.99.0.2']);
      expect(h1.pid).not.toBe(h2.pid);
      expect(cluster.redis.url).toMatch(/^redis:\/\/10\.99\.0\.254:\d+\/0$/);
      pids.push(h1.pid, h2.pid, cluster.redis.pid!);

      // Each host's bridge network and sandbox, made in its own netns.
      const sandboxes = [];
      for (const [i, host] of cluster.hosts.entries()) {
        const network = `${cluster.tag}-net${i + 1}`;
        await host.api.createNetwork({ name: network, ipam: { config: [{ subnet: `10.6${i}.0.0/24` }] } });
        const sandbox = await host.api.createSandbox({ name: host.sandboxName('s') });
        await host.api.connect({ network, sandbox: sandbox.name });
        const { endpoints } = await host.api.inspectSandbox(sandbox.name);
        expect(endpoints.map((e) => e.ipv4)).toEqual([`10.6${i}.0.2/24`]);
        const bridges = JSON.parse(await host.exec('ip', ['-j', 'link', 'show', 'type', 'bridge'])) as {
          ifname: string;
        }[];
        expect(bridges).toHaveLength(1);
        expect(await ping(sandbox.key, `10.6${i}.0.1`)).toBe(true);
        // Its run dir is the host's (NETCTL_RUN_DIR), not the machine's /run/netctl.
        expect(existsSync(join(host.dir, 'run', 'sandboxes', sandbox.id))).toBe(true);
        sandboxes.push(sandbox);
      }
      // Each daemon is a host of the cluster at its underlay address, and sees only its own.
      expect((await h1.api.listHosts()).map((h) => [h.address, h.self]).sort()).toEqual([
        ['10.99.0.1', true],
        ['10.99.0.2', false],
      ]);
      for (const host of cluster.hosts) {
        expect((await host.api.health()).cluster?.address).toBe(host.address);
        expect((await host.api.listSandboxes()).map((s) => s.name)).toEqual([host.sandboxName('s')]);
      }
      // Not in the caller's netns: only the underlay bridge and the hosts' ports are there.
      expect(
        ipJson<{ ifname: string }[]>(['link', 'show'])
          .map((l) => l.ifname)
          .sort(),
      ).toEqual(['lo', `${cluster.tag}h1`, `${cluster.tag}h2`, `${cluster.tag}ul`].sort());

      // The underlay, both ways, and the CLI in a host.
      expect(await ping(h1.netns, h2.address)).toBe(true);
      expect(await ping(h2.netns, h1.address)).toBe(true);
      const ls = await h2.cli(['network', 'ls', '--format', 'json']);
      expect(ls.code).toBe(0);
      expect((JSON.parse(ls.stdout) as { name: string }[]).map((n) => n.name)).toContain(
        `${cluster.tag}-net2`,
      );

      // Redis down and up again, on the same port and data.
      await cluster.redis.stop();
      expect(cluster.redis.pid).toBeUndefined();
      await cluster.redis.start();
      pids.push(cluster.redis.pid!);
      await cluster.waitForStore();
      expect((await h1.api.inspectNetwork(`${cluster.tag}-net1`)).endpoints).toHaveLength(1);

      // A daemon restarted: same socket and API object, another process.
      const before = h1.pid;
      await h1.restart();
      expect(h1.pid).not.toBe(before);
      expect(alive(before)).toBe(false);
      pids.push(h1.pid);
      expect((await h1.api.inspectSandbox(sandboxes[0]!.name)).endpoints).toHaveLength(1);
      expect(await ping(sandboxes[0]!.key, '10.60.0.1')).toBe(true);

      // kill(): the daemon is gone at once; start() brings it back.
      h2.kill();
      expect(await h2.stop()).toBe('SIGKILL');
      await h2.start();
      pids.push(h2.pid);
      expect((await h2.api.health()).storeReachable).toBe(true);
    } finally {
      await cluster.close();
    }
    expect(leftovers(cluster, pids)).toEqual([]);
    await cluster.close();
  }, 90_000);

  it('a daemon that will not start: startCluster rejects and leaves nothing', async () => {
    const before = readdirSync('/tmp').filter((name) => name.startsWith('netctl-cluster-'));
    await expect(startCluster({ hosts: 2, daemonArgs: ['--no-such-flag'] })).rejects.toThrow(
      /netctl daemon exited/,
    );
    expect(readdirSync('/run/netns')).toEqual([]);
    expect(ipJson<{ ifname: string }[]>(['link', 'show']).map((l) => l.ifname)).toEqual(['lo']);
    expect(readdirSync('/tmp').filter((name) => name.startsWith('netctl-cluster-'))).toEqual(before);
  }, 60_000);
});
