/**
 * Split brain (issue 11 "Do no harm", (d); finding 6): the daemon runs on
 * Redis and records it (src/kv/daemon-store.ts); it stops. What runs the
 * controller without it — the CLI's in-process fallback, the CNI plugin
 * standalone (node, and the netctl-cni shim that falls back to node) —
 * must use that Redis or refuse, never the embedded store of the state
 * dir: addresses handed out there are ones the shared store never hears
 * of, and gets to hand out again.
 *
 * - Redis up: the CLI's connect and two CNI ADDs get addresses that are in
 *   Redis (records, reservations, owners), the kernel matches, and the
 *   embedded store holds nothing of netctl's.
 * - A different store asked for (`--kv lmdb://...`, NETCTL_KV): refused,
 *   NETCTL_STORE_MISMATCH (CLI exit 4, CNI 100), nothing changed anywhere.
 * - Redis down: the fallbacks fail clearly (CLI exit 5, CNI 11) and
 *   nothing is made, in the kernel or in the embedded store.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNetns } from '../../src/kernel/index.js';
import { recordedDaemonStore } from '../../src/kv/index.js';
import { packageRoot } from '../../src/paths.js';
import { type DurableRedis, startDurableRedis } from '../helpers/redis-durable.js';
import { spawnCollected } from '../helpers/spawned.js';
import { type Audit, audit, dumpStore, withStore } from '../helpers/store-audit.js';
import {
  type CniCall,
  type CniHost,
  type CniOutcome,
  cniHost,
  execPlugin,
  ours,
} from '../privileged/cni/fixture.js';
import { assertBuilt, Daemon, netctl } from '../privileged/controller/daemon-fixture.js';
import { uniqueName } from '../privileged/harness.js';
import { recordFigures } from './figures.js';

const CNI_MAIN = join(packageRoot, 'dist', 'src', 'cni', 'main.js');

let faults = 0;
let leaks = 0;
let doubleGrants = 0;
const found = new Set<string>();
let redis: DurableRedis | undefined;

beforeAll(() => assertBuilt());

afterEach(async () => {
  await redis?.destroy();
  redis = undefined;
});

afterAll(() => recordFigures({ faults, leaks, doubleGrants }));

const config = { cniVersion: '1.0.0', name: 'split', type: 'netctl-cni', network: 'split' };

/** The CNI plugin standalone, as the shim runs it when no daemon answers: `node dist/src/cni/main.js netctl-cni`. */
async function cniNode(host: CniHost, call: CniCall, env: Record<string, string> = {}): Promise<CniOutcome> {
  const r = await spawnCollected(process.execPath, [CNI_MAIN, 'netctl-cni'], {
    env: {
      ...host.env,
      CNI_COMMAND: call.command,
      CNI_PATH: host.cniPath,
      ...(call.containerId ? { CNI_CONTAINERID: call.containerId } : {}),
      ...(call.netns ? { CNI_NETNS: call.netns } : {}),
      ...(call.ifname ? { CNI_IFNAME: call.ifname } : {}),
      ...env,
    },
    input: JSON.stringify(config),
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json, ms: r.ms };
}

/** The addresses a CNI result gives. */
const ipsOf = (r: CniOutcome) => ((r.json?.ips ?? []) as { address: string }[]).map((ip) => ip.address);

/** What the embedded store of the state dir holds of netctl's (nothing when it was never made). */
async function embedded(stateDir: string): Promise<string[]> {
  const file = join(stateDir, 'state.lmdb');
  if (!existsSync(file)) return [];
  return withStore(`lmdb://${file}`, async (kv) => (await dumpStore(kv)).map((e) => e.key));
}

/** The audit of Redis, with what it found counted; the netns the test made are the containers'. */
async function expectNoHarm(url: string, netns: string[], context: string): Promise<Audit> {
  const a = await audit(url, { netns });
  // Each thing found once, however many audits see it again.
  for (const finding of a.leaks) if (!found.has(finding) && found.add(finding)) leaks++;
  for (const finding of a.doubleGrants) if (!found.has(finding) && found.add(finding)) doubleGrants++;
  expect(a.doubleGrants, `${context}: addresses granted twice`).toEqual([]);
  expect(a.leaks, `${context}: left with no owner`).toEqual([]);
  expect(a.missing, `${context}: records without their kernel side`).toEqual([]);
  expect(a.staleHosts, `${context}: /etc/hosts`).toEqual([]);
  return a;
}

const linkNames = () => readdirSync('/sys/class/net').sort();

describe('a daemon on Redis, stopped: the fallbacks use Redis or refuse', () => {
  it('the CLI and the CNI plugin (node and shim) use the recorded Redis; another store is refused; with Redis down they fail clearly', async () => {
    redis = await startDurableRedis();
    const host = cniHost();
    const daemon = await Daemon.start(host.dir, { kv: redis.url });
    for (const args of [
      ['network', 'create', '--subnet', '10.75.0.0/24', 'split'],
      ['sandbox', 'create', 'sb1'],
      ['sandbox', 'create', 'sb2'],
      ['sandbox', 'create', 'sb3'],
    ]) {
      expect((await netctl(host.dir, args)).status, args.join(' ')).toBe(0);
    }
    expect((await daemon.stop()).code).toBe(0);
    expect(recordedDaemonStore({ stateDir: host.stateDir })).toBe(redis.url);

    // Redis up: the CLI with no daemon connects in its own process, on Redis.
    const connect = await netctl(host.dir, ['network', 'connect', 'split', 'sb1']);
    expect({ status: connect.status, stderr: connect.stderr }).toEqual({ status: 0, stderr: '' });
    // The CNI plugin standalone: node itself, and the shim finding no daemon.
    const ns1 = createNetns(uniqueName('sn'));
    const ns2 = createNetns(uniqueName('sn'));
    const netns = [ns1, ns2].map((p) => p.replace('/run/netns/', ''));
    const add1 = await cniNode(host, { command: 'ADD', containerId: 'ctr-1', netns: ns1, ifname: 'eth0' });
    expect({ code: add1.code, stderr: add1.stderr }, add1.stdout).toEqual({ code: 0, stderr: '' });
    const add2 = await execPlugin(
      host,
      ours(host),
      { command: 'ADD', containerId: 'ctr-2', netns: ns2, ifname: 'eth0' },
      config,
    );
    expect({ code: add2.code, stderr: add2.stderr }, add2.stdout).toEqual({ code: 0, stderr: '' });

    const a = await expectNoHarm(redis.url, netns, 'after the fallbacks');
    const sb1 = a.sandboxes.find((s) => s.name === 'sb1');
    const viaCli = a.endpoints.find((e) => e.sandboxId === sb1?.id)?.ipv4;
    const viaCni = [...ipsOf(add1), ...ipsOf(add2)];
    expect(viaCli).toMatch(/^10\.75\.0\.\d+\/24$/);
    expect(viaCni).toHaveLength(2);
    // Each address is in Redis, reserved for the endpoint that holds it, and distinct.
    for (const address of [viaCli, ...viaCni]) {
      const holder = a.endpoints.find((e) => e.ipv4 === address);
      expect(holder, `${address}: an endpoint record in Redis`).toBeDefined();
      expect(a.allocations).toContain(`${address} ep:${holder?.id}`);
    }
    expect(new Set([viaCli, ...viaCni]).size).toBe(3);
    expect(await embedded(host.stateDir), 'the embedded store').toEqual([]);

    // Another store asked for: refused before anything is done.
    const other = join(host.dir, 'other', 'state.lmdb');
    const before = await withStore(redis.url, dumpStore);
    const links = linkNames();
    const mismatch = await netctl(host.dir, [
      '--kv',
      `lmdb://${other}`,
      'network',
      'connect',
      'split',
      'sb2',
    ]);
    faults++;
    expect(mismatch.status, mismatch.stderr).toBe(4);
    expect(mismatch.stderr).toBe(
      `netctl: this host's netctl daemon runs on ${redis.url}, not lmdb://${other}: give the daemon's store (or no --kv), so state is never split\n`,
    );
    const ns3 = createNetns(uniqueName('sn'));
    netns.push(ns3.replace('/run/netns/', ''));
    const cniMismatch = await cniNode(
      host,
      { command: 'ADD', containerId: 'ctr-3', netns: ns3, ifname: 'eth0' },
      { NETCTL_KV: `lmdb://${other}` },
    );
    faults++;
    // docs/cni.md: the exit status is the code, and stderr has nothing to add.
    expect.soft({ code: cniMismatch.code, stderr: cniMismatch.stderr }, cniMismatch.stdout).toEqual({
      code: 100,
      stderr: '',
    });
    expect(cniMismatch.json?.msg).toMatch(/^this host's netctl daemon runs on redis:/);
    expect(await withStore(redis.url, dumpStore), 'Redis after the refusals').toEqual(before);
    expect(existsSync(other), 'the other store is not made').toBe(false);
    expect(linkNames(), 'no link made').toEqual(links);

    // Redis down: the fallbacks fail clearly, and do not go to the embedded store.
    await redis.kill9();
    for (const [what, run] of [
      ['the CLI', () => netctl(host.dir, ['network', 'connect', 'split', 'sb3'])],
      ['the CLI, another sandbox', () => netctl(host.dir, ['sandbox', 'create', 'sb4'])],
    ] as const) {
      const r = await run();
      faults++;
      expect(r.status, `${what}: ${r.stderr}`).toBe(5);
      expect(r.stderr, what).toMatch(
        new RegExp(
          `^netctl: redis store unavailable: cannot connect to redis 127.0.0.1:${redis.port} db 0: .+\\n$`,
        ),
      );
    }
    for (const [what, run] of [
      ['node', () => cniNode(host, { command: 'ADD', containerId: 'ctr-3', netns: ns3, ifname: 'eth0' })],
      [
        'the shim',
        () =>
          execPlugin(
            host,
            ours(host),
            { command: 'ADD', containerId: 'ctr-3', netns: ns3, ifname: 'eth0' },
            config,
          ),
      ],
    ] as const) {
      const r = await run();
      faults++;
      expect.soft({ code: r.code, stderr: r.stderr }, `CNI ADD by ${what}: ${r.stdout}`).toEqual({
        code: 11,
        stderr: '',
      });
      expect(r.json?.msg, what).toMatch(/redis store unavailable/);
    }
    expect(linkNames(), 'no link made with Redis down').toEqual(links);
    expect(await embedded(host.stateDir), 'the embedded store with Redis down').toEqual([]);

    // Redis back (nothing acknowledged lost): the daemon again, and everything is taken apart.
    await redis.start();
    expect(await withStore(redis.url, dumpStore), 'Redis after its restart').toEqual(before);
    const again = await Daemon.start(host.dir, { kv: redis.url });
    for (const [id, ns] of [
      ['ctr-1', ns1],
      ['ctr-2', ns2],
    ] as const) {
      const del = await execPlugin(
        host,
        ours(host),
        { command: 'DEL', containerId: id, netns: ns, ifname: 'eth0' },
        config,
      );
      expect({ code: del.code, stdout: del.stdout }, `DEL ${id}`).toEqual({ code: 0, stdout: '' });
    }
    for (const args of [
      ['network', 'disconnect', 'split', 'sb1'],
      ['sandbox', 'rm', 'sb1', 'sb2', 'sb3'],
      ['network', 'rm', 'split'],
    ]) {
      const r = await netctl(host.dir, args);
      expect({ status: r.status, stderr: r.stderr }, args.join(' ')).toEqual({ status: 0, stderr: '' });
    }
    const end = await expectNoHarm(redis.url, netns, 'at the end');
    expect([end.networks, end.endpoints, end.sandboxes, end.allocations]).toEqual([[], [], [], []]);
    expect(await embedded(host.stateDir), 'the embedded store at the end').toEqual([]);
    await again.stop();
  }, 120_000);
});
