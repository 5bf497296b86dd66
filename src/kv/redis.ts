/**
 * Redis store (ioredis): `--kv redis://host:6379/0` or a unix socket. Holds
 * scope-global state (overlay networks, cluster IPAM) for several hosts.
 *
 * - Each key is a hash {v: JSON value, r: revision}; `netctl:rev` is the
 *   store-wide revision counter and the sorted set `netctl:index` lists every
 *   key (score 0, so ZRANGEBYLEX gives prefix listings without SCAN).
 * - Every write is one Lua script: compares, writes, revision bump, index
 *   update and change notification happen atomically — a CAS conflict or a
 *   crash never leaves a partial write.
 * - Watch: the write scripts PUBLISH each change on `netctl:events:<db>`; a
 *   watch also relists its prefix every `resyncMs` and after a reconnect, so a
 *   message lost while the subscriber was down heals (WatchTracker drops
 *   what was already seen). TTL keys expire in Redis itself; their index
 *   entries are reaped, and their deletes announced, by the next listing.
 * - Availability: no offline queue and no per-request retries, so while Redis
 *   is down every call fails at once with KvUnavailableError (a call in
 *   flight when the connection drops fails too; its outcome is unknown). A
 *   `commandTimeout` bounds a call to a server that stopped answering. The
 *   client reconnects in the background with capped exponential backoff.
 *
 * Scripts touch keys they do not declare, so this needs a standalone Redis
 * (or one shard), not Redis Cluster.
 */
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
import { KvBackendError, KvConflictError, KvError, KvUnavailableError } from './errors.js';
import {
  assertKey,
  assertPrefix,
  encodeValue,
  type JsonValue,
  type KvCompare,
  type KvEntry,
  type KvEvent,
  type KvOp,
  type KvStore,
  type KvTxnResult,
  type KvWatch,
  type ListOptions,
  type StoreLocation,
  TxnWrites,
  validateTxn,
  type WatchOptions,
} from './store.js';
import { WatchQueue, WatchTracker } from './watch.js';

type RedisLocation = Extract<StoreLocation, { backend: 'redis' }>;

const REVISION_KEY = 'netctl:rev';
const INDEX_KEY = 'netctl:index';

/**
 * The revision counter, created at the caller's clock in microseconds when
 * missing. A Redis that lost its data (restart without persistence) thus
 * resumes above every revision it handed out before, so a version read
 * before the loss can never match a key written after it (no ABA for CAS),
 * and watches see revisions keep growing.
 */
const BUMP = `
local function bump()
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[2]) end
  -- As a string: Lua 5.1 prints numbers with %.14g, which would round revisions.
  return string.format('%d', redis.call('INCR', KEYS[1]))
end
`;

/**
 * KEYS: rev, index, compare keys..., op keys...
 * ARGV: channel, seed, #compares, #ops, compare versions..., then per op: type ('p'|'d'), JSON, ttl ms (0 = none)
 * Returns {1, revision, deleted} or {0, failed compare index (1-based), actual version}.
 */
const TXN_SCRIPT = `${BUMP}
local nc = tonumber(ARGV[3])
local no = tonumber(ARGV[4])
for i = 1, nc do
  local cur = redis.call('HGET', KEYS[2 + i], 'r')
  local have = 0
  if cur then have = tonumber(cur) end
  if have ~= tonumber(ARGV[4 + i]) then return {0, i, have} end
end
local rev = false
local deleted = 0
local a = 5 + nc
for j = 1, no do
  local key = KEYS[2 + nc + j]
  if ARGV[a] == 'p' then
    if not rev then rev = bump() end
    redis.call('HSET', key, 'v', ARGV[a + 1], 'r', rev)
    local ttl = tonumber(ARGV[a + 2])
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
    redis.call('ZADD', KEYS[2], 0, key)
    redis.call('PUBLISH', ARGV[1], 'p\\n' .. rev .. '\\n' .. key .. '\\n' .. ARGV[a + 1])
  elseif redis.call('DEL', key) == 1 then
    if not rev then rev = bump() end
    deleted = deleted + 1
    redis.call('ZREM', KEYS[2], key)
    redis.call('PUBLISH', ARGV[1], 'd\\n' .. rev .. '\\n' .. key)
  end
  a = a + 3
end
return {1, rev or 0, deleted}
`;

