/**
 * Restarts under Docker (issue 6): dockerd restarted (cleanly, and killed)
 * with containers on netctl networks, and the netctl daemon restarted or
 * killed -9 while containers run. Containers keep their traffic, and
 * Docker's later calls (run, rm, network rm) succeed. One dockerd for the
 * file; the tests run in order and share one network.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ping } from '../../helpers/ping.js';
import {
  type DockerHost,
  docker,
  dockerHostForFile,
  EXT_HOST,
  fetchFromOutside,
  HTTPD,
  inContainer,
  inspectNetwork,
  ipOn,
  leftovers,
  NET,
  runOn,
} from './fixture.js';

const file = dockerHostForFile('dr');
let h: DockerHost;
beforeEach(() => {
  h = file.h;
});

const run = (name: string, ...args: string[]) => runOn(h, 'web', name, args);

/** The web server published on 8080, and two containers that ping each other. */
async function trafficFlows(a: string, b: string): Promise<void> {
  expect(await ping(inContainer(h, a), await ipOn(h, b, 'web'))).toBe(true);
  expect(await ping(inContainer(h, b), await ipOn(h, a, 'web'))).toBe(true);
  await expect
    .poll(() => fetchFromOutside(h, `http://${EXT_HOST}:8080/`), { timeout: 5000 })
    .toBe('hello from docker\n');
}

/** A container comes and goes through Docker: the plugin answers every call again. */
async function dockerStillWorks(): Promise<void> {
  await run('probe');
  const ip = await ipOn(h, 'probe', 'web');
  expect(ip).toMatch(/^10\.50\.0\./);
  expect(await ping(inContainer(h, 'probe'), await ipOn(h, 'c1', 'web'))).toBe(true);
  await docker(h, 'rm', '-f', 'probe');
  expect((await leftovers(h)).addresses.filter((a) => a.startsWith(`${ip}/`))).toEqual([]);
}

describe('restarts with containers on a netctl network', () => {
  it('sets up a network, two containers that restart with dockerd, and a published web server', async () => {
    await docker(h, 'network', 'create', ...NET, '-o', 'netctl.name=web', '--subnet', '10.50.0.0/24', 'web');
    // --stop-timeout: sleep as pid 1 ignores SIGTERM, and dockerd waits 10 s by default.
    await run('c1', '--restart', 'always', '--stop-timeout', '1');
    await run('c2', '--restart', 'always', '--stop-timeout', '1');
    await runOn(h, 'web', 'www', ['--restart', 'always', '--stop-timeout', '1', '-p', '8080:80'], HTTPD);
    await trafficFlows('c1', 'c2');
  });

  it.each([
    ['stopped (SIGTERM)', () => file.h.netctl.stop()],
    ['killed -9', () => file.h.netctl.kill()],
  ])(
    'survives the netctl daemon %s: traffic flows while it is down, Docker calls succeed after',
    async (_how, stop) => {
      const before = await inspectNetwork(h, 'web');
      await stop();
      await trafficFlows('c1', 'c2');
      await h.restartNetctl();
      await trafficFlows('c1', 'c2');
      // The daemon's start-up reconcile kept Docker's endpoints, addresses and port mappings.
      expect((await inspectNetwork(h, 'web')).Containers).toEqual(before.Containers);
      await dockerStillWorks();
    },
  );

  it('survives a dockerd restart: its containers come back on the network with working traffic', async () => {
    await h.d.restart();
    // dockerd stopped the containers (Leave, DeleteEndpoint) and starts them again (CreateEndpoint, Join).
    await expect
      .poll(async () => (await docker(h, 'ps', '--format', '{{.Names}}')).split('\n').sort(), {
        timeout: 20_000,
      })
      .toEqual(['c1', 'c2', 'www']);
    await trafficFlows('c1', 'c2');
    const containers = Object.values((await inspectNetwork(h, 'web')).Containers);
    expect(containers).toHaveLength(3);
    // Docker's view and netctl's agree on every endpoint.
    for (const name of ['c1', 'c2', 'www']) {
      const endpointId = await docker(
        h,
        'inspect',
        '-f',
        '{{.NetworkSettings.Networks.web.EndpointID}}',
        name,
      );
      expect(containers.map((c) => c.EndpointID)).toContain(endpointId);
    }
    await dockerStillWorks();
  });

  it('survives dockerd killed -9: stale endpoints are cleaned up, containers come back', async () => {
    await h.d.restart({ crash: true });
    await expect
      .poll(async () => (await docker(h, 'ps', '--format', '{{.Names}}')).split('\n').sort(), {
        timeout: 20_000,
      })
      .toEqual(['c1', 'c2', 'www']);
    await trafficFlows('c1', 'c2');
    // One endpoint per container: the ones of before the crash are gone.
    expect(Object.values((await inspectNetwork(h, 'web')).Containers)).toHaveLength(3);
    const addresses = (await leftovers(h)).addresses.filter((a) => a.startsWith('10.50.'));
    expect(addresses).toHaveLength(4); // the gateway and three containers
    await dockerStillWorks();
  });

  it('keeps containers running through a dockerd restart with --live-restore; Activate sweeps none of them', async () => {
    // Now with --live-restore (this restart still stops and starts the containers) ...
    await h.d.restart({ args: ['--live-restore'] });
    await expect
      .poll(async () => (await docker(h, 'ps', '--format', '{{.Names}}')).split('\n').sort(), {
        timeout: 20_000,
      })
      .toEqual(['c1', 'c2', 'www']);
    const started = await docker(h, 'inspect', '-f', '{{.State.StartedAt}}', 'c1', 'c2', 'www');
    const before = await inspectNetwork(h, 'web');
    // ... so this one leaves them running: dockerd calls the plugin for none of them.
    await h.d.restart();
    expect(await docker(h, 'inspect', '-f', '{{.State.StartedAt}}', 'c1', 'c2', 'www')).toBe(started);
    await trafficFlows('c1', 'c2');
    // The new dockerd activates the plugin on its first call: their sandboxes are live, none is swept.
    await dockerStillWorks();
    expect((await inspectNetwork(h, 'web')).Containers).toEqual(before.Containers);
  });

  it('removes everything through Docker afterwards, leaving nothing behind', async () => {
    await docker(h, 'rm', '-f', 'c1', 'c2', 'www');
    await docker(h, 'network', 'rm', 'web');
    expect(await leftovers(h)).toEqual(file.empty);
  });
});
