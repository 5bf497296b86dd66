/**
 * Two hosts on one shared store, in process: each a real Controller on its
 * own host view of one memory store (kv/scoped.ts), with an overlay-like
 * driver whose "kernel" is a map. Checks what the control plane promises
 * (docs/overlay.md): host-local records stay apart, global networks and
 * VNIs are shared and taken once, a join on one host is programmed on the
 * other, a leave and an expired host are unprogrammed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from '../../../src/controller/controller.js';
import { State } from '../../../src/controller/state.js';
import type { Capability, Driver, PeerProgramming, ProgrammedPeer } from '../../../src/core/driver.js';
import type { NetworkInfo } from '../../../src/core/info.js';
import type { Network, Peer } from '../../../src/core/model.js';
import { RecordingDriver } from '../../../src/drivers/testing/recording.js';
import { KvIpamDriver } from '../../../src/ipam/driver.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { createAnonymousNetns, type Netns } from '../../../src/kernel/index.js';
import { HostScopedStore, KvConflictError, openStore } from '../../../src/kv/index.js';
import { MemoryState, MemoryStore } from '../../../src/kv/testing/memory.js';

/** An overlay driver whose kernel is a map: devices exist while a local endpoint is joined. */
class MapOverlay implements Driver, PeerProgramming {
  readonly type = 'overlay';
  /** network id → MAC → programmed peer, for networks with devices here. */
  readonly kernel = new Map<string, Map<string, ProgrammedPeer>>();
  private readonly joined = new Map<string, Set<string>>();

  capability(): Capability {
    return { dataScope: 'global', connectivityScope: 'global' };
  }
  pinnedVni(network: Pick<Network, 'options'>): number | undefined {
    return network.options.vni ? Number(network.options.vni) : undefined;
  }
  async createNetwork(_info: NetworkInfo): Promise<void> {}
  async deleteNetwork(network: Network): Promise<void> {
    this.kernel.delete(network.id);
  }
  async createEndpoint(): Promise<void> {}
  async deleteEndpoint(): Promise<void> {}
  async join(network: Network, endpoint: { id: string }): Promise<void> {
    if (!this.kernel.has(network.id)) this.kernel.set(network.id, new Map());
    const set = this.joined.get(network.id) ?? new Set();
    set.add(endpoint.id);
    this.joined.set(network.id, set);
  }
  async leave(network: Network, endpoint: { id: string }): Promise<void> {
    const set = this.joined.get(network.id);
    set?.delete(endpoint.id);
    if (!set?.size) this.kernel.delete(network.id);
  }
  async addPeer(network: Network, peer: Peer): Promise<boolean> {
    const table = this.kernel.get(network.id);
    if (!table) return false;
    table.set(peer.mac, {
      mac: peer.mac,
      vtep: peer.vtep,
      ips: [peer.ipv4, peer.ipv6].filter((x) => x !== undefined),
    });
    return true;
  }
  async removePeer(network: Network, peer: Pick<Peer, 'mac'>): Promise<void> {
    this.kernel.get(network.id)?.delete(peer.mac);
  }
  async programmedPeers(network: Network): Promise<ProgrammedPeer[] | undefined> {
    const table = this.kernel.get(network.id);
    return table ? [...table.values()] : undefined;
  }
  /** Remote MACs programmed for a network here, sorted. */
  macs(networkId: string): string[] {
    return [...(this.kernel.get(networkId)?.keys() ?? [])].sort();
  }
}

interface Host {
  api: Controller;
  overlay: MapOverlay;
  kv: HostScopedStore;
}

const open: (() => Promise<void>)[] = [];
const namespaces: Netns[] = [];

afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
  for (const ns of namespaces.splice(0)) ns.close();
});

function host(
  memory: MemoryState,
  id: string,
  address: string,
  ttlMs = 60_000,
  reapAfterMs = 3_600_000,
): Host {
  const kv = new HostScopedStore(new MemoryStore(memory), id);
  const overlay = new MapOverlay();
  const api = new Controller({
    state: new State(kv, { hostId: id, address }),
    ipam: new KvIpamDriver(new Ipam(kv)),
    drivers: [new RecordingDriver({}), overlay],
    storeName: 'memory',
    cluster: {
      hostId: id,
      address,
      ttlMs,
      renewMs: Math.floor(ttlMs / 3),
      resyncMs: Math.min(100, reapAfterMs),
      reapAfterMs,
    },
  });
  open.push(() => api.close());
  return { api, overlay, kv };
}