/**
 * KEYS: rev, index. ARGV: channel, seed, prefix, limit (0 = all).
 * Returns {revision, key1, json1, version1, ...}: a consistent snapshot.
 * Index entries of keys Redis expired are removed and their deletes published.
 */
const LIST_SCRIPT = `${BUMP}
local limit = tonumber(ARGV[4])
local out = {0}
local gone = {}
local n = 0
local min, max = '-', '+'
if ARGV[3] ~= '' then
  min = '[' .. ARGV[3]
  max = '[' .. ARGV[3] .. '\\255'
end
local offset = 0
while true do
  local keys = redis.call('ZRANGEBYLEX', KEYS[2], min, max, 'LIMIT', offset, 512)
  for _, key in ipairs(keys) do
    local row = redis.call('HMGET', key, 'v', 'r')
    if row[1] then
      if limit == 0 or n < limit then
        out[#out + 1] = key
        out[#out + 1] = row[1]
        out[#out + 1] = row[2]
        n = n + 1
      end
    else
      gone[#gone + 1] = key
    end
  end
  if #keys < 512 or (limit > 0 and n >= limit) then break end
  offset = offset + 512
end
if #gone > 0 then
  local rev = bump()
  for _, key in ipairs(gone) do
    redis.call('ZREM', KEYS[2], key)
    redis.call('PUBLISH', ARGV[1], 'd\\n' .. rev .. '\\n' .. key)
  end
end
out[1] = tonumber(redis.call('GET', KEYS[1]) or '0')
return out
`;

/** The two scripts, as ioredis defineCommand adds them (EVALSHA, EVAL on NOSCRIPT). */
interface ScriptCommands {
  // ioredis flattens array arguments: big transactions are not spread onto the JS stack.
  netctlTxn(numKeys: number, keys: string[], args: (string | number)[]): Promise<(string | number)[]>;
  netctlList(numKeys: number, keys: string[], args: (string | number)[]): Promise<(string | number)[]>;
}

/** Reply errors that mean "not serving right now" rather than "bad request". */
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOAUTH|WRONGPASS)\b/;

/** Where a fresh revision counter starts: now, in microseconds (safe integers until the 2250s). */
function revisionSeed(): number {
  return Date.now() * 1000;
}

function describe(location: RedisLocation): string {
  const where = location.path ?? `${location.host}:${location.port}`;
  return `redis ${where} db ${location.db}`;
}

interface Watcher {
  tracker: WatchTracker;
  queue: WatchQueue;
  timer: NodeJS.Timeout;
  resyncing: boolean;
}

export class RedisStore extends TxnWrites implements KvStore {
  readonly backend = 'redis';
  private closed = false;
  private readonly watchers = new Set<Watcher>();
  private subscriber: Redis | undefined;
  private subscribing: Promise<Redis> | undefined;
  private readonly channel: string;
  private readonly where: string;

  private constructor(
    private readonly client: Redis,
    private readonly location: RedisLocation,
  ) {
    super();
    this.channel = `netctl:events:${location.db}`;
    this.where = describe(location);
  }

