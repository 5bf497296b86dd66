/**
 * bench/ipam: address allocation cost on each store (issue 4).
 *
 * A /16 is filled from its first to its last address (65,533 allocations:
 * 65,536 minus network, broadcast and gateway), one request after another,
 * each timed. Reported per backend:
 *   - allocations per second over the whole fill;
 *   - the cost of the first allocations against the cost around the
 *     65,000th: median of allocations 1-1,000 vs 64,001-65,000 (single
 *     samples are too noisy to compare; the very first also pays for JIT
 *     warm-up, which would flatter the ratio). Target: last ≤ 2× first;
 *   - releases per second (5,000 of them, spread over the pool).
 * Backends: LMDB as the default runs it (a file in a temp dir, durable
 * commits), Redis (a private redis-server on a unix socket, started and
 * stopped here), and the in-memory fake for the cost of the IPAM logic
 * alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipam } from '../src/ipam/ipam.js';
import { type KvStore, openStore } from '../src/kv/index.js';
import { MemoryStore } from '../src/kv/testing/memory.js';
import { startRedisServer } from '../src/kv/testing/redis-server.js';
import { withCleanup } from './lib/cleanup.js';
import { type Figures, round } from './lib/figures.js';
import { median, p95 } from './lib/stats.js';
import { fixed, printTable, times } from './lib/table.js';
import { elapsedMs } from './lib/timing.js';

export const description = 'IPAM: allocations/s on LMDB and Redis; 1st vs 65,000th allocation in a /16';

const WINDOW = 1000;
const RELEASES = 5000;

interface Result {
  allocations: number;
  allocPerSec: number;
  /** µs per allocation, medians and p95 of the first and the last window. */
  firstMedian: number;
  firstP95: number;
  lastMedian: number;
  lastP95: number;
  firstSingle: number;
  lastSingle: number;
  releasePerSec: number;
}

async function fillSlash16(store: KvStore, subnet: string): Promise<Result> {
  const ipam = new Ipam(store);
  const { poolId } = await ipam.requestPool({ subnet });
  const us: number[] = [];
  const addresses: string[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; ; i++) {
    const t = process.hrtime.bigint();
    let address: string;
    try {
      address = (await ipam.requestAddress(poolId, { owner: `bench-${i}` })).address;
    } catch (err) {
      if ((err as { code?: string }).code === 'ipam.no_available_ip') break;
      throw err;
    }
    us.push(elapsedMs(t) * 1000);
    addresses.push(address);
  }
  const fillMs = elapsedMs(started);
  if (us.length !== 65_533) throw new Error(`a /16 gave ${us.length} addresses, expected 65,533`);
  if (new Set(addresses).size !== us.length) throw new Error('an address was handed out twice');
  const first = us.slice(0, WINDOW);
  const last = us.slice(65_000 - WINDOW, 65_000);
  // Release a spread-out sample: every 13th address.
  const step = Math.floor(addresses.length / RELEASES);
  const releaseStarted = process.hrtime.bigint();
  for (let i = 0; i < RELEASES; i++) await ipam.releaseAddress(poolId, addresses[i * step]!);
  const releaseMs = elapsedMs(releaseStarted);
  await ipam.releasePool(poolId, { force: true });
  return {
    allocations: us.length,
    allocPerSec: us.length / (fillMs / 1000),
    firstMedian: median(first),
    firstP95: p95(first),
    lastMedian: median(last),
    lastP95: p95(last),
    firstSingle: us[0]!,
    lastSingle: us[64_999]!,
    releasePerSec: RELEASES / (releaseMs / 1000),
  };
}

export default async function run(): Promise<Figures> {
  return withCleanup(async (cleanup) => {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-bench-ipam-'));
    cleanup.defer('remove temp dir', () => rmSync(dir, { recursive: true, force: true }));
    const redis = await startRedisServer();
    cleanup.defer('stop redis-server', () => redis.destroy());

    const results: [string, Result][] = [];
    const lmdb = await openStore(`lmdb://${join(dir, 'state.lmdb')}`);
    cleanup.defer('close lmdb', () => lmdb.close());
    results.push(['lmdb', await fillSlash16(lmdb, '10.16.0.0/16')]);
    const rstore = await openStore(redis.url);
    cleanup.defer('close redis client', () => rstore.close());
    results.push(['redis', await fillSlash16(rstore, '10.17.0.0/16')]);
    results.push(['memory', await fillSlash16(new MemoryStore(), '10.18.0.0/16')]);

    printTable({
      title: 'IPAM: fill a /16 (65,533 allocations), one request at a time',
      head: [
        'store',
        'alloc/s',
        'first 1k median µs',
        'p95',
        '64,001-65,000 median µs',
        'p95',
        'last/first',
        '1st µs',
        '65,000th µs',
        'release/s',
      ],
      rows: results.map(([name, r]) => [
        name,
        fixed(r.allocPerSec, 0),
        fixed(r.firstMedian, 1),
        fixed(r.firstP95, 1),
        fixed(r.lastMedian, 1),
        fixed(r.lastP95, 1),
        times(r.lastMedian / r.firstMedian),
        fixed(r.firstSingle, 1),
        fixed(r.lastSingle, 1),
        fixed(r.releasePerSec, 0),
      ]),
      notes: [
        'last/first: median of allocations 64,001-65,000 over median of 1-1,000 (target ≤ 2×).',
        'lmdb: durable commits (fsync) as the default store runs; redis: unix socket; memory: IPAM logic alone.',
      ],
    });

    const [, l] = results[0]!;
    const [, r] = results[1]!;
    const [, m] = results[2]!;
    return {
      bench: 'ipam',
      allocations: l.allocations,
      lmdb_alloc_per_s: round(l.allocPerSec),
      redis_alloc_per_s: round(r.allocPerSec),
      memory_alloc_per_s: round(m.allocPerSec),
      first_alloc_us: round(l.firstMedian),
      last_alloc_us: round(l.lastMedian),
      last_first_ratio: round(l.lastMedian / l.firstMedian),
      redis_first_alloc_us: round(r.firstMedian),
      redis_last_alloc_us: round(r.lastMedian),
      redis_last_first_ratio: round(r.lastMedian / r.firstMedian),
      lmdb_release_per_s: round(l.releasePerSec),
      redis_release_per_s: round(r.releasePerSec),
    };
  });
}
