/**
 * The Docker plugin sockets (src/server/docker) with app.inject(): what
 * dockerd sends (no Content-Type, Go's nulls) and what it must never get
 * past — malformed and oversized bodies, unknown ids, bad CIDRs,
 * overlapping pools — each a clear {"Err"} and nothing changed. A real
 * Controller over the in-memory store and the real IPAM; the network
 * driver is a recording stand-in (the kernel side is the privileged tests').
 */
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { Controller } from '../../../src/controller/controller.js';
import { State } from '../../../src/controller/state.js';
import { RecordingDriver } from '../../../src/drivers/testing/recording.js';
import { KvIpamDriver } from '../../../src/ipam/driver.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { createAnonymousNetns } from '../../../src/kernel/index.js';
import type { KvStore } from '../../../src/kv/index.js';
import { createMemoryStore } from '../../../src/kv/testing/memory.js';
import { buildDockerPluginServer, DOCKER_PLUGINS } from '../../../src/server/docker/server.js';

const NET_ID = 'a'.repeat(64);
const EP_ID = 'b'.repeat(64);
const BODY_LIMIT = 4096;

let kv: KvStore;
let driver: RecordingDriver;
let controller: Controller;
let bridge: FastifyInstance;
let ipamApp: FastifyInstance;

function build(store: KvStore) {
  driver = new RecordingDriver();
  controller = new Controller({
    state: new State(store),
    ipam: new KvIpamDriver(new Ipam(store)),
    drivers: [driver],
    storeName: 'memory',
  });
  const [network, ipam] = DOCKER_PLUGINS;
  bridge = buildDockerPluginServer(controller, network!, { logger: false, bodyLimit: BODY_LIMIT });
  ipamApp = buildDockerPluginServer(controller, ipam!, { logger: false, bodyLimit: BODY_LIMIT });
}

beforeEach(async () => {
  kv = createMemoryStore();
  build(kv);
  await Promise.all([bridge.ready(), ipamApp.ready()]);
});

afterEach(async () => {
  await Promise.all([bridge.close(), ipamApp.close()]);
});

/** POST as dockerd's plugin client does: no Content-Type header, the body a JSON string. */
async function call(app: FastifyInstance, url: string, body?: unknown, extra: Partial<InjectOptions> = {}) {
  const res = await app.inject({
    method: 'POST',
    url,
    ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    ...extra,
  });
  return {
    status: res.statusCode,
    body: res.body ? res.json() : undefined,
    type: res.headers['content-type'],
  };
}

/** Everything the store holds, to show a refused call changed nothing. */
async function snapshot() {
  return (await kv.list('')).map((e) => [e.key, JSON.stringify(e.value)]);
}

