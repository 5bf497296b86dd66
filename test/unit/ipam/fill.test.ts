/**
 * A /16 fills to its last address and empties again, with the same cost per
 * allocation at the end as at the start. Cost is counted in store calls
 * (deterministic, unlike timings; bench/ipam measures time): an allocation
 * must touch O(1) keys whatever the fill.
 */
import { describe, expect, it } from 'vitest';
import { Ipam } from '../../../src/ipam/ipam.js';
import { ipamKeys } from '../../../src/ipam/store.js';
import { MemoryState, MemoryStore } from '../../../src/kv/testing/memory.js';

function totalCalls(state: MemoryState): number {
  let n = 0;
  for (const count of state.calls.values()) n += count;
  return n;
}

describe('a /16 from first to last address', () => {
  it('fills with flat cost, reports full, empties, and is reusable', async () => {
    const state = new MemoryState();
    const kv = new MemoryStore(state);
    const ipam = new Ipam(kv);
    const { poolId } = await ipam.requestPool({ subnet: '10.20.0.0/16' });
    const seen = new Set<string>(['10.20.0.1']); // the gateway
    const calls: number[] = [];
    for (;;) {
      const before = totalCalls(state);
      let address: string;
      try {
        address = (await ipam.requestAddress(poolId, { owner: `ep${calls.length}` })).address;
      } catch (err) {
        expect(err).toMatchObject({ code: 'ipam.no_available_ip' });
        break;
      }
      calls.push(totalCalls(state) - before);
      expect(seen.has(address), `${address} handed out twice`).toBe(false);
      seen.add(address);
    }
    // 65,536 addresses minus network and broadcast, the gateway included.
    expect(seen.size).toBe(65_534);
    expect(calls).toHaveLength(65_533);
    expect(seen.has('10.20.255.254')).toBe(true);
    expect(seen.has('10.20.0.0') || seen.has('10.20.255.255')).toBe(false);
    // Flat: the 65,000th allocation costs what the 1st does.
    expect(Math.max(...calls)).toBeLessThanOrEqual(4);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(calls.slice(-1000))).toBeLessThanOrEqual(mean(calls.slice(0, 1000)) + 0.01);
    expect((await ipam.getPool(poolId)).allocated).toBe(65_533);

    // Empty it again, in a different order than it filled.
    const addresses = [...seen].filter((a) => a !== '10.20.0.1');
    for (let i = 0; i < addresses.length; i += 2) await ipam.releaseAddress(poolId, addresses[i]!);
    for (let i = 1; i < addresses.length; i += 2) await ipam.releaseAddress(poolId, addresses[i]!);
    expect((await ipam.getPool(poolId)).allocated).toBe(0);
    expect(await ipam.listAllocations(poolId)).toEqual([]);
    const blocks = await kv.list(ipamKeys.blocks(poolId));
    expect(blocks).toHaveLength(64);
    expect(blocks.map((b) => (b.value as { used: number }).used).reduce((a, b) => a + b, 0)).toBe(1); // the gateway

    // Reusable: the cursor wrapped, so allocation starts over at the bottom.
    expect((await ipam.requestAddress(poolId, { owner: 'again' })).address).toBe('10.20.0.2');
    expect(await ipam.releasePool(poolId, { force: true })).toBe(true);
  }, 120_000);
});