async function sandbox(h: Host, name: string): Promise<string> {
  const ns = createAnonymousNetns();
  namespaces.push(ns);
  await h.api.createSandbox({ name, key: ns.path });
  return name;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Two started hosts on one store, overlay network web on h1, a sandbox on
 * each (s1, s2) connected to it: h1's then h2's.
 */
async function twoHostsOnWeb(options: { ttl1: number; ttl2: number; reapAfter2?: number }) {
  const memory = new MemoryState();
  const h1 = host(memory, 'h1', '192.0.2.1', options.ttl1);
  const h2 = host(memory, 'h2', '192.0.2.2', options.ttl2, options.reapAfter2);
  await h1.api.startCluster();
  await h2.api.startCluster();
  const web = await h1.api.createNetwork({
    name: 'web',
    driver: 'overlay',
    ipam: { config: [{ subnet: '10.50.0.0/24' }] },
  });
  await sandbox(h1, 's1');
  await sandbox(h2, 's2');
  const e1 = await h1.api.connect({ network: 'web', sandbox: 's1' });
  const e2 = await h2.api.connect({ network: 'web', sandbox: 's2' });
  return { memory, h1, h2, web, e1, e2 };
}

describe('a shared store, seen by two hosts', () => {
  it('keeps each host’s own records apart and shares the cluster’s', async () => {
    const memory = new MemoryState();
    const a = new HostScopedStore(new MemoryStore(memory), 'a');
    const b = new HostScopedStore(new MemoryStore(memory), 'b');
    await a.put('netctl/v1/networks/x', 'a-only');
    await a.put('netctl/v1/cluster/vni/4096', 'shared');
    expect(await b.get('netctl/v1/networks/x')).toBeUndefined();
    expect((await b.get('netctl/v1/cluster/vni/4096'))?.value).toBe('shared');
    expect((await a.list('netctl/v1/networks/')).map((e) => e.key)).toEqual(['netctl/v1/networks/x']);
    // A conflict names the key as its caller wrote it.
    const err = await a.cas('netctl/v1/networks/x', 0, 'again').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvConflictError);
    expect((err as KvConflictError).key).toBe('netctl/v1/networks/x');
    const watch = await b.watch('netctl/v1/networks/');
    await b.put('netctl/v1/networks/y', 'b-only');
    await a.put('netctl/v1/networks/z', 'a-again');
    const first = await watch.next();
    watch.close();
    expect(first.value).toMatchObject({ type: 'put', key: 'netctl/v1/networks/y' });
  });
});