/** A pool, its gateway and a Docker network on it, as dockerd makes them. */
async function dockerNetwork(subnet = '10.9.0.0/24') {
  const pool = await call(ipamApp, '/IpamDriver.RequestPool', {
    AddressSpace: 'local',
    Pool: subnet,
    Options: null,
    V6: false,
  });
  expect(pool.status).toBe(200);
  const gw = await call(ipamApp, '/IpamDriver.RequestAddress', {
    PoolID: pool.body.PoolID,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  const created = await call(bridge, '/NetworkDriver.CreateNetwork', {
    NetworkID: NET_ID,
    Options: { 'com.docker.network.generic': {}, 'com.docker.network.enable_ipv6': false },
    IPv4Data: [{ AddressSpace: 'local', Pool: subnet, Gateway: gw.body.Address, AuxAddresses: null }],
    IPv6Data: null,
  });
  expect(created).toMatchObject({ status: 200, body: {} });
  return { poolId: pool.body.PoolID as string };
}

describe('Docker plugin sockets: the handshake', () => {
  it('answers Plugin.Activate with no Content-Type and no body, in the plugin content type', async () => {
    expect(await call(bridge, '/Plugin.Activate')).toEqual({
      status: 200,
      body: { Implements: ['NetworkDriver'] },
      type: 'application/vnd.docker.plugins.v1.2+json',
    });
    expect((await call(ipamApp, '/Plugin.Activate')).body).toEqual({ Implements: ['IpamDriver'] });
    expect((await call(bridge, '/NetworkDriver.GetCapabilities')).body).toEqual({
      Scope: 'local',
      ConnectivityScope: 'local',
    });
    expect((await call(ipamApp, '/IpamDriver.GetDefaultAddressSpaces')).body).toEqual({
      LocalDefaultAddressSpace: 'local',
      GlobalDefaultAddressSpace: 'global',
    });
  });

  it('answers the start-up calls while the store is down (dockerd waits on them)', async () => {
    const down = new Proxy(kv, {
      get(target, prop, receiver) {
        if (['get', 'list', 'put', 'txn', 'cas', 'delete'].includes(String(prop)))
          return () => Promise.reject(new Error('store unreachable'));
        return Reflect.get(target, prop, receiver);
      },
    });
    await Promise.all([bridge.close(), ipamApp.close()]);
    build(down);
    expect((await call(bridge, '/Plugin.Activate')).status).toBe(200);
    expect((await call(bridge, '/NetworkDriver.GetCapabilities')).status).toBe(200);
    expect((await call(ipamApp, '/Plugin.Activate')).status).toBe(200);
    expect((await call(ipamApp, '/IpamDriver.GetCapabilities')).body).toEqual({
      RequiresMACAddress: false,
      RequiresRequestReplay: false,
    });
    expect((await call(ipamApp, '/IpamDriver.GetDefaultAddressSpaces')).status).toBe(200);
  });

  it('answers an unknown call with 404 and {"Err"} (dockerd reads 404 as "not implemented")', async () => {
    const res = await call(bridge, '/NetworkDriver.Teleport', {});
    expect(res.status).toBe(404);
    expect(res.body.Err).toMatch(/Teleport/);
  });
});

describe('Docker plugin sockets: bad input changes nothing', () => {
  it('refuses a malformed JSON body', async () => {
    const before = await snapshot();
    for (const [app, url] of [
      [bridge, '/NetworkDriver.CreateNetwork'],
      [ipamApp, '/IpamDriver.RequestPool'],
    ] as const) {
      const res = await call(app, url, '{"NetworkID": "aaa",');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ Err: expect.stringMatching(/not valid JSON/) });
    }
    expect(await snapshot()).toEqual(before);
  });

  it('refuses a body over the limit', async () => {
    const res = await call(bridge, '/NetworkDriver.CreateNetwork', {
      NetworkID: NET_ID,
      Options: { 'com.docker.network.generic': { pad: 'x'.repeat(BODY_LIMIT) } },
      IPv4Data: [],
      IPv6Data: [],
    });
    expect(res.status).toBe(500);
    expect(res.body.Err).toMatch(/larger than 4096 bytes/);
    expect(await snapshot()).toEqual([]);
  });

  it('refuses a body of the wrong shape, naming the field', async () => {
    const res = await call(bridge, '/NetworkDriver.CreateNetwork', {
      NetworkID: 'not-an-id',
      IPv4Data: [],
    });
    expect(res.status).toBe(500);
    expect(res.body.Err).toMatch(/NetworkID/);
    const endpoint = await call(bridge, '/NetworkDriver.CreateEndpoint', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      Interface: { Address: '10.9.0.300/24' },
    });
    expect(endpoint.body.Err).toMatch(/Interface\.Address/);
    expect(await snapshot()).toEqual([]);
  });

  it('refuses a bad CIDR and an overlapping subnet in RequestPool', async () => {
    await dockerNetwork('10.9.0.0/24');
    const before = await snapshot();
    const bad = await call(ipamApp, '/IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.9.0.0/33',
    });
    expect(bad.status).toBe(500);
    expect(bad.body.Err).toMatch(/Pool/);
    const overlap = await call(ipamApp, '/IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.9.0.0/16',
      V6: false,
    });
    expect(overlap.body.Err).toMatch(/10\.9\.0\.0\/16 overlaps pool 10\.9\.0\.0\/24/);
    const space = await call(ipamApp, '/IpamDriver.RequestPool', {
      AddressSpace: 'nowhere',
      Pool: '10.8.0.0/24',
    });
    expect(space.body.Err).toMatch(/nowhere/);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses an address outside its pool, one in use, and an unknown pool', async () => {
    const { poolId } = await dockerNetwork();
    const first = await call(ipamApp, '/IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.9.0.50' });
    expect(first.body).toEqual({ Address: '10.9.0.50/24', Data: {} });
    const before = await snapshot();
    const again = await call(ipamApp, '/IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.9.0.50' });
    expect(again.body.Err).toBe(
      'address 10.9.0.50 on subnet 10.9.0.0/24 (held by another container or the gateway) is already in use',
    );
    const outside = await call(ipamApp, '/IpamDriver.RequestAddress', {
      PoolID: poolId,
      Address: '10.7.0.5',
    });
    expect(outside.body.Err).toMatch(/10\.7\.0\.5/);
    const unknown = await call(ipamApp, '/IpamDriver.RequestAddress', { PoolID: 'local/10.99.0.0/24' });
    expect(unknown.body.Err).toMatch(/10\.99\.0\.0\/24/);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses a bad driver option by name, reserving nothing', async () => {
    const res = await call(bridge, '/NetworkDriver.CreateNetwork', {
      NetworkID: NET_ID,
      Options: { 'com.docker.network.generic': { 'com.docker.network.bridge.enable_icc': 'maybe' } },
      IPv4Data: [{ AddressSpace: 'local', Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }],
    });
    expect(res.body.Err).toMatch(/invalid option com\.docker\.network\.bridge\.enable_icc/);
    expect(driver.calls).toEqual([]);
    expect(await snapshot()).toEqual([]);
  });

  it('refuses unknown network and endpoint ids with a not-found Docker can show', async () => {
    const ep = await call(bridge, '/NetworkDriver.CreateEndpoint', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      Interface: { Address: '10.9.0.2/24' },
    });
    expect(ep.status).toBe(500);
    expect(ep.body.Err).toMatch(/aaaaaaaaaaaa.*not/i);
    const join = await call(bridge, '/NetworkDriver.Join', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      SandboxKey: '/var/run/docker/netns/0123456789ab',
    });
    expect(join.body.Err).toMatch(/bbbbbbbbbbbb|not found/i);
    const program = await call(bridge, '/NetworkDriver.ProgramExternalConnectivity', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      Options: null,
    });
    expect(program.body.Err).toMatch(/not found/i);
    expect(await snapshot()).toEqual([]);
    expect(driver.calls).toEqual([]);
  });

  it('treats deletes of what is gone as done (dockerd retries them after a restart)', async () => {
    for (const url of [
      '/NetworkDriver.Leave',
      '/NetworkDriver.DeleteEndpoint',
      '/NetworkDriver.RevokeExternalConnectivity',
    ]) {
      expect(await call(bridge, url, { NetworkID: NET_ID, EndpointID: EP_ID })).toMatchObject({
        status: 200,
        body: {},
      });
    }
    expect(await call(bridge, '/NetworkDriver.DeleteNetwork', { NetworkID: NET_ID })).toMatchObject({
      status: 200,
      body: {},
    });
    expect(await call(ipamApp, '/IpamDriver.ReleasePool', { PoolID: 'local/10.99.0.0/24' })).toMatchObject({
      status: 200,
    });
    expect(
      await call(ipamApp, '/IpamDriver.ReleaseAddress', {
        PoolID: 'local/10.99.0.0/24',
        Address: '10.99.0.9',
      }),
    ).toMatchObject({ status: 200 });
  });
});

