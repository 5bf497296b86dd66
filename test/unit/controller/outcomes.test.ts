/**
 * The controller's unknown outcomes, on the memory store with a recording
 * driver (no kernel): a commit whose reply is lost is re-read and kept,
 * never undone; an outcome that cannot be read yet is left to reconcile,
 * which settles it once the store answers; claims hold under races. A
 * failure whose outcome is known is undone in place: undo.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../../../src/errors.js';
import type { KvOp } from '../../../src/kv/index.js';
import { storeInventory } from '../../helpers/inventory.js';
import { type MemoryController, memoryControllerWithWeb } from '../../helpers/memory-controller.js';

let m: MemoryController;

beforeEach(async () => {
  m = await memoryControllerWithWeb();
});

afterEach(() => m.close());

/** What the store holds besides the network and sandbox made in beforeEach (owners by kind: ids are new each run). */
async function held() {
  const { intents, claims, endpoints, addresses } = await storeInventory(m.kv);
  return {
    intents,
    claims,
    endpoints: endpoints.map((e) => e.split(' ')[0]),
    addresses: addresses.map((a) => a.replace(/ owner=(\w+):.*$/, ' $1')),
  };
}

const GATEWAY_ONLY = { intents: [], claims: [], endpoints: [], addresses: ['10.1.0.1/24 net'] };
const isEndpointCommit = (ops: readonly KvOp[]) =>
  ops.some((op) => op.type === 'put' && op.key.startsWith('netctl/v1/endpoints/'));
const isEndpointDelete = (ops: readonly KvOp[]) =>
  ops.some((op) => op.type === 'delete' && op.key.startsWith('netctl/v1/endpoints/'));

