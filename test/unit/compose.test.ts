/**
 * docker-compose.test.yml must stay a valid compose file: CI has no Docker
 * engine for `docker compose config`, so parse it and check its shape.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Service {
  image?: unknown;
  command?: unknown;
  ports?: unknown;
  healthcheck?: { test?: unknown };
}

const file = new URL('../../docker-compose.test.yml', import.meta.url);

describe('docker-compose.test.yml', () => {
  const doc = parse(readFileSync(file, 'utf8'), { strict: true, uniqueKeys: true }) as {
    services?: Record<string, Service>;
  };

  it('defines redis, etcd and consul with pinned images', () => {
    expect(Object.keys(doc.services ?? {}).sort()).toEqual(['consul', 'etcd', 'redis']);
    for (const [name, service] of Object.entries(doc.services!)) {
      expect(service.image, name).toMatch(/^[\w./-]+:[\w.-]+$/);
      expect(service.image, `${name} must not float on :latest`).not.toMatch(/:latest$/);
    }
    expect(doc.services!.redis!.image).toMatch(/^redis:7/);
  });

  it('publishes each store on loopback only, with a health check', () => {
    const expected: Record<string, string> = { redis: '6379', etcd: '2379', consul: '8500' };
    for (const [name, port] of Object.entries(expected)) {
      const service = doc.services![name]!;
      expect(service.ports, name).toEqual([`127.0.0.1:${port}:${port}`]);
      expect(Array.isArray(service.healthcheck?.test), name).toBe(true);
      expect(Array.isArray(service.command), name).toBe(true);
    }
  });
});