describe('Docker plugin sockets: a container through the calls dockerd makes', () => {
  it('creates, joins, publishes, reports, leaves and deletes; then the network and pool go', async () => {
    const { poolId } = await dockerNetwork();
    const addr = await call(ipamApp, '/IpamDriver.RequestAddress', {
      PoolID: poolId,
      Address: '',
      Options: {},
    });
    expect(addr.body.Address).toBe('10.9.0.2/24');
    const created = await call(bridge, '/NetworkDriver.CreateEndpoint', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      Interface: { Address: addr.body.Address, AddressIPv6: '', MacAddress: '' },
      Options: { 'com.docker.network.portmap': null, 'com.docker.network.endpoint.exposedports': null },
    });
    expect(created.body.Interface.MacAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const joined = await call(bridge, '/NetworkDriver.Join', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      SandboxKey: '/var/run/docker/netns/0123456789ab',
      Options: {},
    });
    expect(joined.body).toMatchObject({
      InterfaceName: { SrcName: 'vtest0', DstPrefix: 'eth' },
      Gateway: '10.9.0.1',
    });
    const program = await call(bridge, '/NetworkDriver.ProgramExternalConnectivity', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      Options: {
        'com.docker.network.portmap': [
          { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
        ],
        'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }],
      },
    });
    expect(program).toMatchObject({ status: 200, body: {} });
    const info = await call(bridge, '/NetworkDriver.EndpointOperInfo', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
    });
    expect(info.body.Value['com.docker.network.portmap']).toEqual([
      { Proto: 6, IP: '10.9.0.2', Port: 80, HostIP: '0.0.0.0', HostPort: 8080, HostPortEnd: 8080 },
    ]);
    expect((await controller.listSandboxes()).map((s) => s.name)).toEqual(['docker-0123456789ab']);
    for (const url of [
      '/NetworkDriver.RevokeExternalConnectivity',
      '/NetworkDriver.Leave',
      '/NetworkDriver.DeleteEndpoint',
    ])
      expect((await call(bridge, url, { NetworkID: NET_ID, EndpointID: EP_ID })).status).toBe(200);
    // The sandbox made for the container goes with its last endpoint.
    expect(await controller.listSandboxes()).toEqual([]);
    await call(ipamApp, '/IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.9.0.2' });
    await call(bridge, '/NetworkDriver.DeleteNetwork', { NetworkID: NET_ID });
    await call(ipamApp, '/IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.9.0.1' });
    await call(ipamApp, '/IpamDriver.ReleasePool', { PoolID: poolId });
    // Only the address space's (now empty) pool list stays.
    expect(await snapshot()).toEqual([['netctl/v1/ipam/spaces/local', '{"pools":[]}']]);
    expect(driver.calls).toEqual([
      'createNetwork',
      'createEndpoint',
      'join',
      'program',
      'revoke',
      'leave',
      'leave', // removeEndpoint unplugs whatever is left: leave is idempotent
      'deleteEndpoint',
      'deleteNetwork',
    ]);
  });

  it('deletes a network with endpoints of Docker it no longer has (Docker deletes only empty ones)', async () => {
    const { poolId } = await dockerNetwork();
    await call(bridge, '/NetworkDriver.CreateEndpoint', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      Interface: { Address: '10.9.0.2/24' },
    });
    await call(bridge, '/NetworkDriver.Join', {
      NetworkID: NET_ID,
      EndpointID: EP_ID,
      SandboxKey: '/var/run/docker/netns/0123456789ab',
    });
    expect(await call(bridge, '/NetworkDriver.DeleteNetwork', { NetworkID: NET_ID })).toMatchObject({
      status: 200,
      body: {},
    });
    expect(await controller.state.endpoints()).toEqual([]);
    expect(await controller.listSandboxes()).toEqual([]);
    expect(await controller.state.network(NET_ID)).toBeUndefined();
    // The pool is Docker's to release.
    expect((await controller.ipam.listPools()).map((p) => p.poolId)).toEqual([poolId]);
  });

  it('drops, on Plugin.Activate, what a crashed dockerd left: sandboxes whose netns is gone, endpoints never joined', async () => {
    await dockerNetwork();
    const ids = { neverJoined: 'c'.repeat(64), netnsGone: 'd'.repeat(64), live: 'e'.repeat(64) };
    // A live netns of its own: the daemon's own is refused as a key.
    const live = createAnonymousNetns();
    onTestFinished(() => live.close());
    const keys = { netnsGone: '/nonexistent/netns/0123456789ab', live: live.path };
    for (const [i, id] of Object.values(ids).entries()) {
      await call(bridge, '/NetworkDriver.CreateEndpoint', {
        NetworkID: NET_ID,
        EndpointID: id,
        Interface: { Address: `10.9.0.${i + 2}/24` },
      });
    }
    // A key with no netns mounted at it (what a restarted dockerd leaves of its old sandboxes), and a live one.
    for (const which of ['netnsGone', 'live'] as const) {
      const joined = await call(bridge, '/NetworkDriver.Join', {
        NetworkID: NET_ID,
        EndpointID: ids[which],
        SandboxKey: keys[which],
      });
      expect(joined.body).toMatchObject({ InterfaceName: { SrcName: 'vtest0' } });
    }
    expect((await call(bridge, '/Plugin.Activate')).status).toBe(200);
    // The next call that changes state waits for the sweep.
    await call(bridge, '/NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: 'f'.repeat(64) });
    expect((await controller.state.endpoints()).map((e) => e.id)).toEqual([ids.live]);
    expect((await controller.listSandboxes()).map((s) => s.key)).toEqual([keys.live]);
    // The network stays: Docker still has it.
    expect((await controller.state.network(NET_ID))?.dockerId).toBe(NET_ID);
  });
});
