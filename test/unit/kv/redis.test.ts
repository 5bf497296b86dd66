import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/kv/index.js';
import { type RedisServer, startRedisServer } from '../../../src/kv/testing/redis-server.js';
import { kvContract } from './contract.js';

let server: RedisServer;

kvContract('redis', {
  multiProcess: true,
  outage: true,
  async setup() {
    server = await startRedisServer();
    // A short resync bounds how long a TTL expiry takes to reach watchers.
    const url = `${server.url}?resync=200`;
    return {
      open: () => openStore(url),
      url,
      stop: () => server.stop(),
      start: () => server.restart(),
    };
  },
  async teardown() {
    await server?.destroy();
  },
});

describe('RedisStore specifics', () => {
  let own: RedisServer;
  beforeAll(async () => {
    own = await startRedisServer();
  });
  afterAll(async () => {
    await own?.destroy();
  });

  it('a change whose notification was lost reaches watchers by the periodic resync', async () => {
    const store = await openStore(`${own.url}?resync=100`);
    const raw = new Redis({ path: own.socket });
    try {
      const watch = await store.watch('netctl/v1/test/lost/');
      // Written the way our scripts write, minus the PUBLISH: a lost message.
      await raw.hset('netctl/v1/test/lost/k', 'v', '"quiet"', 'r', String(Date.now() * 1000 + 10 ** 9));
      await raw.zadd('netctl:index', 0, 'netctl/v1/test/lost/k');
      const started = Date.now();
      const event = await watch.next();
      expect(event.value).toMatchObject({ type: 'put', key: 'netctl/v1/test/lost/k', value: 'quiet' });
      expect(Date.now() - started).toBeLessThan(2000);
      watch.close();
    } finally {
      raw.disconnect();
      await store.close();
    }
  });

  it('revisions keep growing across a restart that lost the data, so old versions never match', async () => {
    const store = await openStore(own.url);
    try {
      const before = await store.put('netctl/v1/test/epoch', 'old');
      await own.restart();
      let after = 0;
      for (let i = 0; !after; i++) {
        try {
          after = await store.put('netctl/v1/test/epoch', 'new');
        } catch (err) {
          if (i > 200) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      expect(after).toBeGreaterThan(before);
      await expect(store.cas('netctl/v1/test/epoch', before, 'stale')).rejects.toMatchObject({
        code: 'kv.conflict',
      });
    } finally {
      await store.close();
    }
  });

  it('connecting to a server that is not there fails fast with kv.unavailable', async () => {
    const started = Date.now();
    await expect(openStore(`redis+unix://${own.socket}.missing`)).rejects.toMatchObject({
      code: 'kv.unavailable',
    });
    await expect(openStore('redis://127.0.0.1:1/0?timeout=500')).rejects.toMatchObject({
      code: 'kv.unavailable',
    });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
