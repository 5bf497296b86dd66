/**
 * 50 separate processes each request one address from the same /24 at the
 * same moment, on the embedded store and on Redis: 50 distinct addresses,
 * each recorded with its owner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Allocation, Ipam } from '../../../src/ipam/ipam.js';
import { openStore } from '../../../src/kv/index.js';
import { type RedisServer, startRedisServer } from '../../../src/kv/testing/redis-server.js';
import { bundleFixture, removeFixture, runConcurrently } from '../../helpers/children.js';

const N = 50;
let script: string;
let dir: string;
let redis: RedisServer;

beforeAll(async () => {
  script = await bundleFixture(new URL('./fixtures/allocate.ts', import.meta.url).pathname);
  dir = mkdtempSync(join(tmpdir(), 'netctl-ipam-'));
  redis = await startRedisServer();
}, 30_000);

afterAll(async () => {
  removeFixture(script);
  await redis?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function allocateFromProcesses(url: string): Promise<void> {
  const store = await openStore(url);
  try {
    const ipam = new Ipam(store);
    const { poolId } = await ipam.requestPool({ subnet: '10.50.0.0/24' });
    const lines = await runConcurrently(
      script,
      Array.from({ length: N }, (_, i) => [url, poolId, `proc-${i}`]),
      90_000,
    );
    const allocations = lines.map((line) => JSON.parse(line) as Allocation);
    const addresses = new Set(allocations.map((a) => a.address));
    expect(addresses.size).toBe(N);
    for (const a of allocations) expect(a.cidr).toMatch(/^10\.50\.0\.\d+\/24$/);
    expect(addresses.has('10.50.0.1')).toBe(false); // the gateway
    // Serial allocation with no losses: exactly .2 to .51.
    expect([...addresses].sort()).toEqual(Array.from({ length: N }, (_, i) => `10.50.0.${i + 2}`).sort());
    const recorded = await ipam.listAllocations(poolId);
    expect(recorded.map((r) => `${r.owner}=${r.address}`).sort()).toEqual(
      allocations.map((a) => `${a.owner}=${a.address}`).sort(),
    );
    expect((await ipam.getPool(poolId)).allocated).toBe(N);
  } finally {
    await store.close();
  }
}

describe(`${N} processes allocating from one /24 at once`, () => {
  it(
    'on LMDB get distinct addresses',
    () => allocateFromProcesses(`lmdb://${join(dir, 'state.lmdb')}`),
    120_000,
  );
  it('on Redis get distinct addresses', () => allocateFromProcesses(redis.url), 120_000);
});
