/**
 * A TCP proxy (node:net) between a Redis client and a real redis-server
 * that can lose the answer to a write after Redis has run it — the "unknown
 * outcome" of issue 11: the client sent its commit, the commit landed, and
 * the connection dropped (or stalled past the client's timeout) before the
 * reply came back.
 *
 * It reads both directions as RESP frames, so it knows which reply answers
 * which command. A write is netctl's transaction script (src/kv/redis.ts):
 * EVALSHA/EVAL with more than the two keys every script declares (the
 * revision counter and the index; the listing script declares just those).
 * Armed with `fault()`, it counts the writes whose keys contain a
 * substring and, at the reply to the nth, either
 *
 * - `drop`: discards that reply and closes the client's connection (and
 *   its own to Redis): what ioredis sees when a connection dies with a
 *   command in flight; it reconnects through the proxy; or
 * - `stall`: holds that reply and everything after it on the connection
 *   for `stallMs`, then delivers it all in order: a command timeout.
 *
 * A write refused with NOSCRIPT (ioredis sends EVALSHA first, and EVAL
 * after a NOSCRIPT, e.g. after Redis restarted) ran nothing and is not
 * counted. Each fault fires once.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A RESP value ends here, or undefined when buf does not hold all of it yet. */
function frameEnd(buf: Buffer, pos: number): number | undefined {
  if (pos >= buf.length) return undefined;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos] as number);
  const n = Number(buf.toString('latin1', pos + 1, eol));
  const next = eol + 2;
  switch (type) {
    case '$':
    case '=':
    case '!': {
      if (n < 0) return next;
      const end = next + n + 2;
      return end <= buf.length ? end : undefined;
    }
    case '*':
    case '~':
    case '>':
    case '%': {
      if (n < 0) return next;
      let p: number | undefined = next;
      for (let i = 0; i < (type === '%' ? 2 * n : n); i++) {
        p = frameEnd(buf, p);
        if (p === undefined) return undefined;
      }
      return p;
    }
    default:
      // + - : _ , # ( and inline: one line.
      return next;
  }
}

/** The words of a command frame (an array of bulk strings). */
function commandWords(frame: Buffer): string[] {
  const words: string[] = [];
  let eol = frame.indexOf('\r\n');
  if (frame[0] !== 0x2a) return frame.toString('utf8').trim().split(/\s+/);
  const count = Number(frame.toString('latin1', 1, eol));
  let p = eol + 2;
  for (let i = 0; i < count && p < frame.length; i++) {
    eol = frame.indexOf('\r\n', p);
    const length = Number(frame.toString('latin1', p + 1, eol));
    words.push(frame.toString('utf8', eol + 2, eol + 2 + length));
    p = eol + 2 + length + 2;
  }
  return words;
}

/** The keys of a netctl write (transaction script), or undefined for any other command. */
export function writeKeys(words: string[]): string[] | undefined {
  const name = words[0]?.toUpperCase();
  if (name !== 'EVALSHA' && name !== 'EVAL') return undefined;
  const numKeys = Number(words[2]);
  if (!(numKeys > 2)) return undefined;
  return words.slice(3, 3 + numKeys);
}

export interface FaultSpec {
  /** Count only writes one of whose keys contains this; every write when absent. */
  keyContains?: string;
  /** Which of those writes (1-based, counted from now). Default 1. */
  nth?: number;
  mode?: 'drop' | 'stall';
  /** How long a stall holds the replies. Default 3000 ms. */
  stallMs?: number;
}

export interface Fired {
  mode: 'drop' | 'stall';
  /** The keys of the write whose reply was lost. */
  keys: string[];
}

export interface FaultProxy {
  readonly port: number;
  /** redis://127.0.0.1:<port>/<db>, with query parameters. */
  url(query?: string): string;
  /** Arm one fault (replacing one armed and not fired). */
  fault(spec: FaultSpec): void;
  /** What the armed fault did: undefined until it fired. */
  readonly fired: Fired | undefined;
  /** Disarm; returns what fired, if anything. */
  disarm(): Fired | undefined;
  /** Writes answered so far, all connections. */
  readonly writes: number;
  /** Close every connection now (as a network failure would), without a fault. */
  cut(): void;
  close(): Promise<void>;
}

interface Armed extends Required<FaultSpec> {
  seen: number;
}

/** Listen on 127.0.0.1 (a free port) and forward to Redis's unix socket (or host:port). */
export async function startFaultProxy(
  upstream: string | { host: string; port: number },
): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  let armed: Armed | undefined;
  let fired: Fired | undefined;
  let writes = 0;

  const server: Server = createServer((client) => {
    const redis =
      typeof upstream === 'string'
        ? createConnection(upstream)
        : createConnection(upstream.port, upstream.host);
    sockets.add(client);
    sockets.add(redis);
    let dead = false;
    const kill = () => {
      if (dead) return;
      dead = true;
      client.destroy();
      redis.destroy();
    };
    for (const s of [client, redis]) {
      s.on('error', kill);
      s.on('close', () => {
        sockets.delete(s);
        kill();
      });
    }
    /** Per command sent, in order: its keys if it is a write. */
    const pending: (string[] | undefined)[] = [];
    let fromClient = Buffer.alloc(0);
    let fromRedis = Buffer.alloc(0);
    let held: Buffer[] | undefined;

    client.on('data', (chunk: Buffer) => {
      if (dead) return;
      fromClient = Buffer.concat([fromClient, chunk]);
      for (;;) {
        const end = frameEnd(fromClient, 0);
        if (end === undefined) break;
        const frame = fromClient.subarray(0, end);
        fromClient = fromClient.subarray(end);
        pending.push(writeKeys(commandWords(frame)));
        redis.write(frame);
      }
    });

    const deliver = (frame: Buffer) => {
      if (held) held.push(frame);
      else client.write(frame);
    };

    redis.on('data', (chunk: Buffer) => {
      if (dead) return;
      fromRedis = Buffer.concat([fromRedis, chunk]);
      for (;;) {
        const end = frameEnd(fromRedis, 0);
        if (end === undefined) break;
        const frame = fromRedis.subarray(0, end);
        fromRedis = fromRedis.subarray(end);
        // Pushed pub/sub messages answer no command; pending is empty then.
        const keys = pending.length ? pending.shift() : undefined;
        if (keys && !frame.toString('latin1', 0, 9).startsWith('-NOSCRIPT')) {
          writes++;
          const fault = armed;
          if (fault && (fault.keyContains === '' || keys.some((k) => k.includes(fault.keyContains)))) {
            fault.seen++;
            if (fault.seen === fault.nth) {
              armed = undefined;
              fired = { mode: fault.mode, keys };
              if (fault.mode === 'drop') {
                kill();
                return;
              }
              held = [];
              setTimeout(() => {
                const frames = held ?? [];
                held = undefined;
                if (!dead) for (const f of frames) client.write(f);
              }, fault.stallMs).unref();
            }
          }
        }
        deliver(frame);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    port,
    url: (query = '') => `redis://127.0.0.1:${port}/0${query ? `?${query}` : ''}`,
    fault(spec) {
      fired = undefined;
      armed = {
        keyContains: spec.keyContains ?? '',
        nth: spec.nth ?? 1,
        mode: spec.mode ?? 'drop',
        stallMs: spec.stallMs ?? 3000,
        seen: 0,
      };
    },
    get fired() {
      return fired;
    },
    disarm() {
      armed = undefined;
      const out = fired;
      fired = undefined;
      return out;
    },
    get writes() {
      return writes;
    },
    cut() {
      for (const s of [...sockets]) s.destroy();
    },
    async close() {
      for (const s of [...sockets]) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