describe('overlay control plane', () => {
  it('shares global networks and their VNIs; local networks of one name live on each host', async () => {
    const memory = new MemoryState();
    const [h1, h2] = [host(memory, 'h1', '192.0.2.1'), host(memory, 'h2', '192.0.2.2')];
    const web = await h1.api.createNetwork({
      name: 'web',
      driver: 'overlay',
      ipam: { config: [{ subnet: '10.50.0.0/24' }] },
    });
    const api = await h2.api.createNetwork({
      name: 'api',
      driver: 'overlay',
      ipam: { config: [{ subnet: '10.51.0.0/24' }] },
    });
    expect([web.driverData.vni, api.driverData.vni]).toEqual(['4096', '4097']);
    expect((await h2.api.listNetworks()).map((n) => n.name)).toContain('web');
    await expect(
      h2.api.createNetwork({
        name: 'web',
        driver: 'overlay',
        ipam: { config: [{ subnet: '10.52.0.0/24' }] },
      }),
    ).rejects.toMatchObject({ code: 'NETCTL_NETWORK_EXISTS' });
    await expect(
      h2.api.createNetwork({ name: 'pinned', driver: 'overlay', options: { vni: '4096' } }),
    ).rejects.toMatchObject({ code: 'NETCTL_VNI_IN_USE' });
    // A global pool is one address space for the cluster.
    await expect(
      h2.api.createNetwork({
        name: 'again',
        driver: 'overlay',
        ipam: { config: [{ subnet: '10.50.0.0/25' }] },
      }),
    ).rejects.toThrow(/overlaps/);
    // Bridge networks are each host's own: the same name and subnet on both.
    await h1.api.createNetwork({
      name: 'local',
      driver: 'bridge',
      ipam: { config: [{ subnet: '10.60.0.0/24' }] },
    });
    await h2.api.createNetwork({
      name: 'local',
      driver: 'bridge',
      ipam: { config: [{ subnet: '10.60.0.0/24' }] },
    });
    expect((await h1.api.listNetworks()).filter((n) => n.name === 'local')).toHaveLength(1);
  });

  it('programs a join on the other host, removes a leave, and drops the peers of an expired host', async () => {
    const { h1, h2, web, e1, e2 } = await twoHostsOnWeb({ ttl1: 400, ttl2: 60_000 });
    // h2 joined after h1: its first join programs h1's peer before it returns.
    expect(h2.overlay.macs(web.id)).toEqual([e1.mac]);
    await until('h1 has h2’s peer', () => h1.overlay.macs(web.id).includes(e2.mac));
    expect(h1.overlay.kernel.get(web.id)?.get(e2.mac)).toMatchObject({
      vtep: '192.0.2.2',
      ips: ['10.50.0.3'],
    });
    expect((await h2.api.health()).cluster).toMatchObject({ served: 1, programmed: 1 });
    // Each host lists its own endpoints, and every host of the network as a peer.
    const details = await h2.api.inspectNetwork('web');
    expect(details.endpoints.map((e) => e.id)).toEqual([e2.id]);
    expect(details.peers?.map((p) => [p.ip, p.endpoints])).toEqual([
      ['192.0.2.1', 1],
      ['192.0.2.2', 1],
    ]);
    expect((await h2.api.listHosts()).map((x) => [x.id, x.state, x.self])).toEqual([
      ['h1', 'up', false],
      ['h2', 'up', true],
    ]);

    // In use by both hosts: refused, naming this host's sandbox and the other host's endpoint; prune leaves it.
    const inUse = await h2.api.deleteNetwork('web').catch((err: Error) => err.message);
    expect(inUse).toMatch(/on another host/);
    expect(inUse).toMatch(/\bs2\b/);
    await h2.api.disconnect('web', 's2');
    expect(await h2.api.pruneNetworks()).toEqual([]);
    await until('h1 has dropped h2’s peer', () => !h1.overlay.macs(web.id).includes(e2.mac));
    expect(h2.overlay.kernel.has(web.id)).toBe(false); // its last endpoint took the devices

    await h2.api.connect({ network: 'web', sandbox: 's2' });
    expect(h2.overlay.macs(web.id)).toEqual([e1.mac]);
    // h1 stops renewing its lease: within a TTL h2 unprograms its peers, and sees it down.
    await h1.api.close();
    await until('h2 has dropped the expired host’s peers', () => h2.overlay.macs(web.id).length === 0, 3000);
    expect((await h2.api.listHosts()).find((x) => x.id === 'h1')).toMatchObject({ state: 'down', peers: 1 });
  });

  it('repairs drift: an entry lost from the kernel comes back, a stale one goes, each counted', async () => {
    const { h2, web, e1 } = await twoHostsOnWeb({ ttl1: 60_000, ttl2: 60_000 });
    const table = h2.overlay.kernel.get(web.id);
    table?.delete(e1.mac); // lost (a hand-made `bridge fdb del`)
    table?.set('02:00:00:00:00:99', { mac: '02:00:00:00:00:99', vtep: '192.0.2.9', ips: ['10.50.0.99'] });
    await until('the periodic diff has repaired both', () => {
      const macs = h2.overlay.macs(web.id);
      return macs.includes(e1.mac) && !macs.includes('02:00:00:00:00:99');
    });
    expect((await h2.api.health()).cluster?.repairs).toBeGreaterThanOrEqual(2);
  });

  it('keeps the peers of live hosts through a store outage longer than their lease', async () => {
    const { memory, h2, web, e1 } = await twoHostsOnWeb({ ttl1: 300, ttl2: 300 });
    expect(h2.overlay.macs(web.id)).toEqual([e1.mac]);
    // No host can renew for three leases (the store away for them): every
    // host record expires meanwhile, and the expiries are heard.
    memory.refuseTxn = (ops) => ops.some((op) => op.key.startsWith('netctl/v1/cluster/hosts/'));
    const lost: string[] = [];
    const watch = setInterval(() => {
      if (!h2.overlay.macs(web.id).includes(e1.mac)) lost.push(new Date().toISOString());
    }, 5);
    try {
      await new Promise((r) => setTimeout(r, 900));
      memory.refuseTxn = undefined;
      // Both renew within a period (100 ms); the grace lasts a lease after that.
      await new Promise((r) => setTimeout(r, 800));
    } finally {
      clearInterval(watch);
    }
    expect(lost).toEqual([]);
    expect((await h2.api.listHosts()).map((x) => x.state)).toEqual(['up', 'up']);
  });

  it('releases the records and addresses of a host gone longer than reapAfter', async () => {
    const { h1, h2, e1 } = await twoHostsOnWeb({ ttl1: 300, ttl2: 300, reapAfter2: 400 });
    const global = h2.kv;
    const peerKeys = async () => (await global.list('netctl/v1/cluster/peers/')).length;
    const addressOf = async (ip: string) =>
      global.get(`netctl/v1/cluster/ipam/addrs/global/10.50.0.0_24/${ip.split('/')[0]}`);
    expect(await peerKeys()).toBe(2);
    expect(await addressOf(e1.ipv4!)).toBeDefined();
    await h1.api.close(); // gone for good: its lease expires, then the reap
    await until('h1’s records are released', async () => (await peerKeys()) === 1, 3000);
    expect(await addressOf(e1.ipv4!)).toBeUndefined();
    expect((await global.list('netctl/v1/cluster/members/')).map((e) => e.value)).toEqual([
      expect.not.stringContaining(e1.id),
    ]);
    expect((await h2.api.health()).cluster?.reaped).toBe(1);
    // The network is now free to go once h2's own endpoint leaves.
    await h2.api.disconnect('web', 's2');
    await h2.api.deleteNetwork('web');
  });

  it('refuses an overlay network on the embedded store, naming --kv', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-overlay-lmdb-'));
    const kv = await openStore(undefined, { stateDir: dir });
    const api = new Controller({
      state: new State(kv),
      ipam: new KvIpamDriver(new Ipam(kv)),
      drivers: [new MapOverlay()],
      storeName: 'lmdb (embedded default)',
    });
    open.push(async () => {
      await api.close();
      await kv.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const refused = api.createNetwork({
      name: 'web',
      driver: 'overlay',
      ipam: { config: [{ subnet: '10.50.0.0/24' }] },
    });
    await expect(refused).rejects.toMatchObject({ code: 'NETCTL_SHARED_STORE_REQUIRED' });
    await expect(refused).rejects.toThrow(/--kv redis:\/\//);
    expect(await api.listNetworks()).toEqual([]);
  });

  it('refuses a global network where no daemon serves it', async () => {
    const memory = new MemoryState();
    const kv = new HostScopedStore(new MemoryStore(memory), 'solo');
    const api = new Controller({
      state: new State(kv),
      ipam: new KvIpamDriver(new Ipam(kv)),
      drivers: [new MapOverlay()],
      storeName: 'memory',
    });
    open.push(() => api.close());
    await api.createNetwork({
      name: 'web',
      driver: 'overlay',
      ipam: { config: [{ subnet: '10.50.0.0/24' }] },
    });
    const ns = createAnonymousNetns();
    namespaces.push(ns);
    await api.createSandbox({ name: 's', key: ns.path });
    await expect(api.connect({ network: 'web', sandbox: 's' })).rejects.toMatchObject({
      code: 'NETCTL_SHARED_STORE_REQUIRED',
    });
  });
});

describe('Docker on an overlay network, adopted by each host’s dockerd', () => {
  /** What a host's dockerd does for `docker network create -d netctl-overlay --ipam-opt netctl.name=web -o netctl.name=web`, then two containers' addresses. */
  async function adoptWeb(h: Host, dockerId: string) {
    const { dockerIpam, docker } = h.api;
    // Docker asks in its local space: every netctl driver is local-scope to Docker.
    const pool = await dockerIpam.requestPool({ addressSpace: 'local', v6: false, shareWith: 'web' });
    const gateway = await dockerIpam.requestAddress(pool.poolId, { gateway: true });
    await docker.createNetwork({
      dockerId,
      driver: 'overlay',
      name: 'web',
      enableIPv6: false,
      internal: false,
      options: {},
      pools: [{ addressSpace: 'local', pool: pool.pool, gateway, auxAddresses: {} }],
    });
    const addresses = [
      await dockerIpam.requestAddress(pool.poolId, { gateway: false }),
      await dockerIpam.requestAddress(pool.poolId, { gateway: false }),
    ];
    return { poolId: pool.poolId, gateway, addresses };
  }

  it('keeps each host’s Docker id and addresses its own, and lets one host’s Docker go alone', async () => {
    const memory = new MemoryState();
    const [h1, h2] = [host(memory, 'h1', '192.0.2.1'), host(memory, 'h2', '192.0.2.2')];
    const web = await h1.api.createNetwork({
      name: 'web',
      driver: 'overlay',
      ipam: { config: [{ subnet: '10.50.0.0/24' }] },
    });
    const [d1, d2] = ['a'.repeat(64), 'b'.repeat(64)];
    const one = await adoptWeb(h1, d1);
    const two = await adoptWeb(h2, d2);
    expect(one.poolId).toBe('global/10.50.0.0/24');
    expect(two.gateway).toBe('10.50.0.1/24');
    expect(new Set([...one.addresses, ...two.addresses]).size).toBe(4);
    // Each host's view has its own Docker id; the shared record none.
    expect((await h1.api.inspectNetwork('web')).network.dockerId).toBe(d1);
    expect((await h2.api.inspectNetwork('web')).network.dockerId).toBe(d2);
    expect((await h2.api.listNetworks()).find((n) => n.id === web.id)?.dockerId).toBe(d2);
    const record = await new MemoryStore(memory).get(`netctl/v1/cluster/networks/${web.id}`);
    expect(record?.value).not.toHaveProperty('dockerId');
    // Adopted under one Docker id per host: a second one on h1 is refused.
    await expect(adoptWeb(h1, 'c'.repeat(64))).rejects.toMatchObject({ code: 'NETCTL_NOT_ADOPTABLE' });
    // netctl leaves it to Docker, on the adopting host and on any other.
    for (const h of [h1, h2])
      await expect(h.api.deleteNetwork('web')).rejects.toMatchObject({ code: 'NETCTL_DOCKER_NETWORK' });

    // h2's Docker lets go: its addresses and adoption only.
    for (const a of two.addresses) await h2.api.dockerIpam.releaseAddress(two.poolId, a);
    await h2.api.dockerIpam.releaseAddress(two.poolId, two.gateway); // the network's: kept
    await h2.api.dockerIpam.releasePool(two.poolId);
    await h2.api.docker.deleteNetwork(d2);
    expect((await h2.api.inspectNetwork('web')).network.dockerId).toBeUndefined();
    expect((await h1.api.inspectNetwork('web')).network.dockerId).toBe(d1);
    // h1's Docker still holds its two; h2's Docker asks again and gets neither of them.
    const again = await adoptWeb(h2, d2);
    expect(again.addresses.filter((a) => one.addresses.includes(a))).toEqual([]);
    // h2's ReleasePool gives back h2's addresses only.
    await h2.api.dockerIpam.releasePool(again.poolId);
    const reservations = await new KvIpamDriver(new Ipam(h1.kv)).listReservations(one.poolId);
    expect(reservations.map((r) => r.address).sort()).toEqual([...one.addresses, '10.50.0.1/24'].sort());
  });

  it('releases the adoption and Docker addresses of a host gone longer than reapAfter', async () => {
    const memory = new MemoryState();
    const h1 = host(memory, 'h1', '192.0.2.1', 300);
    const h2 = host(memory, 'h2', '192.0.2.2', 300, 400);
    await h1.api.startCluster();
    await h2.api.startCluster();
    await h1.api.createNetwork({
      name: 'web',
      driver: 'overlay',
      ipam: { config: [{ subnet: '10.50.0.0/24' }] },
    });
    const one = await adoptWeb(h1, 'a'.repeat(64));
    const two = await adoptWeb(h2, 'b'.repeat(64));
    const ipam = new KvIpamDriver(new Ipam(h2.kv));
    const held = async () => (await ipam.listReservations(one.poolId)).map((r) => r.address).sort();
    await h1.api.close(); // gone for good: its lease expires, then the reap
    await until('h1’s Docker is released', async () => (await held()).length === 3, 3000);
    expect(await held()).toEqual([...two.addresses, '10.50.0.1/24'].sort());
    // Only h2's Docker has the network now.
    expect((await h2.kv.list('netctl/v1/cluster/docker/')).map((e) => e.key.split('/').pop())).toEqual([
      'h2',
    ]);
  });

  it('refuses an overlay Docker would make itself', async () => {
    const memory = new MemoryState();
    const h1 = host(memory, 'h1', '192.0.2.1');
    await expect(
      h1.api.docker.createNetwork({
        dockerId: 'd'.repeat(64),
        driver: 'overlay',
        enableIPv6: false,
        internal: false,
        options: {},
        pools: [{ addressSpace: 'local', pool: '10.70.0.0/24', gateway: '10.70.0.1/24', auxAddresses: {} }],
      }),
    ).rejects.toThrow(/adopted by each host's Docker/);
    expect(await h1.api.listNetworks()).toEqual([]);
  });
});
