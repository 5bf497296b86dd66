import { beforeEach, describe, expect, it } from 'vitest';
import { Ipam } from '../../../src/ipam/ipam.js';
import { ipamKeys } from '../../../src/ipam/store.js';
import { MemoryState, MemoryStore } from '../../../src/kv/testing/memory.js';

let state: MemoryState;
let kv: MemoryStore;
let ipam: Ipam;

beforeEach(() => {
  state = new MemoryState();
  kv = new MemoryStore(state);
  ipam = new Ipam(kv);
});

/** Everything the IPAM keeps, to check that a failed call changed nothing. */
async function snapshot() {
  return kv.list('netctl/v1/ipam/');
}

async function expectUnchanged(call: () => Promise<unknown>, code: string, message?: RegExp) {
  const before = await snapshot();
  const err = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(Error);
  expect(err).toMatchObject({ code });
  if (message) expect((err as Error).message).toMatch(message);
  expect(await snapshot()).toEqual(before);
}

describe('pools', () => {
  it('requests a pool by subnet, with Docker-like defaults', async () => {
    const pool = await ipam.requestPool({ subnet: '10.10.0.0/24' });
    expect(pool).toEqual({
      poolId: 'local/10.10.0.0/24',
      space: 'local',
      subnet: '10.10.0.0/24',
      family: 4,
      gateway: '10.10.0.1',
      auxAddresses: {},
      allocated: 0,
    });
    expect(await ipam.getPool(pool.poolId)).toEqual(pool);
    expect(ipam.defaultAddressSpaces()).toEqual({ local: 'local', global: 'global' });
  });

  it('carves pools from the default pools of each space', async () => {
    expect((await ipam.requestPool()).subnet).toBe('172.17.0.0/16');
    expect((await ipam.requestPool()).subnet).toBe('172.18.0.0/16');
    expect((await ipam.requestPool({ space: 'global' })).subnet).toBe('10.0.0.0/24');
    expect((await ipam.requestPool({ space: 'global' })).subnet).toBe('10.0.1.0/24');
    await ipam.requestPool({ subnet: '172.19.0.0/16' });
    expect((await ipam.requestPool()).subnet).toBe('172.20.0.0/16');
    expect((await ipam.listPools('local')).map((p) => p.subnet)).toEqual([
      '172.17.0.0/16',
      '172.18.0.0/16',
      '172.19.0.0/16',
      '172.20.0.0/16',
    ]);
  });

  it('takes configured default pools (daemon.json default-address-pools), IPv6 included', async () => {
    const custom = new Ipam(kv, {
      defaultPools: {
        local: [
          { base: '10.200.0.0/16', size: 24 },
          { base: 'fd10::/48', size: 64 },
        ],
        global: [],
      },
    });
    expect((await custom.requestPool()).subnet).toBe('10.200.0.0/24');
    expect((await custom.requestPool({ v6: true })).subnet).toBe('fd10::/64');
    expect((await custom.requestPool({ v6: true })).subnet).toBe('fd10:0:0:1::/64');
    await expectUnchanged(
      () => custom.requestPool({ space: 'global' }),
      'ipam.no_available_pool',
      /no IPv4 default pools/,
    );
  });

  it('detects overlaps within a space, but not across spaces', async () => {
    await ipam.requestPool({ subnet: '10.0.0.0/16' });
    await expectUnchanged(
      () => ipam.requestPool({ subnet: '10.0.5.0/24' }),
      'ipam.pool_overlap',
      /10\.0\.5\.0\/24 overlaps pool 10\.0\.0\.0\/16/,
    );
    await expectUnchanged(() => ipam.requestPool({ subnet: '10.0.0.0/8' }), 'ipam.pool_overlap');
    await expectUnchanged(
      () => ipam.requestPool({ subnet: '10.0.0.0/16' }),
      'ipam.pool_overlap',
      /already exists/,
    );
    expect((await ipam.requestPool({ space: 'global', subnet: '10.0.5.0/24' })).poolId).toBe(
      'global/10.0.5.0/24',
    );
    expect((await ipam.requestPool({ subnet: '10.1.0.0/16' })).poolId).toBe('local/10.1.0.0/16');
  });

  it('refuses bad requests with typed errors and changes nothing', async () => {
    await ipam.requestPool({ subnet: '10.0.0.0/24' });
    await expectUnchanged(
      () => ipam.requestPool({ subnet: 'not-a-cidr' }),
      'ipam.invalid_cidr',
      /"not-a-cidr"/,
    );
    await expectUnchanged(
      () => ipam.requestPool({ subnet: '10.1.0.7/24' }),
      'ipam.invalid_cidr',
      /host bits/,
    );
    await expectUnchanged(
      () => ipam.requestPool({ subnet: '10.1.0.0/24', gateway: '10.2.0.1' }),
      'ipam.address_out_of_range',
      /gateway 10\.2\.0\.1 is not in 10\.1\.0\.0\/24/,
    );
    await expectUnchanged(
      () => ipam.requestPool({ subnet: '10.1.0.0/24', ipRange: '10.1.1.0/25' }),
      'ipam.address_out_of_range',
    );
    await expectUnchanged(
      () => ipam.requestPool({ space: 'elsewhere', subnet: '10.1.0.0/24' }),
      'ipam.unknown_address_space',
    );
    await expectUnchanged(
      () => ipam.requestPool({ ipRange: '10.1.0.0/25' }),
      'ipam.invalid_request',
      /needs an explicit subnet/,
    );
    await expectUnchanged(() => ipam.requestPool({ subnet: 'fd00::/64', v6: false }), 'ipam.invalid_request');
    await expectUnchanged(() => ipam.requestPool({ v6: true }), 'ipam.no_available_pool', /give a subnet/);
  });

  it('release refuses while addresses are held, unless forced; forced release frees them all', async () => {
    const { poolId } = await ipam.requestPool({
      subnet: '10.0.0.0/24',
      auxAddresses: { router: '10.0.0.254' },
    });
    await ipam.requestAddress(poolId, { owner: 'ep1' });
    await ipam.requestAddress(poolId, { owner: 'ep2', address: '10.0.0.77' });
    await expectUnchanged(
      () => ipam.releasePool(poolId),
      'ipam.pool_in_use',
      /still has 2 allocated addresses/,
    );
    expect(await ipam.releasePool(poolId, { force: true })).toBe(true);
    expect(await snapshot()).toEqual([
      expect.objectContaining({ key: ipamKeys.space('local'), value: { pools: [] } }),
    ]);
    expect(await ipam.releasePool(poolId)).toBe(false);
    await expect(ipam.requestAddress(poolId, { owner: 'ep3' })).rejects.toMatchObject({
      code: 'ipam.pool_not_found',
    });
    // The subnet is free again and starts from scratch.
    await ipam.requestPool({ subnet: '10.0.0.0/24' });
    expect((await ipam.requestAddress(poolId, { owner: 'ep4' })).address).toBe('10.0.0.2');
    expect(await ipam.releaseOwner('ep1')).toEqual([]);
  });

  it('an empty pool releases without force (gateway and aux do not count)', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24', auxAddresses: { a: '10.0.0.200' } });
    const a = await ipam.requestAddress(poolId, { owner: 'ep' });
    await ipam.releaseAddress(poolId, a.address);
    expect(await ipam.releasePool(poolId)).toBe(true);
    expect(await ipam.listPools()).toEqual([]);
  });
});

