/**
 * The controller's undo paths, driven through its public API: an operation
 * that fails at a chosen step — in the driver (failNext), in the firewall
 * (the fake's failNext), in the IPAM, or at its commit (the memory store
 * refusing the write: refuseTxn) — leaves nothing behind: no store record
 * or key, no IPAM reservation, no claim, no intent, no firewall rule. And
 * what it held can be had again at once.
 *
 * The real Controller on the memory store, the fake firewall and the
 * recording driver (test/helpers/memory-controller.ts): the driver puts the
 * bridge driver's rules into the fake firewall, so an undo that forgets a
 * driver step shows as a rule left.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeInventory } from '../../helpers/inventory.js';
import { type MemoryController, memoryControllerWithWeb } from '../../helpers/memory-controller.js';

let m: MemoryController;

beforeEach(async () => {
  m = await memoryControllerWithWeb();
});

afterEach(() => m.close());

/** Everything an operation can leave: the store (every key, and what it holds) and the firewall's rules. */
async function leftovers() {
  return {
    ...(await storeInventory(m.kv)),
    keys: (await m.kv.list('netctl/v1/')).map((e) => e.key),
    rules: (await m.firewall.list()).map((r) => `${r.owner} ${r.family} ${r.table} ${r.line}`).sort(),
  };
}

/** Make call fail (as inject says, with `error`): the driver saw `calls` (when given), and nothing is left of it. */
async function expectUndone(
  call: () => Promise<unknown>,
  inject: () => void,
  calls?: string[],
  error?: RegExp,
): Promise<void> {
  const before = await leftovers();
  m.driver.calls.length = 0;
  inject();
  await expect(call()).rejects.toThrow(error);
  if (calls) expect(m.driver.calls).toEqual(calls);
  expect(await leftovers()).toEqual(before);
}

const PORTS = [{ proto: 'tcp' as const, hostPort: 8080, containerPort: 80 }];

describe('connect', () => {
  const connect = () =>
    m.api.connect({ network: 'web', sandbox: 's1', ipv4: '10.1.0.9', portMappings: PORTS });

  const failures: [string, () => void, string[]][] = [
    [
      'the driver fails createEndpoint',
      () => m.driver.failNext.set('createEndpoint', new Error('injected')),
      ['createEndpoint'],
    ],
    [
      'the driver fails join',
      () => m.driver.failNext.set('join', new Error('injected')),
      ['createEndpoint', 'join', 'revoke', 'leave', 'deleteEndpoint'],
    ],
    [
      'the driver fails to program the published ports',
      () => m.driver.failNext.set('program', new Error('injected')),
      ['createEndpoint', 'join', 'program', 'revoke', 'leave', 'deleteEndpoint'],
    ],
    [
      'the firewall fails to add the port rules',
      () => m.firewall.failNext('add', new Error('injected')),
      ['createEndpoint', 'join', 'program', 'revoke', 'leave', 'deleteEndpoint'],
    ],
    [
      'the store refuses the endpoint record, after the rules were made',
      () => m.refuseNextWrite('endpoints/'),
      ['createEndpoint', 'join', 'program', 'revoke', 'leave', 'deleteEndpoint'],
    ],
  ];

  it.each(failures)(
    '%s: nothing is left, and the address and port can be had again',
    async (_, inject, calls) => {
      await expectUndone(connect, inject, calls);
      const ep = await connect();
      expect(ep).toMatchObject({ ipv4: '10.1.0.9/24', portMappings: PORTS });
      expect((await leftovers()).rules.filter((r) => r.startsWith(`ep:${ep.id}`))).toHaveLength(2);
    },
  );
});

