/**
 * The controller's undo paths and unknown outcomes, on the memory store
 * with a recording driver (no kernel): a failure before the commit undoes
 * everything the operation took (addresses, claims, intent); a commit whose
 * reply is lost is re-read and kept, never undone; an outcome that cannot
 * be read yet is left to reconcile, which settles it once the store answers.
 */
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { Controller } from '../../../src/controller/controller.js';
import { State } from '../../../src/controller/state.js';
import { RecordingDriver } from '../../../src/drivers/testing/recording.js';
import { Errors } from '../../../src/errors.js';
import { KvIpamDriver } from '../../../src/ipam/driver.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { createAnonymousNetns } from '../../../src/kernel/index.js';
import type { KvOp } from '../../../src/kv/index.js';
import { MemoryState, MemoryStore } from '../../../src/kv/testing/memory.js';

let memory: MemoryState;
let driver: RecordingDriver;
let api: Controller;
let ipam: Ipam;

beforeEach(async () => {
  memory = new MemoryState();
  const kv = new MemoryStore(memory);
  driver = new RecordingDriver();
  ipam = new Ipam(kv);
  api = new Controller({
    state: new State(kv),
    ipam: new KvIpamDriver(ipam),
    drivers: [driver],
    storeName: 'memory',
  });
  await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
  const netns = createAnonymousNetns();
  onTestFinished(() => netns.close());
  await api.createSandbox({ name: 's1', key: netns.path });
});

afterEach(() => api.close());

/** What the store holds besides the network and sandbox made in beforeEach. */
async function held() {
  const kv = api.state.kv;
  const keys = (await kv.list('netctl/v1/')).map((e) => e.key);
  return {
    intents: keys.filter((k) => k.includes('/intents/')),
    claims: keys.filter((k) => k.includes('/claims/') || k.includes('/members/')),
    endpoints: keys.filter((k) => k.includes('/endpoints/')),
    addresses: (await ipam.listAllocations()).map((a) => `${a.cidr} ${a.owner.slice(0, 3)}`).sort(),
  };
}

const GATEWAY_ONLY = { intents: [], claims: [], endpoints: [], addresses: ['10.1.0.1/24 net'] };
const isEndpointCommit = (ops: readonly KvOp[]) =>
  ops.some((op) => op.type === 'put' && op.key.startsWith('netctl/v1/endpoints/'));
const isEndpointDelete = (ops: readonly KvOp[]) =>
  ops.some((op) => op.type === 'delete' && op.key.startsWith('netctl/v1/endpoints/'));

describe('undo before the commit', () => {
  it('a join that fails gives back the address, the claims and the intent, and the port', async () => {
    driver.failNext.set('join', new Error('injected join failure'));
    const publish = [{ proto: 'tcp' as const, hostPort: 8080, containerPort: 80 }];
    await expect(api.connect({ network: 'web', sandbox: 's1', portMappings: publish })).rejects.toThrow(
      'injected join failure',
    );
    expect(await held()).toEqual(GATEWAY_ONLY);
    expect(driver.calls.slice(-4)).toEqual(['join', 'revoke', 'leave', 'deleteEndpoint']);
    // Everything it held is free again: the port can be had (the IPAM moves on to the next address).
    const ep = await api.connect({ network: 'web', sandbox: 's1', portMappings: publish });
    expect(ep.portMappings).toEqual(publish);
  });

  it('a network whose driver fails gives back its pool and gateway', async () => {
    driver.failNext.set('createNetwork', new Error('injected'));
    await expect(
      api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } }),
    ).rejects.toThrow('injected');
    expect((await ipam.listPools()).map((p) => p.subnet)).toEqual(['10.1.0.0/24']);
    expect((await held()).intents).toEqual([]);
  });
});