describe('addresses', () => {
  it('allocates serially and does not reuse a released address until the range wraps', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/29' }); // .1 gateway, .2-.6 dynamic
    const take = async () => (await ipam.requestAddress(poolId, { owner: 'x' })).address;
    expect(await take()).toBe('10.0.0.2');
    expect(await take()).toBe('10.0.0.3');
    expect(await take()).toBe('10.0.0.4');
    expect(await ipam.releaseAddress(poolId, '10.0.0.3')).toBe(true);
    expect(await take()).toBe('10.0.0.5');
    expect(await take()).toBe('10.0.0.6');
    // End of the range: wrap round to the hole.
    expect(await take()).toBe('10.0.0.3');
    await expectUnchanged(take, 'ipam.no_available_ip', /no available address in 10\.0\.0\.0\/29/);
  });

  it('returns the address with the prefix length, and records the owner', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    const a = await ipam.requestAddress(poolId, { owner: 'cni/abc123/eth0' });
    expect(a).toEqual({ poolId, address: '10.0.0.2', cidr: '10.0.0.2/24', owner: 'cni/abc123/eth0' });
    expect(await ipam.listAllocations(poolId)).toEqual([
      expect.objectContaining({
        poolId,
        address: '10.0.0.2',
        owner: 'cni/abc123/eth0',
        allocatedAt: expect.any(String),
      }),
    ]);
    expect(await ipam.allocationsOf('cni/abc123/eth0')).toEqual([{ poolId, address: '10.0.0.2' }]);
    expect((await ipam.getPool(poolId)).allocated).toBe(1);
  });

  it('static requests may use the whole subnet, even outside --ip-range', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24', ipRange: '10.0.0.128/25' });
    expect((await ipam.requestAddress(poolId, { owner: 'a' })).address).toBe('10.0.0.128');
    expect((await ipam.requestAddress(poolId, { owner: 'b', address: '10.0.0.9' })).address).toBe('10.0.0.9');
    expect((await ipam.requestAddress(poolId, { owner: 'c', address: '10.0.0.129' })).address).toBe(
      '10.0.0.129',
    );
    // The dynamic cursor skips the static one.
    expect((await ipam.requestAddress(poolId, { owner: 'd' })).address).toBe('10.0.0.130');
  });

  it('refuses static addresses that are taken, reserved, outside, or unassignable', async () => {
    const { poolId } = await ipam.requestPool({
      subnet: '10.0.0.0/24',
      auxAddresses: { printer: '10.0.0.250' },
    });
    await ipam.requestAddress(poolId, { owner: 'ep1', address: '10.0.0.10' });
    const req = (address: string) => () => ipam.requestAddress(poolId, { owner: 'ep2', address });
    await expectUnchanged(req('10.0.0.10'), 'ipam.address_in_use', /10\.0\.0\.10 .* in use by ep1/);
    await expectUnchanged(req('10.0.0.1'), 'ipam.address_in_use', /by gateway/);
    await expectUnchanged(req('10.0.0.250'), 'ipam.address_in_use', /by aux:printer/);
    await expectUnchanged(
      req('10.0.1.5'),
      'ipam.address_out_of_range',
      /10\.0\.1\.5 is not in 10\.0\.0\.0\/24/,
    );
    await expectUnchanged(req('10.0.0.0'), 'ipam.invalid_address', /network address/);
    await expectUnchanged(req('10.0.0.255'), 'ipam.invalid_address', /broadcast address/);
    await expectUnchanged(req('fd00::5'), 'ipam.invalid_address', /IPv6 but pool/);
    await expectUnchanged(req('10.0.0'), 'ipam.invalid_address');
    await expectUnchanged(
      () => ipam.requestAddress(poolId, { owner: '' }),
      'ipam.invalid_request',
      /needs an owner/,
    );
    await expectUnchanged(
      () => ipam.requestAddress('local/10.9.0.0/24', { owner: 'x' }),
      'ipam.pool_not_found',
    );
    await expectUnchanged(
      () => ipam.requestAddress('local/10.9.0.1/24', { owner: 'x' }),
      'ipam.invalid_cidr',
    );
    await expectUnchanged(() => ipam.requestAddress('nonsense', { owner: 'x' }), 'ipam.invalid_request');
  });

  it('the same owner asking again for its static address gets it back', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    const first = await ipam.requestAddress(poolId, { owner: 'ep1', address: '10.0.0.10' });
    const before = await snapshot();
    expect(await ipam.requestAddress(poolId, { owner: 'ep1', address: '10.0.0.10' })).toEqual(first);
    expect(await snapshot()).toEqual(before);
  });

  it('release is idempotent; an address outside the pool is an error', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    const a = await ipam.requestAddress(poolId, { owner: 'ep' });
    expect(await ipam.releaseAddress(poolId, a.address)).toBe(true);
    expect(await ipam.releaseAddress(poolId, a.address)).toBe(false);
    expect(await ipam.releaseAddress(poolId, '10.0.0.99')).toBe(false);
    await expectUnchanged(() => ipam.releaseAddress(poolId, '10.0.9.9'), 'ipam.address_out_of_range');
    expect(await ipam.listAllocations(poolId)).toEqual([]);
    expect(await ipam.allocationsOf('ep')).toEqual([]);
  });

  it('releaseOwner frees what one owner holds across pools', async () => {
    const v4 = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    const v6 = await ipam.requestPool({ subnet: 'fd00::/64' });
    await ipam.requestAddress(v4.poolId, { owner: 'ctr1/eth0' });
    await ipam.requestAddress(v6.poolId, { owner: 'ctr1/eth0' });
    const other = await ipam.requestAddress(v4.poolId, { owner: 'ctr2/eth0' });
    const released = await ipam.releaseOwner('ctr1/eth0');
    expect(released.map((r) => r.cidr).sort()).toEqual(['10.0.0.2/24', 'fd00::2/64']);
    expect((await ipam.listAllocations()).map((r) => r.address)).toEqual([other.address]);
  });

  it('IPv6 pools are sparse: a /64 costs only the blocks it touches', async () => {
    const { poolId, gateway } = await ipam.requestPool({ subnet: 'fd00:1::/64' });
    expect(gateway).toBe('fd00:1::1');
    const a = await ipam.requestAddress(poolId, { owner: 'a' });
    expect(a.cidr).toBe('fd00:1::2/64');
    const far = await ipam.requestAddress(poolId, { owner: 'b', address: 'fd00:1::ffff:ffff:ffff:fffe' });
    expect(far.address).toBe('fd00:1::ffff:ffff:ffff:fffe');
    const blocks = await kv.list(ipamKeys.blocks(poolId));
    expect(blocks).toHaveLength(2);
    expect((await ipam.requestAddress(poolId, { owner: 'c' })).address).toBe('fd00:1::3');
    await ipam.releaseAddress(poolId, far.address);
    expect((await ipam.getPool(poolId)).allocated).toBe(2);
  });

  it('gateway role: returns the pool gateway, or reserves one for a pool made without', async () => {
    const withGw = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    expect(await ipam.requestAddress(withGw.poolId, { owner: 'docker', role: 'gateway' })).toMatchObject({
      address: '10.0.0.1',
      cidr: '10.0.0.1/24',
    });
    await expectUnchanged(
      () => ipam.requestAddress(withGw.poolId, { owner: 'docker', role: 'gateway', address: '10.0.0.5' }),
      'ipam.invalid_request',
      /already has gateway 10\.0\.0\.1/,
    );
    // Docker's flow: RequestPool (no gateway), then RequestAddress with the gateway type.
    const bare = await ipam.requestPool({ subnet: '10.1.0.0/24', gateway: false });
    expect(bare.gateway).toBeUndefined();
    expect((await ipam.requestAddress(bare.poolId, { owner: 'x' })).address).toBe('10.1.0.1');
    const gw = await ipam.requestAddress(bare.poolId, {
      owner: 'docker',
      role: 'gateway',
      address: '10.1.0.254',
    });
    expect(gw.address).toBe('10.1.0.254');
    expect((await ipam.getPool(bare.poolId)).gateway).toBe('10.1.0.254');
    await expectUnchanged(
      () => ipam.requestAddress(bare.poolId, { owner: 'y', address: '10.1.0.254' }),
      'ipam.address_in_use',
      /by gateway/,
    );
    // Releasing the gateway takes it off the pool.
    expect(await ipam.releaseAddress(bare.poolId, '10.1.0.254')).toBe(true);
    expect((await ipam.getPool(bare.poolId)).gateway).toBeUndefined();
    expect((await ipam.requestAddress(bare.poolId, { owner: 'y', address: '10.1.0.254' })).address).toBe(
      '10.1.0.254',
    );
  });

  it('aux addresses live as long as the pool', async () => {
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/30', auxAddresses: { r: '10.0.0.2' } });
    await expectUnchanged(
      () => ipam.releaseAddress(poolId, '10.0.0.2'),
      'ipam.invalid_request',
      /reserved for the pool's lifetime/,
    );
    // .1 gateway, .2 aux: the /30 is full.
    await expectUnchanged(() => ipam.requestAddress(poolId, { owner: 'x' }), 'ipam.no_available_ip');
  });

  it('/31 and /32 pools', async () => {
    const p31 = await ipam.requestPool({ subnet: '10.9.0.0/31' });
    expect((await ipam.requestAddress(p31.poolId, { owner: 'a' })).address).toBe('10.9.0.1');
    const p32 = await ipam.requestPool({ subnet: '10.9.1.7/32' });
    expect((await ipam.requestAddress(p32.poolId, { owner: 'a' })).cidr).toBe('10.9.1.7/32');
    await expectUnchanged(() => ipam.requestAddress(p32.poolId, { owner: 'b' }), 'ipam.no_available_ip');
  });

  it('a pool another client released and re-created is re-read, not served from a stale cache', async () => {
    const other = new Ipam(new MemoryStore(state));
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    expect((await ipam.requestAddress(poolId, { owner: 'a' })).address).toBe('10.0.0.2');
    await other.releasePool(poolId, { force: true });
    await other.requestPool({ subnet: '10.0.0.0/24', ipRange: '10.0.0.64/26' });
    expect((await ipam.requestAddress(poolId, { owner: 'b' })).address).toBe('10.0.0.64');
    expect(await ipam.releaseAddress(poolId, '10.0.0.64')).toBe(true);
    expect((await other.getPool(poolId)).allocated).toBe(0);
  });

  it('concurrent requests in one process through two clients never share an address', async () => {
    const other = new Ipam(new MemoryStore(state));
    const { poolId } = await ipam.requestPool({ subnet: '10.0.0.0/24' });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        (i % 2 ? ipam : other).requestAddress(poolId, { owner: `ep${i}` }),
      ),
    );
    const addresses = new Set(results.map((r) => r.address));
    expect(addresses.size).toBe(200);
    expect((await ipam.getPool(poolId)).allocated).toBe(200);
    expect(await ipam.listAllocations(poolId)).toHaveLength(200);
    // And concurrent releases with allocations keep the books straight.
    await Promise.all([
      ...results.slice(0, 100).map((r, i) => (i % 2 ? ipam : other).releaseAddress(poolId, r.address)),
      ...Array.from({ length: 53 }, (_, i) => other.requestAddress(poolId, { owner: `late${i}` })),
    ]);
    const final = await ipam.listAllocations(poolId);
    expect(final).toHaveLength(153);
    expect(new Set(final.map((r) => r.address)).size).toBe(153);
    expect((await ipam.getPool(poolId)).allocated).toBe(153);
  });
});