describe('createNetwork', () => {
  const db = { name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } };

  const failures: [string, () => void, string[]][] = [
    [
      'the driver fails',
      () => m.driver.failNext.set('createNetwork', new Error('injected')),
      ['createNetwork'],
    ],
    [
      'the firewall fails to add its rules',
      () => m.firewall.failNext('add', new Error('injected')),
      ['createNetwork'],
    ],
    [
      'the store refuses the network record, after the driver made it',
      () => m.refuseNextWrite('networks/'),
      ['createNetwork', 'deleteNetwork'],
    ],
  ];

  it.each(failures)(
    '%s: no record, pool, address or rule is left; the name and subnet can be had again',
    async (_, inject, calls) => {
      await expectUndone(() => m.api.createNetwork(db), inject, calls);
      const made = await m.api.createNetwork(db);
      expect(made.ipam.config).toEqual([{ subnet: '10.2.0.0/24', gateway: '10.2.0.1' }]);
      expect((await leftovers()).rules.filter((r) => r.startsWith(`net:${made.id}`)).length).toBeGreaterThan(
        0,
      );
    },
  );

  it('an aux address the IPAM refuses after the pool and gateway were taken: the pool goes back', async () => {
    const unusable = { subnet: '10.2.0.0/24', auxAddresses: { net: '10.2.0.0' } };
    const unusableCall = () => m.api.createNetwork({ name: 'db', ipam: { config: [unusable] } });
    await expectUndone(unusableCall, () => {}, undefined, /network address of 10\.2\.0\.0\/24/);
    // The second pool of a network whose first was taken: both go back.
    const second = [{ subnet: '10.2.0.0/24' }, { subnet: '10.1.0.128/25' }];
    const secondCall = () => m.api.createNetwork({ name: 'db', ipam: { config: second } });
    await expectUndone(secondCall, () => {}, undefined, /10\.1\.0\.128\/25 overlaps pool 10\.1\.0\.0\/24/);
    await m.api.createNetwork(db);
  });
});

describe('publishPorts (Docker: endpoint, join, then ports)', () => {
  async function joined() {
    const ep = await m.api.createEndpoint({ network: 'web' });
    await m.api.joinEndpoint(ep.id, { sandbox: 's1', placement: 'host-side' });
    return ep.id;
  }

  const failures: [string, () => void][] = [
    ['the driver fails to program them', () => m.driver.failNext.set('program', new Error('injected'))],
    ['the firewall fails to add their rules', () => m.firewall.failNext('add', new Error('injected'))],
    ['the store refuses their claim', () => m.refuseNextWrite('endpoints/')],
  ];

  it.each(failures)('%s: no claim, port or rule is left; the port can be had again', async (_, inject) => {
    const id = await joined();
    await expectUndone(() => m.api.publishPorts(id, PORTS), inject);
    expect((await m.api.findEndpoint(id)).portMappings).toEqual([]);
    expect((await m.api.publishPorts(id, PORTS)).portMappings).toEqual(PORTS);
    expect((await leftovers()).rules.filter((r) => r.startsWith(`ep:${id}`))).toHaveLength(2);
  });

  it('a failed republish leaves claims and rules for exactly the ports its record holds', async () => {
    const id = await joined();
    await m.api.publishPorts(id, PORTS);
    m.driver.failNext.set('program', new Error('injected'));
    await expect(
      m.api.publishPorts(id, [{ proto: 'tcp', hostPort: 9090, containerPort: 90 }]),
    ).rejects.toThrow('injected');
    // Which ports the record keeps is the controller's to say; that nothing else is held is the undo's.
    const { portMappings } = await m.api.findEndpoint(id);
    const left = await leftovers();
    expect(left.claims.filter((c) => c.startsWith('claims/ports/'))).toEqual(
      portMappings.map((p) => `claims/ports/${p.proto}/${Math.floor(p.hostPort / 256)} ep:${id}`),
    );
    expect(left.rules.filter((r) => r.startsWith(`ep:${id}`))).toHaveLength(2 * portMappings.length);
    expect(left.intents).toEqual([]);
  });
});

describe('createSandbox on a namespace given by key', () => {
  it('the store refuses its record: nothing is left, the name can be had again', async () => {
    const create = () => m.api.createSandbox({ name: 's2', key: m.netns('s2') });
    await expectUndone(create, () => m.refuseNextWrite('sandboxes/'), [], /refused/);
    expect((await create()).name).toBe('s2');
  });
});