describe('a lost reply after the commit', () => {
  it('connect: the committed endpoint is read back and kept, not undone', async () => {
    m.memory.loseReplyAfter = (ops) => isEndpointCommit(ops);
    const ep = await m.api.connect({ network: 'web', sandbox: 's1' });
    m.memory.loseReplyAfter = undefined;
    expect(ep.ipv4).toBe('10.1.0.2/24');
    expect(m.driver.calls).not.toContain('leave');
    const after = await held();
    expect(after.intents).toEqual([]);
    expect(after.endpoints).toEqual([`ep:${ep.id}`]);
    expect(after.addresses).toEqual(['10.1.0.1/24 net', '10.1.0.2/24 ep']);
  });

  it('createNetwork and disconnect: read back as done', async () => {
    m.memory.loseReplyAfter = (ops) => ops.some((op) => op.type === 'put' && op.key.includes('/networks/'));
    const db = await m.api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    m.memory.loseReplyAfter = undefined;
    expect((await m.api.inspectNetwork('db')).network.id).toBe(db.id);
    expect(m.driver.calls).not.toContain('deleteNetwork');

    await m.api.connect({ network: 'web', sandbox: 's1' });
    m.memory.loseReplyAfter = isEndpointDelete;
    await m.api.disconnect('web', 's1');
    m.memory.loseReplyAfter = undefined;
    expect(await held()).toEqual({ ...GATEWAY_ONLY, addresses: ['10.1.0.1/24 net', '10.2.0.1/24 net'] });
  });

  it('publishPorts (Docker): the claimed ports are read back and the rules made', async () => {
    const ep = await m.api.createEndpoint({ network: 'web' });
    m.memory.loseReplyAfter = (ops) => ops.some((op) => op.key.includes('/claims/ports/'));
    const published = await m.api.publishPorts(ep.id, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    m.memory.loseReplyAfter = undefined;
    expect(published.portMappings).toEqual([{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    expect(m.driver.calls.slice(-1)).toEqual(['program']);
    expect((await m.api.findEndpoint(ep.id)).portMappings).toEqual(published.portMappings);
  });

  it('the store down after the lost reply: a clear error, nothing undone; reconcile settles it when the store answers', async () => {
    m.memory.loseReplyAfter = (ops) => {
      if (!isEndpointCommit(ops)) return false;
      m.memory.down = true; // and stays down past the settling window
      return true;
    };
    await expect(m.api.connect({ network: 'web', sandbox: 's1' })).rejects.toMatchObject({
      code: 'NETCTL_STORE_UNAVAILABLE',
      message: expect.stringContaining('the outcome of connect is unknown'),
    });
    expect(m.driver.calls).not.toContain('leave');
    m.memory.loseReplyAfter = undefined;
    m.memory.down = false;
    // The controller reconciles in the background once the store is back.
    await expect.poll(async () => (await held()).intents, { timeout: 15_000, interval: 100 }).toEqual([]);
    const after = await held();
    expect(after.endpoints).toHaveLength(1);
    expect(after.addresses).toEqual(['10.1.0.1/24 net', '10.1.0.2/24 ep']);
    expect(m.driver.calls).not.toContain('leave');
  }, 20_000);

  it('a claim written with its intent whose reply is lost: freed by reconcile, the port taken again', async () => {
    const publish = [{ proto: 'tcp' as const, hostPort: 8080, containerPort: 80 }];
    m.memory.loseReplyAfter = (ops) => {
      if (!ops.some((op) => op.key.includes('/intents/'))) return false;
      m.memory.down = true;
      return true;
    };
    await expect(
      m.api.connect({ network: 'web', sandbox: 's1', portMappings: publish }),
    ).rejects.toMatchObject({
      code: 'kv.unavailable', // the API reports it as NETCTL_STORE_UNAVAILABLE
    });
    m.memory.loseReplyAfter = undefined;
    m.memory.down = false;
    await expect.poll(async () => (await held()).claims, { timeout: 15_000, interval: 100 }).toEqual([]);
    expect(await held()).toEqual(GATEWAY_ONLY);
    await m.api.connect({ network: 'web', sandbox: 's1', portMappings: publish });
  }, 20_000);
});

describe('a lost reply before the commit', () => {
  it('a disconnect whose address release is lost is finished by reconcile, never left half-done', async () => {
    const ep = await m.api.connect({ network: 'web', sandbox: 's1', ipv4: '10.1.0.9' });
    m.memory.loseReplyAfter = (ops) =>
      ops.some((op) => op.type === 'delete' && op.key.includes('/ipam/addrs/'));
    await expect(m.api.disconnect('web', 's1')).rejects.toMatchObject({ code: 'kv.unavailable' });
    m.memory.loseReplyAfter = undefined;
    // The delete was under way: reconcile (run by the controller itself) finishes it.
    await expect.poll(async () => (await held()).endpoints, { timeout: 15_000, interval: 100 }).toEqual([]);
    expect(await held()).toEqual(GATEWAY_ONLY);
    // The address is not held twice: it can be had again, once.
    const again = await m.api.connect({ network: 'web', sandbox: 's1', ipv4: '10.1.0.9' });
    expect(again.id).not.toBe(ep.id);
  }, 20_000);

  it('a network rm whose pool release is lost is finished by reconcile (the pool gone already is done)', async () => {
    await m.api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    m.memory.loseReplyAfter = (ops) =>
      ops.some((op) => op.type === 'delete' && op.key.includes('/ipam/pools/'));
    await expect(m.api.deleteNetwork('db')).rejects.toMatchObject({ code: 'kv.unavailable' });
    m.memory.loseReplyAfter = undefined;
    await expect
      .poll(async () => (await m.api.listNetworks()).map((n) => n.name), { timeout: 15_000, interval: 100 })
      .toEqual(['web']);
    expect((await m.ipam.listPools()).map((p) => p.subnet)).toEqual(['10.1.0.0/24']);
    expect((await held()).intents).toEqual([]);
  }, 20_000);

  it('a network create whose pool reply is lost gives the pool back', async () => {
    m.memory.loseReplyAfter = (ops) => ops.some((op) => op.type === 'put' && op.key.includes('/ipam/pools/'));
    await expect(
      m.api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } }),
    ).rejects.toMatchObject({ code: 'kv.unavailable' });
    m.memory.loseReplyAfter = undefined;
    expect((await m.ipam.listPools()).map((p) => p.subnet)).toEqual(['10.1.0.0/24']);
    await m.api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
  });
});

describe('claims', () => {
  it('concurrent connects of one sandbox to one network: one endpoint, the rest NETCTL_ENDPOINT_EXISTS', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => m.api.connect({ network: 'web', sandbox: 's1' })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected'))
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'NETCTL_ENDPOINT_EXISTS' });
    expect((await held()).endpoints).toHaveLength(1);
    expect((await held()).addresses).toHaveLength(2);
  });

  it('a network delete racing connects: either the connect wins and the delete is refused, or the other way round', async () => {
    await m.api.createSandbox({ name: 's2', key: m.netns('s2') });
    const [connect, remove] = await Promise.allSettled([
      m.api.connect({ network: 'web', sandbox: 's2' }),
      m.api.deleteNetwork('web'),
    ]);
    if (connect.status === 'fulfilled') {
      expect(remove).toMatchObject({ status: 'rejected', reason: { code: 'NETCTL_NETWORK_IN_USE' } });
      expect((await m.api.inspectNetwork('web')).network.deleting).toBeUndefined();
    } else {
      expect(remove.status).toBe('fulfilled');
      expect(connect.reason).toBeInstanceOf(Errors.NetworkNotFound);
      expect(await held()).toEqual({ ...GATEWAY_ONLY, addresses: [] });
      expect(await m.api.listNetworks()).toEqual([]);
    }
  });
});
