/**
 * The KvStore contract: one suite, registered once per backend (memory,
 * LMDB, Redis). Each test works under its own random prefix, so the
 * backend is shared by the whole file.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KvConflictError, KvInvalidKeyError, KvUnavailableError } from '../../../src/kv/errors.js';
import type { KvEvent, KvStore, KvWatch } from '../../../src/kv/store.js';
import { bundleFixture, removeFixture, runConcurrently } from '../../helpers/children.js';

export interface KvContractTarget {
  /** Another client of the shared backend (as another process would open it). */
  open(): Promise<KvStore>;
  /** openStore() URL for child processes; required when multiProcess is set. */
  url?: string;
  /** Take the backend down and bring it back (required when outage is set). */
  stop?(): Promise<void>;
  start?(): Promise<void>;
}

export interface KvContractOptions {
  setup(): Promise<KvContractTarget>;
  teardown?(): Promise<void>;
  /** The backend is shared between processes: run the N-process contention test. */
  multiProcess: boolean;
  /** The backend can be stopped: run the outage tests. */
  outage: boolean;
}

const TIMEOUT = Symbol('timeout');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pulls events from a watch with a bounded wait, never losing one to a timed-out pull. */
function reader(watch: KvWatch) {
  let pending: Promise<IteratorResult<KvEvent>> | undefined;
  const next = async (ms = 3000): Promise<KvEvent> => {
    pending ??= watch.next();
    const result = await Promise.race([pending, sleep(ms).then((): typeof TIMEOUT => TIMEOUT)]);
    if (result === TIMEOUT) throw new Error(`no watch event within ${ms} ms`);
    pending = undefined;
    if (result.done) throw new Error('watch ended');
    return result.value;
  };
  const none = async (ms: number): Promise<void> => {
    pending ??= watch.next();
    const result = await Promise.race([pending, sleep(ms).then((): typeof TIMEOUT => TIMEOUT)]);
    if (result !== TIMEOUT) throw new Error(`unexpected watch event ${JSON.stringify(result)}`);
  };
  return { next, none };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected an error with code ${code}`).toBeInstanceOf(Error);
  expect((err as { code?: string }).code).toBe(code);
  return err as Error;
}

export function kvContract(name: string, options: KvContractOptions): void {
  describe(`KvStore contract: ${name}`, () => {
    let target: KvContractTarget;
    let store: KvStore;
    let p: string;
    const extra: KvStore[] = [];

    const another = async (): Promise<KvStore> => {
      const s = await target.open();
      extra.push(s);
      return s;
    };

    beforeAll(async () => {
      target = await options.setup();
    }, 30_000);
    afterAll(async () => {
      await options.teardown?.();
    }, 30_000);
    beforeEach(async () => {
      store = await target.open();
      p = `netctl/v1/test/${randomUUID()}/`;
    });
    afterEach(async () => {
      await store.close();
      for (const s of extra.splice(0)) await s.close();
    });

    it('get of a missing key is undefined', async () => {
      expect(await store.get(`${p}missing`)).toBeUndefined();
    });

    it('put then get returns the value with a positive version; each write bumps it', async () => {
      const v1 = await store.put(`${p}a`, { name: 'web' });
      expect(v1).toBeGreaterThan(0);
      expect(await store.get(`${p}a`)).toEqual({ key: `${p}a`, value: { name: 'web' }, version: v1 });
      const v2 = await store.put(`${p}a`, { name: 'db' });
      expect(v2).toBeGreaterThan(v1);
      expect((await store.get(`${p}a`))?.value).toEqual({ name: 'db' });
    });

    it('versions are store-wide revisions: strictly increasing across keys and clients', async () => {
      const other = await another();
      const versions = [
        await store.put(`${p}a`, 1),
        await other.put(`${p}b`, 2),
        await store.put(`${p}a`, 3),
        await other.put(`${p}c`, 4),
      ];
      for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1]!);
    });

    it('values round-trip as JSON and reads are copies', async () => {
      const value = {
        s: 'ünïcödé ✓ \n "quoted"',
        n: -12.5,
        big: 2 ** 53 - 1,
        t: true,
        f: false,
        z: null,
        a: [1, 'two', { three: [3] }],
        nested: { deep: { deeper: [] } },
      };
      await store.put(`${p}v`, value);
      const got = await store.get(`${p}v`);
      expect(got?.value).toEqual(value);
      (got!.value as { n: number }).n = 99;
      expect((await store.get(`${p}v`))?.value).toMatchObject({ n: -12.5 });
      for (const scalar of [0, '', 'text', false, null, [] as never[]]) {
        await store.put(`${p}scalar`, scalar);
        expect((await store.get(`${p}scalar`))?.value).toEqual(scalar);
      }
    });

    it('refuses values JSON cannot carry, writing nothing', async () => {
      await expect(store.put(`${p}x`, undefined as never)).rejects.toThrow(TypeError);
      await expect(store.put(`${p}x`, { n: Number.NaN })).rejects.toThrow(TypeError);
      await expect(store.put(`${p}x`, { n: 1n } as never)).rejects.toThrow(TypeError);
      expect(await store.get(`${p}x`)).toBeUndefined();
    });

    it('refuses invalid keys with kv.invalid_key', async () => {
      for (const key of ['', `${p}a\nb`, `${p}\u0000`, `${p}\ud800`, `${p}${'x'.repeat(2000)}`]) {
        const err = await expectCode(store.put(key, 1), 'kv.invalid_key');
        expect(err).toBeInstanceOf(KvInvalidKeyError);
      }
      await expectCode(store.get(''), 'kv.invalid_key');
    });

    it('lists the keys under a prefix in byte order, honouring limit', async () => {
      const keys = [`${p}b`, `${p}a`, `${p}é`, `${p}z`, `${p}b/c`, `${p}b/a`];
      for (const [i, key] of keys.entries()) await store.put(key, i);
      await store.put(`${p.slice(0, -1)}0/outside`, 'no');
      const listed = await store.list(p);
      expect(listed.map((e) => e.key)).toEqual([`${p}a`, `${p}b`, `${p}b/a`, `${p}b/c`, `${p}z`, `${p}é`]);
      expect(listed.find((e) => e.key === `${p}b/c`)?.value).toBe(4);
      expect((await store.list(`${p}b/`)).map((e) => e.key)).toEqual([`${p}b/a`, `${p}b/c`]);
      expect((await store.list(p, { limit: 2 })).map((e) => e.key)).toEqual([`${p}a`, `${p}b`]);
      expect(await store.list(`${p}nothing/`)).toEqual([]);
      const v = await store.put(`${p}a`, 'again');
      expect((await store.list(p)).find((e) => e.key === `${p}a`)).toEqual({
        key: `${p}a`,
        value: 'again',
        version: v,
      });
    });

    it('delete reports whether the key existed, and deleting twice is fine', async () => {
      await store.put(`${p}d`, 1);
      expect(await store.delete(`${p}d`)).toBe(true);
      expect(await store.get(`${p}d`)).toBeUndefined();
      expect(await store.delete(`${p}d`)).toBe(false);
      expect(await store.list(p)).toEqual([]);
    });

    it('a conditional delete checks the version', async () => {
      const v = await store.put(`${p}d`, 1);
      const err = await expectCode(store.delete(`${p}d`, { version: v + 1000 }), 'kv.conflict');
      expect(err).toBeInstanceOf(KvConflictError);
      expect(await store.get(`${p}d`)).toBeDefined();
      expect(await store.delete(`${p}d`, { version: v })).toBe(true);
    });

    it('cas writes at the current version and conflicts on a stale one, writing nothing', async () => {
      const v1 = await store.put(`${p}c`, 'one');
      const v2 = await store.cas(`${p}c`, v1, 'two');
      expect(v2).toBeGreaterThan(v1);
      const err = (await expectCode(store.cas(`${p}c`, v1, 'three'), 'kv.conflict')) as KvConflictError;
      expect(err).toMatchObject({ key: `${p}c`, expected: v1, actual: v2 });
      expect(err.message).toContain(`${p}c`);
      expect(await store.get(`${p}c`)).toEqual({ key: `${p}c`, value: 'two', version: v2 });
      await expectCode(store.cas(`${p}gone`, 5, 'x'), 'kv.conflict');
      expect(await store.get(`${p}gone`)).toBeUndefined();
    });

    it('cas at version 0 creates only', async () => {
      const v = await store.cas(`${p}new`, 0, 'first');
      expect(v).toBeGreaterThan(0);
      const err = (await expectCode(store.cas(`${p}new`, 0, 'second'), 'kv.conflict')) as KvConflictError;
      expect(err.actual).toBe(v);
      expect((await store.get(`${p}new`))?.value).toBe('first');
    });

    it('txn applies every write atomically, stamped with one revision', async () => {
      const va = await store.put(`${p}a`, 'a');
      await store.put(`${p}gone`, 'x');
      const result = await store.txn(
        [
          { key: `${p}a`, version: va },
          { key: `${p}b`, version: 0 },
        ],
        [
          { type: 'put', key: `${p}a`, value: 'a2' },
          { type: 'put', key: `${p}b`, value: 'b' },
          { type: 'delete', key: `${p}gone` },
          { type: 'delete', key: `${p}never` },
        ],
      );
      expect(result.revision).toBeGreaterThan(va);
      expect(result.deleted).toBe(1);
      expect(await store.list(p)).toEqual([
        { key: `${p}a`, value: 'a2', version: result.revision },
        { key: `${p}b`, value: 'b', version: result.revision },
      ]);
      expect(await store.txn([{ key: `${p}b`, version: result.revision }], [])).toEqual({
        revision: 0,
        deleted: 0,
      });
    });

    it('txn with one failed compare writes nothing', async () => {
      const va = await store.put(`${p}a`, 'a');
      const vb = await store.put(`${p}b`, 'b');
      const before = await store.list(p);
      const err = (await expectCode(
        store.txn(
          [
            { key: `${p}a`, version: va },
            { key: `${p}b`, version: vb - 1 },
          ],
          [
            { type: 'put', key: `${p}a`, value: 'changed' },
            { type: 'delete', key: `${p}b` },
            { type: 'put', key: `${p}c`, value: 'new' },
          ],
        ),
        'kv.conflict',
      )) as KvConflictError;
      expect(err.key).toBe(`${p}b`);
      expect(await store.list(p)).toEqual(before);
    });

    it('txn refuses to write one key twice', async () => {
      await expect(
        store.txn(
          [],
          [
            { type: 'put', key: `${p}a`, value: 1 },
            { type: 'delete', key: `${p}a` },
          ],
        ),
      ).rejects.toThrow(/more than once/);
      expect(await store.get(`${p}a`)).toBeUndefined();
    });

    it('concurrent CAS increments from two clients lose no update', async () => {
      const clients = [store, await another()];
      const key = `${p}counter`;
      const increment = async (s: KvStore) => {
        for (;;) {
          const e = await s.get(key);
          try {
            await s.cas(key, e?.version ?? 0, ((e?.value as number | undefined) ?? 0) + 1);
            return;
          } catch (err) {
            if (!(err instanceof KvConflictError)) throw err;
          }
        }
      };
      await Promise.all(
        clients.flatMap((s) =>
          Array.from({ length: 5 }, async () => {
            for (let i = 0; i < 20; i++) await increment(s);
          }),
        ),
      );
      expect((await store.get(key))?.value).toBe(200);
    });

    it('watch sees puts and deletes made by another client, in order', async () => {
      const watch = await store.watch(p);
      const events = reader(watch);
      const writer = await another();
      const v1 = await writer.put(`${p}a`, { n: 1 });
      const v2 = await writer.put(`${p}b`, 'b');
      const v3 = await writer.cas(`${p}a`, v1, { n: 2 });
      await writer.delete(`${p}b`);
      const { revision: v5 } = await writer.txn([], [{ type: 'put', key: `${p}c`, value: 'c' }]);
      expect(await events.next()).toEqual({ type: 'put', key: `${p}a`, value: { n: 1 }, version: v1 });
      expect(await events.next()).toEqual({ type: 'put', key: `${p}b`, value: 'b', version: v2 });
      expect(await events.next()).toEqual({ type: 'put', key: `${p}a`, value: { n: 2 }, version: v3 });
      const del = await events.next();
      expect(del).toMatchObject({ type: 'delete', key: `${p}b` });
      expect(del.version).toBeGreaterThan(v3);
      expect(await events.next()).toEqual({ type: 'put', key: `${p}c`, value: 'c', version: v5 });
      await events.none(300);
      watch.close();
    });

    it('watch reports only keys under its prefix, and nothing from before it started', async () => {
      await store.put(`${p}in/before`, 0);
      const watch = await store.watch(`${p}in/`);
      const events = reader(watch);
      await store.put(`${p}out`, 1);
      await store.put(`${p}inside`, 2);
      const v = await store.put(`${p}in/x`, 3);
      expect(await events.next()).toEqual({ type: 'put', key: `${p}in/x`, value: 3, version: v });
      await events.none(300);
      watch.close();
    });

    it('watch with initial first reports what exists', async () => {
      const va = await store.put(`${p}a`, 'a');
      const vb = await store.put(`${p}b`, 'b');
      const watch = await store.watch(p, { initial: true });
      const events = reader(watch);
      const initial = [await events.next(), await events.next()].sort((x, y) => x.key.localeCompare(y.key));
      expect(initial).toEqual([
        { type: 'put', key: `${p}a`, value: 'a', version: va },
        { type: 'put', key: `${p}b`, value: 'b', version: vb },
      ]);
      const vc = await store.put(`${p}c`, 'c');
      expect(await events.next()).toEqual({ type: 'put', key: `${p}c`, value: 'c', version: vc });
      watch.close();
    });

    it('closing a watch (or breaking out of for-await) ends it', async () => {
      const watch = await store.watch(p);
      const seen: KvEvent[] = [];
      const loop = (async () => {
        for await (const event of watch) {
          seen.push(event);
          if (seen.length === 2) break;
        }
      })();
      await store.put(`${p}1`, 1);
      await store.put(`${p}2`, 2);
      await loop;
      expect(seen.map((e) => e.key)).toEqual([`${p}1`, `${p}2`]);
      expect(await watch.next()).toEqual({ value: undefined, done: true });
      const second = await store.watch(p);
      const pending = second.next();
      second.close();
      expect(await pending).toEqual({ value: undefined, done: true });
    });

    it('a key written with a TTL expires, and watchers see it go', async () => {
      const watch = await store.watch(p);
      const events = reader(watch);
      const v = await store.put(`${p}lease`, { host: 'h1' }, { ttlMs: 300 });
      await store.put(`${p}keep`, 'k');
      expect(await events.next()).toMatchObject({ type: 'put', key: `${p}lease`, version: v });
      expect(await events.next()).toMatchObject({ type: 'put', key: `${p}keep` });
      expect((await store.get(`${p}lease`))?.value).toEqual({ host: 'h1' });
      const gone = await events.next(5000);
      expect(gone).toMatchObject({ type: 'delete', key: `${p}lease` });
      expect(gone.version).toBeGreaterThan(v);
      expect(await store.get(`${p}lease`)).toBeUndefined();
      expect((await store.list(p)).map((e) => e.key)).toEqual([`${p}keep`]);
      // An expired key is absent for compares too: create-only succeeds again.
      expect(await store.cas(`${p}lease`, 0, { host: 'h2' })).toBeGreaterThan(0);
      watch.close();
    });

    it('expiry is exact for reads, before any sweep', async () => {
      await store.put(`${p}short`, 1, { ttlMs: 50 });
      await sleep(120);
      expect(await store.get(`${p}short`)).toBeUndefined();
      expect(await store.list(p)).toEqual([]);
      await expectCode(store.cas(`${p}short`, 1, 2), 'kv.conflict');
    });

    it('rewriting a TTL key renews it; writing it without a TTL makes it permanent', async () => {
      await store.put(`${p}l`, 1, { ttlMs: 200 });
      await sleep(120);
      await store.put(`${p}l`, 2, { ttlMs: 200 });
      await sleep(120);
      expect((await store.get(`${p}l`))?.value).toBe(2);
      await store.put(`${p}l`, 3);
      await sleep(250);
      expect((await store.get(`${p}l`))?.value).toBe(3);
    });

    it('calls after close fail with kv.unavailable', async () => {
      const s = await target.open();
      await s.close();
      const err = await expectCode(s.get(`${p}x`), 'kv.unavailable');
      expect(err).toBeInstanceOf(KvUnavailableError);
      await expectCode(s.put(`${p}x`, 1), 'kv.unavailable');
      await s.close();
    });

    // Registered only for backends that have the capability (memory lives in one process, LMDB cannot be "down").
    if (options.multiProcess)
      it('N processes doing CAS increments on one key lose no update, and a watch in another process sees the end', async () => {
        const N = 8;
        const M = 50;
        expect(target.url, 'multi-process target needs a url').toBeTruthy();
        const key = `${p}counter`;
        const watch = await store.watch(key);
        const events = reader(watch);
        const script = await bundleFixture(new URL('./fixtures/cas-increment.ts', import.meta.url).pathname);
        let results: string[];
        try {
          results = await runConcurrently(
            script,
            Array.from({ length: N }, () => [target.url!, key, String(M)]),
          );
        } finally {
          removeFixture(script);
        }
        const conflicts = results.reduce(
          (sum, line) => sum + (JSON.parse(line) as { conflicts: number }).conflicts,
          0,
        );
        expect((await store.get(key))?.value).toBe(N * M);
        // Contention really happened (else this proves little).
        expect(conflicts).toBeGreaterThan(0);
        let last: KvEvent | undefined;
        while (!(last?.type === 'put' && last.value === N * M)) last = await events.next(5000);
        watch.close();
      }, 120_000);

    if (options.outage)
      it('while the backend is down calls fail fast with kv.unavailable; it heals after', async () => {
        const watch = await store.watch(p);
        const events = reader(watch);
        await store.put(`${p}before`, 1);
        expect(await events.next()).toMatchObject({ key: `${p}before` });
        await target.stop!();
        try {
          for (const call of [
            () => store.get(`${p}before`),
            () => store.put(`${p}x`, 1),
            () => store.cas(`${p}x`, 0, 1),
            () => store.list(p),
            () => store.txn([], [{ type: 'put', key: `${p}y`, value: 1 }]),
            () => store.watch(p),
          ]) {
            const started = Date.now();
            await expectCode(call(), 'kv.unavailable');
            expect(Date.now() - started).toBeLessThan(2000);
          }
        } finally {
          await target.start!();
        }
        // Reconnects by itself, with backoff.
        const deadline = Date.now() + 10_000;
        let version = 0;
        while (!version) {
          try {
            version = await store.put(`${p}after`, 2);
          } catch (err) {
            if (!(err instanceof KvUnavailableError) || Date.now() > deadline) throw err;
            await sleep(50);
          }
        }
        expect((await store.get(`${p}after`))?.value).toBe(2);
        // The open watch survived the outage and sees new writes.
        let event = await events.next(10_000);
        while (event.key !== `${p}after`) event = await events.next(10_000);
        expect(event).toMatchObject({ type: 'put', value: 2 });
        watch.close();
      }, 60_000);
  });
}
