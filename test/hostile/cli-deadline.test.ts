/**
 * The netctl CLI (bin/netctl.js, spawned as a script runs it) against a
 * daemon socket that accepts and then fails it (issue 11, "No deadlines"):
 * each request has a deadline (--timeout, NETCTL_TIMEOUT, 60 s), and a
 * daemon that misses it is NETCTL_DAEMON_UNAVAILABLE, exit 5, naming the
 * socket — never a hang, and never a fallback to in-process mode around a
 * daemon that is there.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { killSpawned, type Spawned, spawnCollected } from '../helpers/spawned.js';
import { recordFigures } from './figures.js';

const BIN = join(packageRoot, 'bin', 'netctl.js');
/** How much longer than its deadline a command may take (Node's start-up included). */
const MARGIN_MS = 2000;
/** Kill a CLI that outlives this (the code before the fix waited forever). */
const WATCHDOG_MS = 8000;

let dir: string;
let socket: string;
let server: Server | undefined;
const open = new Set<Socket>();
let faults = 0;
let inputs = 0;

beforeAll(() => {
  if (!existsSync(join(packageRoot, 'dist', 'src', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'netctl-cli-deadline-'));
  socket = join(dir, 'api.sock');
});

afterEach(async () => {
  await killSpawned();
  for (const s of open) s.destroy();
  open.clear();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  recordFigures({ faults, inputs });
});

interface Fake {
  /** Request lines received ("GET /v1/networks"). */
  requests: string[];
  connections: number;
}

/** A fake daemon on the socket: onRequest gets each connection once a whole request is in. */
async function fakeDaemon(onRequest: (conn: Socket) => void): Promise<Fake> {
  const fake: Fake = { requests: [], connections: 0 };
  server = createServer((conn) => {
    fake.connections++;
    open.add(conn);
    conn.on('close', () => open.delete(conn));
    conn.on('error', () => {});
    let data = Buffer.alloc(0);
    conn.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString();
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (data.length < end + 4 + length) return;
      fake.requests.push(head.split(' ', 2).join(' '));
      conn.removeAllListeners('data');
      conn.resume();
      onRequest(conn);
    });
  });
  await new Promise<void>((resolve) => server?.listen(socket, resolve));
  return fake;
}

async function netctl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Spawned> {
  const watchdog = setTimeout(() => void killSpawned(), WATCHDOG_MS);
  try {
    return await spawnCollected(process.execPath, [BIN, ...args], {
      // A fallback to in-process mode would use this store, and print [] with status 0.
      env: { PATH: process.env.PATH, NETCTL_LOG_LEVEL: 'warn', NETCTL_STATE_DIR: join(dir, 'state'), ...env },
    });
  } finally {
    clearTimeout(watchdog);
  }
}

/** Exit 5 and NETCTL_DAEMON_UNAVAILABLE's message, naming the socket and what happened. */
function expectUnavailable(r: Spawned, what: string, deadlineS: number): void {
  expect(r).toMatchObject({ status: 5, stdout: '' });
  expect(r.stderr).toBe(`netctl: netctl daemon at ${socket} is not answering: ${what}\n`);
  expect(r.ms).toBeLessThan(deadlineS * 1000 + MARGIN_MS);
}

const silent = () => {};

