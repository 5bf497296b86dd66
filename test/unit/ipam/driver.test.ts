/** The core IpamDriver contract over the KV-backed IPAM, in dockerd's order of calls. */
import { describe, expect, it } from 'vitest';
import type { IpamDriver } from '../../../src/core/ipam.js';
import { KvIpamDriver } from '../../../src/ipam/driver.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { MemoryStore } from '../../../src/kv/testing/memory.js';

describe('KvIpamDriver', () => {
  it('creates a network the way dockerd does, and tears it down', async () => {
    const driver: IpamDriver = new KvIpamDriver(new Ipam(new MemoryStore()));
    expect(await driver.defaultAddressSpaces()).toEqual({ local: 'local', global: 'global' });
    const pool = await driver.requestPool({ addressSpace: 'local', v6: false, owner: 'net:n1' });
    expect(pool).toEqual({ poolId: 'local/172.17.0.0/16', pool: '172.17.0.0/16' });
    const gw = await driver.requestAddress({ poolId: pool.poolId, owner: 'net:n1' });
    expect(gw).toEqual({ poolId: pool.poolId, address: '172.17.0.1/16', owner: 'net:n1' });
    const ep = await driver.requestAddress({ poolId: pool.poolId, owner: 'ep:e1' });
    expect(ep.address).toBe('172.17.0.2/16');
    const fixed = await driver.requestAddress({ poolId: pool.poolId, address: '172.17.9.9', owner: 'ep:e2' });
    expect(fixed.address).toBe('172.17.9.9/16');
    expect(await driver.listPools()).toEqual([{ ...pool, owner: 'net:n1' }]);
    expect((await driver.listReservations(pool.poolId)).map((r) => `${r.owner} ${r.address}`).sort()).toEqual(
      ['ep:e1 172.17.0.2/16', 'ep:e2 172.17.9.9/16', 'net:n1 172.17.0.1/16'],
    );
    await expect(driver.releasePool(pool.poolId)).rejects.toMatchObject({ code: 'ipam.pool_in_use' });
    await driver.releaseAddress(pool.poolId, ep.address);
    await driver.releaseAddress(pool.poolId, ep.address);
    await driver.releaseAddress(pool.poolId, '172.17.9.9');
    await driver.releaseAddress(pool.poolId, gw.address);
    await expect(driver.releaseAddress(pool.poolId, '172.17.0.5/24')).rejects.toMatchObject({
      code: 'ipam.invalid_address',
    });
    await driver.releasePool(pool.poolId);
    await driver.releasePool(pool.poolId);
    expect(await driver.listPools()).toEqual([]);
  });

  it('takes a sub-pool and IPv6', async () => {
    const driver = new KvIpamDriver(new Ipam(new MemoryStore()));
    const v4 = await driver.requestPool({
      addressSpace: 'local',
      pool: '10.5.0.0/16',
      subPool: '10.5.7.0/24',
      v6: false,
      owner: 'net:a',
    });
    expect((await driver.requestAddress({ poolId: v4.poolId, owner: 'ep:x' })).address).toBe('10.5.7.0/16');
    const v6 = await driver.requestPool({
      addressSpace: 'global',
      pool: 'fd00:5::/64',
      v6: true,
      owner: 'net:a',
    });
    expect((await driver.requestAddress({ poolId: v6.poolId, owner: 'net:a' })).address).toBe('fd00:5::1/64');
  });
});
