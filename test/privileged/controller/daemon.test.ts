/**
 * The real daemon's life: SIGTERM stops it cleanly and leaves the networks
 * working without it; a restart picks them up; a kill -9 while idle leaves
 * nothing to repair; and `netctl gc` against a daemon busy connecting and
 * disconnecting never sweeps what an operation in flight is making.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NetctlApi } from '../../../src/controller/api.js';
import { EMPTY } from '../../helpers/inventory.js';
import { ping } from '../../helpers/ping.js';
import {
  assertBuilt,
  Daemon,
  daemonInventory,
  expectMatchesRecords,
  netctl,
  testDir,
  withLocal,
} from './daemon-fixture.js';

beforeAll(assertBuilt);

async function setup(api: NetctlApi): Promise<void> {
  await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.55.0.0/24' }] } });
  await api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.56.0.0/24' }] } });
  await api.createSandbox({ name: 's1' });
  await api.createSandbox({ name: 's2' });
  await api.connect({
    network: 'web',
    sandbox: 's1',
    ipv4: '10.55.0.11',
    portMappings: [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }],
  });
  await api.connect({ network: 'web', sandbox: 's2', ipv4: '10.55.0.12' });
  await api.connect({ network: 'db', sandbox: 's2', ipv4: '10.56.0.12' });
}

async function removeAll(api: NetctlApi): Promise<void> {
  for (const s of await api.listSandboxes()) await api.deleteSandbox(s.id);
  for (const n of await api.listNetworks()) await api.deleteNetwork(n.id);
}

describe('netctl daemon', () => {
  it('SIGTERM: exits 0 promptly, removes its socket, leaves the networks working; a restart picks them up', async () => {
    const dir = testDir();
    let daemon = await Daemon.start(dir);
    await setup(daemon.api);
    const networks = await daemon.api.listNetworks();
    const before = await daemonInventory(dir);

    const t0 = performance.now();
    expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(existsSync(join(dir, 'api.sock'))).toBe(false);
    expect(await daemonInventory(dir)).toEqual(before);
    expect(await ping('/run/netns/netctl-s1', '10.55.0.12')).toBe(true);

    daemon = await Daemon.start(dir);
    expect(daemon.reconcileActions()).toEqual([]);
    expect(await daemonInventory(dir)).toEqual(before);
    const ls = await netctl(dir, ['network', 'ls', '--format', 'json']);
    expect(ls.status).toBe(0);
    expect((JSON.parse(ls.stdout) as { id: string; name: string }[]).map((n) => [n.name, n.id])).toEqual(
      networks.map((n) => [n.name, n.id]),
    );
    await daemon.api.connect({ network: 'db', sandbox: 's1', ipv4: '10.56.0.11' });
    expect(await ping('/run/netns/netctl-s1', '10.56.0.12')).toBe(true);
    await daemon.api.disconnect('web', 's2');
    await expectMatchesRecords(dir);
    await removeAll(daemon.api);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('kill -9 while idle: the restart (over the stale socket file) finds nothing to repair', async () => {
    const dir = testDir();
    let daemon = await Daemon.start(dir);
    await setup(daemon.api);
    const before = await daemonInventory(dir);
    expect(await daemon.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(existsSync(join(dir, 'api.sock'))).toBe(true);

    daemon = await Daemon.start(dir);
    expect(daemon.reconcileActions()).toEqual([]);
    expect(await daemonInventory(dir)).toEqual(before);
    expect(await ping('/run/netns/netctl-s1', '10.55.0.12')).toBe(true);
    await removeAll(daemon.api);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });

  it('gc while the daemon connects and disconnects never frees what an operation in flight holds', async () => {
    const dir = testDir();
    await withLocal(dir, async (api) => {
      await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.55.0.0/24' }] } });
      for (let i = 0; i < 8; i++) await api.createSandbox({ name: `c${i}` });
    });
    const daemon = await Daemon.start(dir);
    const { api } = daemon;
    // gc first, the operations a few ms into it: they start while it is
    // listing what exists and reading what owns it.
    for (const [i, delay] of [0, 2, 5, 10, 15, 20, 30, 40].entries()) {
      const late = <T>(fn: () => Promise<T>) => new Promise<T>((r) => setTimeout(() => r(fn()), delay));
      await Promise.all([
        api.gc({ dryRun: false }),
        late(() =>
          api.connect({
            network: 'web',
            sandbox: `c${i}`,
            portMappings: [{ proto: 'tcp', hostPort: 9000 + i, containerPort: 80 }],
          }),
        ),
        i > 0 ? late(() => api.disconnect('web', `c${i - 1}`)) : undefined,
      ]);
      await expectMatchesRecords(dir);
    }
    expect((await api.gc({ dryRun: true })).actions).toEqual([]);
    await removeAll(api);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect(await daemonInventory(dir)).toEqual(EMPTY);
  });
});
