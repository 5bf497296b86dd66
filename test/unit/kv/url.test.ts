import { describe, expect, it } from 'vitest';
import { KvInvalidUrlError } from '../../../src/kv/errors.js';
import { parseStoreUrl } from '../../../src/kv/index.js';

describe('parseStoreUrl', () => {
  it('defaults to LMDB in the state directory', () => {
    expect(parseStoreUrl(undefined, { stateDir: '/tmp/x/' })).toEqual({
      backend: 'lmdb',
      path: '/tmp/x/state.lmdb',
      durable: true,
    });
  });

  it('reads lmdb, redis, rediss, redis+unix and unix URLs', () => {
    expect(parseStoreUrl('lmdb:///var/tmp/s.lmdb?sync=false')).toEqual({
      backend: 'lmdb',
      path: '/var/tmp/s.lmdb',
      durable: false,
    });
    expect(parseStoreUrl('redis://10.0.0.5:6380/3')).toMatchObject({
      backend: 'redis',
      host: '10.0.0.5',
      port: 6380,
      db: 3,
      tls: false,
      timeoutMs: 2000,
      resyncMs: 5000,
    });
    expect(parseStoreUrl('redis://redis.example')).toMatchObject({
      host: 'redis.example',
      port: 6379,
      db: 0,
    });
    expect(parseStoreUrl('rediss://u:p%40ss@[fd00::1]:7000/1?timeout=500&resync=1000')).toMatchObject({
      host: 'fd00::1',
      port: 7000,
      db: 1,
      tls: true,
      username: 'u',
      password: 'p@ss',
      timeoutMs: 500,
      resyncMs: 1000,
    });
    expect(parseStoreUrl('redis+unix:///run/redis/redis.sock?db=2')).toMatchObject({
      backend: 'redis',
      path: '/run/redis/redis.sock',
      db: 2,
    });
    expect(parseStoreUrl('unix:///tmp/r.sock')).toMatchObject({ path: '/tmp/r.sock', db: 0 });
  });

  it.each([
    ['not a url', /not a URL/],
    ['etcd://127.0.0.1:2379', /unsupported scheme etcd/],
    ['redis://h/notanumber', /database "notanumber" is not a number/],
    ['redis://h/0?timeout=-1', /timeout must be an integer/],
    ['redis+unix://host/sock', /redis\+unix:\/\/\/absolute/],
    ['lmdb://host/x', /no host/],
    ['lmdb:///x?sync=maybe', /sync must be true or false/],
  ])('refuses %s with kv.invalid_url', (url, message) => {
    let err: unknown;
    try {
      parseStoreUrl(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvInvalidUrlError);
    expect(err).toMatchObject({ code: 'kv.invalid_url', message: expect.stringMatching(message) });
  });
});
