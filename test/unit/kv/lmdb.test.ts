import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/kv/index.js';
import { LmdbStore } from '../../../src/kv/lmdb.js';
import { bundleFixture, removeFixture, runConcurrently } from '../../helpers/children.js';
import { kvContract } from './contract.js';

const dir = mkdtempSync(join(tmpdir(), 'netctl-kv-lmdb-'));
const path = join(dir, 'state.lmdb');

kvContract('lmdb', {
  multiProcess: true,
  outage: false,
  async setup() {
    return { open: async () => LmdbStore.open(path), url: `lmdb://${path}` };
  },
});

// After every describe of this file (the specifics below write there too).
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LmdbStore specifics', () => {
  it('a watcher that fell behind the trimmed change log resyncs to the net state', async () => {
    const small = join(dir, 'small.lmdb');
    const reader = LmdbStore.open(small, { logKeep: 5 });
    const writer = LmdbStore.open(small, { logKeep: 5 });
    try {
      await writer.put('netctl/v1/test/b', 'b');
      const watch = await reader.watch('netctl/v1/test/');
      // No timer can run between these awaits: the poller wakes up to find
      // that the log no longer holds the revisions it needs.
      for (let i = 0; i < 20; i++) await writer.put('netctl/v1/test/a', i);
      await writer.delete('netctl/v1/test/b');
      const events = [(await watch.next()).value, (await watch.next()).value];
      expect(events.map((e) => [e?.type, e?.key, e?.type === 'put' ? e.value : undefined]).sort()).toEqual([
        ['delete', 'netctl/v1/test/b', undefined],
        ['put', 'netctl/v1/test/a', 19],
      ]);
      watch.close();
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('opens by URL, creating the directory, with sync=false for throwaway state', async () => {
    const path2 = join(dir, 'nested/deeper/state.lmdb');
    const store = await openStore(`lmdb://${path2}?sync=false`);
    try {
      expect(store.backend).toBe('lmdb');
      await store.put('netctl/v1/test/x', 1);
      expect(existsSync(path2)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('without a URL uses $NETCTL_STATE_DIR/state.lmdb', async () => {
    const saved = process.env.NETCTL_STATE_DIR;
    process.env.NETCTL_STATE_DIR = join(dir, 'from-env');
    try {
      const store = await openStore();
      await store.put('netctl/v1/test/x', 1);
      await store.close();
      expect(existsSync(join(dir, 'from-env/state.lmdb'))).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.NETCTL_STATE_DIR;
      else process.env.NETCTL_STATE_DIR = saved;
    }
  });

  it('processes creating one store file at once all open it (the first CNI ADDs on a fresh host)', async () => {
    const script = await bundleFixture(new URL('./fixtures/open-fresh.ts', import.meta.url).pathname);
    try {
      for (let round = 0; round < 3; round++) {
        const fresh = join(dir, `fresh-${round}`, 'state.lmdb');
        const results = await runConcurrently(
          script,
          Array.from({ length: 20 }, () => [fresh]),
        );
        expect(results.map((line) => JSON.parse(line))).toEqual(results.map(() => ({ ok: true })));
        const store = LmdbStore.open(fresh);
        expect(await store.list('netctl/v1/test/opened/')).toHaveLength(20);
        await store.close();
        // The drafts each creator built aside are gone.
        expect(readdirSync(join(dir, `fresh-${round}`)).sort()).toEqual(['state.lmdb', 'state.lmdb-lock']);
      }
    } finally {
      removeFixture(script);
    }
  }, 120_000);

  it('a draft left by a creator that died is removed when the next process creates the file', async () => {
    const home = join(dir, 'died');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    expect(dead).toBeGreaterThan(0);
    await openStore(`lmdb://${join(home, 'x')}`).then((s) => s.close()); // the directory
    writeFileSync(join(home, `state.lmdb.new-${dead}`), 'half-built');
    writeFileSync(join(home, `state.lmdb.new-${dead}-lock`), '');
    writeFileSync(join(home, `state.lmdb.new-${process.ppid}`), 'a live creator');
    const store = LmdbStore.open(join(home, 'state.lmdb'));
    await store.put('netctl/v1/test/x', 1);
    await store.close();
    expect(
      readdirSync(home)
        .filter((name) => name.startsWith('state.lmdb'))
        .sort(),
    ).toEqual(['state.lmdb', 'state.lmdb-lock', `state.lmdb.new-${process.ppid}`]);
  });

  it('a path it cannot create fails with kv.unavailable', async () => {
    writeFileSync(join(dir, 'a-file'), '');
    await expect(openStore(`lmdb://${join(dir, 'a-file/sub/state.lmdb')}`)).rejects.toMatchObject({
      code: 'kv.unavailable',
    });
  });
});
