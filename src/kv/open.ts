/**
 * Where `--kv URL` points and how it is opened: the store factory, apart
 * from the contract (store.ts) that the backends implement, so that no
 * backend and the contract import each other.
 */
import { KvInvalidUrlError } from './errors.js';
import type { KvStore, StoreLocation } from './store.js';

/** Default directory of the embedded store (the daemon, the CLI and CNI calls share it). */
export const DEFAULT_STATE_DIR = '/var/lib/netctl';
export const STATE_FILE = 'state.lmdb';

export interface OpenStoreOptions {
  /** Directory of the LMDB file when no URL is given; else $NETCTL_STATE_DIR, else /var/lib/netctl. */
  stateDir?: string;
}

function intParam(url: string, params: URLSearchParams, name: string, fallback: number, min: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min)
    throw new KvInvalidUrlError(url, `${name} must be an integer >= ${min}`);
  return n;
}

/**
 * Where `--kv URL` points. Accepted forms:
 *   (none)                                  LMDB in the state dir
 *   lmdb:///path/to/state.lmdb[?sync=false] LMDB at that file
 *   redis://[user:pass@]host[:port][/db]    Redis over TCP (rediss:// for TLS)
 *   redis+unix:///path/redis.sock[?db=N]    Redis on a unix socket (also unix://)
 * Redis URLs take `timeout=MS` and `resync=MS`.
 */
export function parseStoreUrl(url: string | undefined, options: OpenStoreOptions = {}): StoreLocation {
  if (url === undefined || url === '') {
    const dir = options.stateDir ?? process.env.NETCTL_STATE_DIR ?? DEFAULT_STATE_DIR;
    return { backend: 'lmdb', path: `${dir.replace(/\/+$/, '')}/${STATE_FILE}`, durable: true };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KvInvalidUrlError(
      url,
      'not a URL (expected lmdb://, redis://, rediss://, redis+unix:// or unix://)',
    );
  }
  const params = u.searchParams;
  switch (u.protocol) {
    case 'lmdb:': {
      if (u.host !== '') throw new KvInvalidUrlError(url, 'an lmdb URL has no host: lmdb:///absolute/path');
      const path = decodeURIComponent(u.pathname);
      if (path === '/' || path === '') throw new KvInvalidUrlError(url, 'missing file path');
      const sync = params.get('sync');
      if (sync !== null && sync !== 'true' && sync !== 'false')
        throw new KvInvalidUrlError(url, 'sync must be true or false');
      return { backend: 'lmdb', path, durable: sync !== 'false' };
    }
    case 'redis:':
    case 'rediss:':
    case 'redis+unix:':
    case 'unix:': {
      const unix = u.protocol === 'redis+unix:' || u.protocol === 'unix:';
      const common = {
        backend: 'redis' as const,
        tls: u.protocol === 'rediss:',
        timeoutMs: intParam(url, params, 'timeout', 2000, 1),
        resyncMs: intParam(url, params, 'resync', 5000, 10),
        ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
        ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      };
      if (unix) {
        const path = decodeURIComponent(u.pathname);
        if (u.host !== '' || path === '' || path === '/') {
          throw new KvInvalidUrlError(url, 'expected redis+unix:///absolute/path/to/redis.sock');
        }
        return { ...common, path, db: intParam(url, params, 'db', 0, 0) };
      }
      if (!u.hostname) throw new KvInvalidUrlError(url, 'missing host');
      const dbPath = u.pathname.replace(/^\//, '');
      let db = 0;
      if (dbPath !== '') {
        db = Number(dbPath);
        if (!Number.isSafeInteger(db) || db < 0)
          throw new KvInvalidUrlError(url, `database ${JSON.stringify(dbPath)} is not a number`);
      }
      return {
        ...common,
        // WHATWG URL keeps IPv6 brackets in hostname.
        host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port ? Number(u.port) : 6379,
        db,
      };
    }
    default:
      throw new KvInvalidUrlError(url, `unsupported scheme ${u.protocol.replace(/:$/, '')}`);
  }
}

/**
 * Open the store `--kv URL` names (see parseStoreUrl). Backends are loaded on
 * demand so a CNI call on LMDB never loads the Redis client, and vice versa.
 */
export async function openStore(url?: string, options: OpenStoreOptions = {}): Promise<KvStore> {
  const location = parseStoreUrl(url, options);
  if (location.backend === 'lmdb') {
    const { LmdbStore } = await import('./lmdb.js');
    return LmdbStore.open(location.path, { durable: location.durable });
  }
  const { RedisStore } = await import('./redis.js');
  return RedisStore.connect(location);
}