describe('a lost reply after the commit', () => {
  it('connect: the committed endpoint is read back and kept, not undone', async () => {
    memory.loseReplyAfter = (ops) => isEndpointCommit(ops);
    const ep = await api.connect({ network: 'web', sandbox: 's1' });
    memory.loseReplyAfter = undefined;
    expect(ep.ipv4).toBe('10.1.0.2/24');
    expect(driver.calls).not.toContain('leave');
    const after = await held();
    expect(after.intents).toEqual([]);
    expect(after.endpoints).toEqual([`netctl/v1/endpoints/${ep.id}`]);
    expect(after.addresses).toEqual(['10.1.0.1/24 net', '10.1.0.2/24 ep:']);
  });

  it('createNetwork and disconnect: read back as done', async () => {
    memory.loseReplyAfter = (ops) => ops.some((op) => op.type === 'put' && op.key.includes('/networks/'));
    const db = await api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    memory.loseReplyAfter = undefined;
    expect((await api.inspectNetwork('db')).network.id).toBe(db.id);
    expect(driver.calls).not.toContain('deleteNetwork');

    await api.connect({ network: 'web', sandbox: 's1' });
    memory.loseReplyAfter = isEndpointDelete;
    await api.disconnect('web', 's1');
    memory.loseReplyAfter = undefined;
    expect(await held()).toEqual({ ...GATEWAY_ONLY, addresses: ['10.1.0.1/24 net', '10.2.0.1/24 net'] });
  });

  it('publishPorts (Docker): the claimed ports are read back and the rules made', async () => {
    const ep = await api.createEndpoint({ network: 'web' });
    memory.loseReplyAfter = (ops) => ops.some((op) => op.key.includes('/claims/ports/'));
    const published = await api.publishPorts(ep.id, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    memory.loseReplyAfter = undefined;
    expect(published.portMappings).toEqual([{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    expect(driver.calls.slice(-1)).toEqual(['program']);
    expect((await api.findEndpoint(ep.id)).portMappings).toEqual(published.portMappings);
  });

  it('the store down after the lost reply: a clear error, nothing undone; reconcile settles it when the store answers', async () => {
    memory.loseReplyAfter = (ops) => {
      if (!isEndpointCommit(ops)) return false;
      memory.down = true; // and stays down past the settling window
      return true;
    };
    await expect(api.connect({ network: 'web', sandbox: 's1' })).rejects.toMatchObject({
      code: 'NETCTL_STORE_UNAVAILABLE',
      message: expect.stringContaining('the outcome of connect is unknown'),
    });
    expect(driver.calls).not.toContain('leave');
    memory.loseReplyAfter = undefined;
    memory.down = false;
    // The controller reconciles in the background once the store is back.
    await expect.poll(async () => (await held()).intents, { timeout: 15_000, interval: 100 }).toEqual([]);
    const after = await held();
    expect(after.endpoints).toHaveLength(1);
    expect(after.addresses).toEqual(['10.1.0.1/24 net', '10.1.0.2/24 ep:']);
    expect(driver.calls).not.toContain('leave');
  }, 20_000);

  it('a claim written with its intent whose reply is lost: freed by reconcile, the port taken again', async () => {
    const publish = [{ proto: 'tcp' as const, hostPort: 8080, containerPort: 80 }];
    memory.loseReplyAfter = (ops) => {
      if (!ops.some((op) => op.key.includes('/intents/'))) return false;
      memory.down = true;
      return true;
    };
    await expect(api.connect({ network: 'web', sandbox: 's1', portMappings: publish })).rejects.toMatchObject(
      {
        code: 'kv.unavailable', // the API reports it as NETCTL_STORE_UNAVAILABLE
      },
    );
    memory.loseReplyAfter = undefined;
    memory.down = false;
    await expect.poll(async () => (await held()).claims, { timeout: 15_000, interval: 100 }).toEqual([]);
    expect(await held()).toEqual(GATEWAY_ONLY);
    await api.connect({ network: 'web', sandbox: 's1', portMappings: publish });
  }, 20_000);
});

describe('a lost reply before the commit', () => {
  it('a disconnect whose address release is lost is finished by reconcile, never left half-done', async () => {
    const ep = await api.connect({ network: 'web', sandbox: 's1', ipv4: '10.1.0.9' });
    memory.loseReplyAfter = (ops) =>
      ops.some((op) => op.type === 'delete' && op.key.includes('/ipam/addrs/'));
    await expect(api.disconnect('web', 's1')).rejects.toMatchObject({ code: 'kv.unavailable' });
    memory.loseReplyAfter = undefined;
    // The delete was under way: reconcile (run by the controller itself) finishes it.
    await expect.poll(async () => (await held()).endpoints, { timeout: 15_000, interval: 100 }).toEqual([]);
    expect(await held()).toEqual(GATEWAY_ONLY);
    // The address is not held twice: it can be had again, once.
    const again = await api.connect({ network: 'web', sandbox: 's1', ipv4: '10.1.0.9' });
    expect(again.id).not.toBe(ep.id);
  }, 20_000);

  it('a network rm whose pool release is lost is finished by reconcile (the pool gone already is done)', async () => {
    await api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    memory.loseReplyAfter = (ops) =>
      ops.some((op) => op.type === 'delete' && op.key.includes('/ipam/pools/'));
    await expect(api.deleteNetwork('db')).rejects.toMatchObject({ code: 'kv.unavailable' });
    memory.loseReplyAfter = undefined;
    await expect
      .poll(async () => (await api.listNetworks()).map((n) => n.name), { timeout: 15_000, interval: 100 })
      .toEqual(['web']);
    expect((await ipam.listPools()).map((p) => p.subnet)).toEqual(['10.1.0.0/24']);
    expect((await held()).intents).toEqual([]);
  }, 20_000);

  it('a network create whose pool reply is lost gives the pool back', async () => {
    memory.loseReplyAfter = (ops) => ops.some((op) => op.type === 'put' && op.key.includes('/ipam/pools/'));
    await expect(
      api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } }),
    ).rejects.toMatchObject({ code: 'kv.unavailable' });
    memory.loseReplyAfter = undefined;
    expect((await ipam.listPools()).map((p) => p.subnet)).toEqual(['10.1.0.0/24']);
    await api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
  });
});

describe('claims', () => {
  it('concurrent connects of one sandbox to one network: one endpoint, the rest NETCTL_ENDPOINT_EXISTS', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => api.connect({ network: 'web', sandbox: 's1' })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected'))
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'NETCTL_ENDPOINT_EXISTS' });
    expect((await held()).endpoints).toHaveLength(1);
    expect((await held()).addresses).toHaveLength(2);
  });

  it('a network delete racing connects: either the connect wins and the delete is refused, or the other way round', async () => {
    const netns = createAnonymousNetns();
    onTestFinished(() => netns.close());
    await api.createSandbox({ name: 's2', key: netns.path });
    const [connect, remove] = await Promise.allSettled([
      api.connect({ network: 'web', sandbox: 's2' }),
      api.deleteNetwork('web'),
    ]);
    if (connect.status === 'fulfilled') {
      expect(remove).toMatchObject({ status: 'rejected', reason: { code: 'NETCTL_NETWORK_IN_USE' } });
      expect((await api.inspectNetwork('web')).network.deleting).toBeUndefined();
    } else {
      expect(remove.status).toBe('fulfilled');
      expect(connect.reason).toBeInstanceOf(Errors.NetworkNotFound);
      expect(await held()).toEqual({ ...GATEWAY_ONLY, addresses: [] });
      expect(await api.listNetworks()).toEqual([]);
    }
  });
});