  /** Connect, or fail with KvUnavailableError within the location's timeout. */
  static async connect(location: RedisLocation): Promise<RedisStore> {
    const client = new Redis(RedisStore.options(location));
    // ioredis reports connection trouble as 'error' events as well as by
    // rejecting calls; the calls are what we surface, the events would only
    // print "Unhandled error event".
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw new KvUnavailableError(
        'redis',
        `cannot connect to ${describe(location)}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    client.defineCommand('netctlTxn', { lua: TXN_SCRIPT });
    client.defineCommand('netctlList', { lua: LIST_SCRIPT });
    return new RedisStore(client, location);
  }

  private static options(location: RedisLocation): RedisOptions {
    return {
      ...(location.path ? { path: location.path } : { host: location.host!, port: location.port! }),
      db: location.db,
      ...(location.username ? { username: location.username } : {}),
      ...(location.password ? { password: location.password } : {}),
      ...(location.tls ? { tls: {} } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: location.timeoutMs,
      connectTimeout: location.timeoutMs,
      // 50 ms doubling to 2 s, with jitter so a fleet does not reconnect in step.
      retryStrategy: (times: number) =>
        Math.min(50 * 2 ** Math.min(times - 1, 6), 2000) * (0.75 + Math.random() / 2),
    };
  }

  private get scripts(): ScriptCommands {
    return this.client as unknown as ScriptCommands;
  }

  private check(): void {
    if (this.closed) throw new KvUnavailableError('redis', `${this.where}: store is closed`);
  }

  /**
   * Map an ioredis failure to a KV error: Redis refusing a request is a
   * backend error (unless the refusal means "not serving now"), our own
   * programming errors stay what they are, and everything else ioredis
   * throws is about the connection (offline, closed, timed out).
   */
  private failure(err: unknown): Error {
    if (err instanceof KvError || err instanceof RangeError || err instanceof TypeError) return err;
    const message = (err as Error).message;
    if (err instanceof ReplyError && !UNAVAILABLE_REPLIES.test(message)) {
      return new KvBackendError('redis', `${this.where}: ${message}`, { cause: err });
    }
    // ioredis refuses a command it cannot send (no offline queue): that one wrote
    // nothing. Any other failure (closed or timed out in flight) may have committed.
    const unsent = /Stream isn't writeable/.test(message);
    // ioredis's own words for a lost answer name its retry setting, which means nothing to a user.
    const detail = unsent
      ? 'not connected (reconnecting in the background; nothing was sent)'
      : /max retries per request|Connection is closed/.test(message)
        ? 'the connection was lost before the answer came (the request may have been applied)'
        : message;
    return new KvUnavailableError('redis', `${this.where}: ${detail}`, {
      cause: err,
      outcomeUnknown: !unsent,
    });
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await fn();
    } catch (err) {
      throw this.failure(err);
    }
  }

  async get(key: string): Promise<KvEntry | undefined> {
    assertKey(key);
    const [json, version] = await this.call(() => this.client.hmget(key, 'v', 'r'));
    if (json === null || json === undefined) return undefined;
    return { key, value: JSON.parse(json) as JsonValue, version: Number(version) };
  }

  private async snapshot(prefix: string, limit = 0): Promise<{ revision: number; entries: KvEntry[] }> {
    const reply = await this.call(() =>
      this.scripts.netctlList(2, [REVISION_KEY, INDEX_KEY], [this.channel, revisionSeed(), prefix, limit]),
    );
    const entries: KvEntry[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      entries.push({
        key: String(reply[i]),
        value: JSON.parse(String(reply[i + 1])) as JsonValue,
        version: Number(reply[i + 2]),
      });
    }
    return { revision: Number(reply[0]), entries };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<KvEntry[]> {
    assertPrefix(prefix);
    if (options.limit !== undefined && options.limit <= 0) return [];
    return (await this.snapshot(prefix, options.limit ?? 0)).entries;
  }

  async txn(compare: KvCompare[], ops: KvOp[]): Promise<KvTxnResult> {
    validateTxn(compare, ops);
    const args: (string | number)[] = [this.channel, revisionSeed(), compare.length, ops.length];
    for (const c of compare) args.push(c.version);
    for (const op of ops) {
      if (op.type === 'put') args.push('p', encodeValue(op.value), op.ttlMs ?? 0);
      else args.push('d', '', 0);
    }
    const keys = [REVISION_KEY, INDEX_KEY, ...compare.map((c) => c.key), ...ops.map((op) => op.key)];
    const [ok, a, b] = await this.call(() => this.scripts.netctlTxn(keys.length, keys, args));
    if (ok !== 1) {
      const failed = compare[Number(a) - 1]!;
      throw new KvConflictError(failed.key, failed.version, Number(b));
    }
    return { revision: Number(a), deleted: Number(b) };
  }

  async watch(prefix: string, options: WatchOptions = {}): Promise<KvWatch> {
    assertPrefix(prefix);
    this.check();
    // Subscribe first, list second: a change committed between the two is
    // both in the listing and on the channel, and the tracker drops the repeat.
    await this.subscribe();
    const watcher: Watcher = {
      queue: new WatchQueue(() => {
        clearInterval(watcher.timer);
        this.watchers.delete(watcher);
      }),
      tracker: new WatchTracker(prefix, (event) => watcher.queue.push(event)),
      timer: setInterval(() => void this.resync(watcher), this.location.resyncMs).unref(),
      resyncing: false,
    };
    this.watchers.add(watcher);
    try {
      const { revision, entries } = await this.snapshot(prefix);
      watcher.tracker.resync(entries, revision, options.initial ?? false);
    } catch (err) {
      watcher.queue.close();
      throw err;
    }
    return watcher.queue;
  }

  private async resync(watcher: Watcher): Promise<void> {
    if (watcher.resyncing || watcher.queue.isClosed || this.closed) return;
    watcher.resyncing = true;
    try {
      const { revision, entries } = await this.snapshot(watcher.tracker.prefix);
      if (!watcher.queue.isClosed) watcher.tracker.resync(entries, revision);
    } catch (err) {
      // Redis is down: the watch stays open and catches up after reconnecting.
      if (!(err instanceof KvUnavailableError)) {
        process.emitWarning(`netctl redis watch resync: ${(err as Error).message}`, 'NetctlKvWarning');
      }
    } finally {
      watcher.resyncing = false;
    }
  }

  /** One subscriber connection per store, shared by its watches. */
  private subscribe(): Promise<Redis> {
    this.subscribing ??= (async () => {
      const sub = new Redis({
        ...RedisStore.options(this.location),
        enableOfflineQueue: true,
        autoResubscribe: true,
      });
      sub.on('error', () => {});
      sub.on('message', (_channel: string, message: string) => this.dispatch(message));
      let connected = false;
      sub.on('ready', () => {
        // After a reconnect, messages published while we were away are lost: relist.
        if (connected) for (const watcher of this.watchers) void this.resync(watcher);
        connected = true;
      });
      try {
        await sub.connect();
        await sub.subscribe(this.channel);
      } catch (err) {
        sub.disconnect();
        this.subscribing = undefined;
        throw this.failure(err);
      }
      this.subscriber = sub;
      return sub;
    })();
    return this.subscribing;
  }

  private dispatch(message: string): void {
    // "p\n<rev>\n<key>\n<json>" or "d\n<rev>\n<key>"; keys hold no newline (assertKey).
    const a = message.indexOf('\n');
    const b = message.indexOf('\n', a + 1);
    const version = Number(message.slice(a + 1, b));
    let event: KvEvent;
    if (message[0] === 'p') {
      const c = message.indexOf('\n', b + 1);
      event = {
        type: 'put',
        key: message.slice(b + 1, c),
        value: JSON.parse(message.slice(c + 1)) as JsonValue,
        version,
      };
    } else {
      event = { type: 'delete', key: message.slice(b + 1), version };
    }
    for (const { tracker } of this.watchers) tracker.apply(event);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watcher of [...this.watchers]) watcher.queue.close();
    this.subscriber?.disconnect();
    this.client.disconnect();
  }
}
