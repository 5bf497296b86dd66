import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { ping } from '../../helpers/ping.js';
import { assertBuilt, Daemon, daemonInventory, netctl } from '../controller/daemon-fixture.js';
import { fetchFrom } from '../controller/fixture.js';
import { cniHost, outsideNetns } from './fixture.js';
import { type Podman, startPodman } from './podman.js';

beforeAll(assertBuilt);

let podman: Podman | undefined;
// Runs before daemon-fixture's cleanup (hooks run last registered first).
afterEach(async () => {
  await podman?.stop();
  podman = undefined;
}, 60_000);

/** Endpoint addresses reserved in netctl's IPAM within a subnet (the gateway's is the network's). */
const addressesOf = async (dir: string, subnetPrefix: string) =>
  (await daemonInventory(dir)).addresses.filter(
    (a) => a.startsWith(subnetPrefix) && a.includes(' owner=ep:'),
  );

it('podman run --network <ours>: address from our IPAM, containers ping each other, -p works from outside, podman rm releases the address', async () => {
  const host = cniHost();
  await Daemon.start(host.dir);
  const binDir = join(host.dir, 'podman-bin');
  const confDir = join(host.dir, 'net.d');
  const install = await netctl(host.dir, [
    'cni',
    'install',
    '--bin-dir',
    binDir,
    '--conf-dir',
    confDir,
    '--network',
    'podnet',
    '--subnet',
    '10.93.0.0/24',
  ]);
  expect(install.stderr).toBe('');
  expect(install.status).toBe(0);
  const podmanDir = join(host.dir, 'podman');
  mkdirSync(podmanDir);
  podman = await startPodman(podmanDir, binDir, confDir, {
    NETCTL_SOCKET: host.socket,
    NETCTL_STATE_DIR: host.stateDir,
  });
  expect((await podman.run(['info', '--format', '{{.Host.NetworkBackend}}'])).trim()).toBe('cni');
  expect((await podman.run(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])).split('\n')).toContain(
    'podnet netctl-cni',
  );

  await podman.run(['run', '-d', '--name', 'c1', '--network', 'podnet', 'localhost/busybox', 'sleep', '600']);
  await podman.run([
    'run',
    '-d',
    '--name',
    'c2',
    '--network',
    'podnet',
    '-p',
    '8083:80',
    'localhost/busybox',
    'httpd',
    '-f',
    '-p',
    '80',
    '-h',
    '/www',
  ]);
  const ipOf = async (name: string) =>
    (
      await podman!.run([
        'inspect',
        name,
        '--format',
        '{{(index .NetworkSettings.Networks "podnet").IPAddress}}',
      ])
    ).trim();
  const [ip1, ip2] = [await ipOf('c1'), await ipOf('c2')];
  expect(ip1).toMatch(/^10\.93\.0\.\d+$/);
  expect(ip2).toMatch(/^10\.93\.0\.\d+$/);
  expect(ip1).not.toBe(ip2);
  // Both reserved in netctl's IPAM, and the interface has what podman reports.
  expect(await addressesOf(host.dir, '10.93.0.')).toEqual(
    [`${ip1}/24`, `${ip2}/24`].sort().map((a) => expect.stringContaining(a)),
  );
  expect(await podman.run(['exec', 'c1', 'ip', '-4', 'addr', 'show', 'eth0'])).toContain(`inet ${ip1}/24`);

  const started = podman;
  const inPodman = (container: string) => (pingArgs: string[]) =>
    started.run(['exec', container, 'ping', ...pingArgs]);
  expect(await ping(inPodman('c1'), ip2)).toBe(true);
  expect(await ping(inPodman('c2'), ip1)).toBe(true);

  const ext = outsideNetns('podext', 'pdx0');
  expect(await fetchFrom(ext, 'http://192.0.2.1:8083/')).toBe('hello from podman\n');

  await podman.run(['rm', '--force', '--time', '0', 'c1']);
  expect(await addressesOf(host.dir, '10.93.0.')).toEqual([expect.stringContaining(`${ip2}/24`)]);
  await podman.run(['rm', '--force', '--time', '0', 'c2']);
  const after = await daemonInventory(host.dir);
  expect(after.addresses.filter((a) => a.startsWith('10.93.0.') && a.includes(' owner=ep:'))).toEqual([]);
  expect(after.sandboxes).toEqual([]);
  expect(after.rules.filter((r) => r.includes('8083'))).toEqual([]);
  expect(await fetchFrom(ext, 'http://192.0.2.1:8083/')).toBeUndefined();
}, 180_000);