describe('netctl against a daemon that accepts and then fails it', () => {
  it('(a) never answers, --timeout 1 before the verb: exit 5 at the deadline', async () => {
    faults++;
    const fake = await fakeDaemon(silent);
    const r = await netctl(['--timeout', '1', '--socket', socket, 'network', 'ls']);
    expectUnavailable(r, 'no answer within 1 s', 1);
    expect(r.ms).toBeGreaterThanOrEqual(1000);
    expect(fake.requests).toEqual(['GET /v1/networks']);
  });

  it('(a) never answers, --timeout after the verb, fractional', async () => {
    faults++;
    await fakeDaemon(silent);
    const r = await netctl(['network', 'ls', '--timeout', '0.5'], { NETCTL_SOCKET: socket });
    expectUnavailable(r, 'no answer within 0.5 s', 0.5);
  });

  it('(a) never answers, NETCTL_TIMEOUT=1', async () => {
    faults++;
    await fakeDaemon(silent);
    const r = await netctl(['sandbox', 'ls'], { NETCTL_SOCKET: socket, NETCTL_TIMEOUT: '1' });
    expectUnavailable(r, 'no answer within 1 s', 1);
  });

  it('(a) --timeout wins over NETCTL_TIMEOUT', async () => {
    faults++;
    await fakeDaemon(silent);
    const r = await netctl(['--timeout', '1', 'network', 'ls'], {
      NETCTL_SOCKET: socket,
      NETCTL_TIMEOUT: '30',
    });
    expectUnavailable(r, 'no answer within 1 s', 1);
  });

  it('(a) trickles a header a byte at a time: the deadline is for the whole request', async () => {
    faults++;
    await fakeDaemon((conn) => {
      conn.write('HTTP/1.1 200 OK\r\nX-Slow: ');
      const timer = setInterval(() => conn.write('a'), 50);
      conn.on('close', () => clearInterval(timer));
    });
    expectUnavailable(
      await netctl(['--timeout', '1', '--socket', socket, 'network', 'ls']),
      'no answer within 1 s',
      1,
    );
  });

  it('(c) declares Content-Length 100, sends 10 bytes and goes silent', async () => {
    faults++;
    await fakeDaemon((conn) =>
      conn.write(
        'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[         ',
      ),
    );
    expectUnavailable(
      await netctl(['--timeout', '1', '--socket', socket, 'network', 'ls']),
      'no answer within 1 s',
      1,
    );
  });

  // Broken answers that end by themselves: exit 5 naming the socket, as before the deadline.
  const BROKEN: [string, (conn: Socket) => void][] = [
    ['(b) closes after part of the header', (conn) => conn.end('HTTP/1.1 200 OK\r\ncontent-le')],
    [
      '(c) declares Content-Length 100, sends 10 bytes and closes',
      (conn) =>
        conn.end(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[         ',
        ),
    ],
    ['(d) answers garbage', (conn) => conn.write('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\r\n')],
  ];
  it.each(BROKEN)('%s: exit 5 naming the socket', async (_what, behave) => {
    faults++;
    await fakeDaemon(behave);
    const r = await netctl(['--timeout', '1', '--socket', socket, 'network', 'ls']);
    expect(r).toMatchObject({ status: 5, stdout: '' });
    expect(r.stderr.startsWith(`netctl: netctl daemon at ${socket} is not answering: `)).toBe(true);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.ms).toBeLessThan(1000 + MARGIN_MS);
  });

  it('(e) answers after 0.3 s: the command succeeds', async () => {
    const fake = await fakeDaemon((conn) =>
      setTimeout(
        () => conn.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]'),
        300,
      ),
    );
    const r = await netctl(['--timeout', '1', '--socket', socket, 'network', 'ls', '--format', 'json']);
    expect(r).toMatchObject({ status: 0, stdout: '[]\n', stderr: '' });
    expect(fake.requests).toEqual(['GET /v1/networks']);
  });

  const BAD_TIMEOUTS = ['abc', '0', '-1', '1e3', '.', '86401', ''];
  it.each(BAD_TIMEOUTS)('--timeout %j is a usage error (exit 2), before anything is asked', async (value) => {
    inputs++;
    const fake = await fakeDaemon(silent);
    const r = await netctl(['--timeout', value, '--socket', socket, 'network', 'ls']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^netctl: option '--timeout <seconds>' argument '.*' is invalid\. want seconds/);
    expect(fake.connections).toBe(0);
  });

  it('NETCTL_TIMEOUT=abc is a usage error (exit 2), before anything is asked', async () => {
    inputs++;
    const fake = await fakeDaemon(silent);
    const r = await netctl(['network', 'ls'], { NETCTL_SOCKET: socket, NETCTL_TIMEOUT: 'abc' });
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr).toBe(
      'netctl: invalid option NETCTL_TIMEOUT: "abc": want seconds, more than 0 and at most 86400\n',
    );
    expect(fake.connections).toBe(0);
  });

  it('no daemon at all: still runs in-process, whatever the deadline', async () => {
    const r = await netctl([
      '--timeout',
      '1',
      '--socket',
      join(dir, 'none.sock'),
      'sandbox',
      'ls',
      '--format',
      'json',
    ]);
    expect(r).toMatchObject({ status: 0, stdout: '[]\n' });
  });
});
