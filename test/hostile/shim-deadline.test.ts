/**
 * The CNI shim (native/cni/netctl-cni.c) against daemons that accept its
 * connection and then fail it (issue 11, "No deadlines"): silent, closing
 * mid-header, cutting the body short, talking something else, trickling.
 * Each must end the call within NETCTL_CNI_TIMEOUT with CNI error 11 ("try
 * again later") naming the socket: a wedged daemon must not hang every
 * container start on the host, and must never be gone around (a fallback
 * to in-process mode beside a live daemon would split the state).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { killSpawned, type Spawned, spawnCollected } from '../helpers/spawned.js';
import { recordFigures } from './figures.js';

const SHIM = join(packageRoot, 'native', 'build', 'Release', 'netctl-cni');
const CONFIG = JSON.stringify({ cniVersion: '1.0.0', name: 'deadline', type: 'netctl-cni' });
const RESULT = JSON.stringify({ cniVersion: '1.0.0', interfaces: [], ips: [], dns: {} });
/** The deadline the shim gets, and how much longer than it a call may take. */
const DEADLINE_S = 1;
const MARGIN_MS = 2000;
/** Kill a shim that outlives this (the code before the fix waited forever). */
const WATCHDOG_MS = 6000;

let dir: string;
let socket: string;
let server: Server | undefined;
const open = new Set<Socket>();
let faults = 0;
let inputs = 0;

beforeAll(() => {
  if (!existsSync(SHIM)) throw new Error(`${SHIM} is missing: run \`npm run build\` first (npm test does)`);
  dir = mkdtempSync(join(tmpdir(), 'netctl-shim-deadline-'));
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

interface Request {
  head: string;
  body: { env: Record<string, string>; plugin: string; config: string };
}

/** A fake daemon on the socket: onRequest gets each connection once the shim's whole request is in. */
async function fakeDaemon(onRequest: (conn: Socket, request: Request) => void): Promise<Request[]> {
  const requests: Request[] = [];
  server = createServer((conn) => {
    open.add(conn);
    conn.on('close', () => open.delete(conn));
    conn.on('error', () => {});
    let data = Buffer.alloc(0);
    conn.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString();
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
      if (data.length < end + 4 + length) return;
      const request = { head, body: JSON.parse(data.subarray(end + 4, end + 4 + length).toString()) };
      requests.push(request);
      conn.removeAllListeners('data');
      conn.resume();
      onRequest(conn, request);
    });
  });
  await new Promise<void>((resolve) => server?.listen(socket, resolve));
  return requests;
}

/** A CNI ADD through the shim, as a runtime runs it. */
async function add(env: Record<string, string> = {}): Promise<Spawned> {
  const watchdog = setTimeout(() => void killSpawned(), WATCHDOG_MS);
  try {
    return await spawnCollected(SHIM, [], {
      env: {
        NETCTL_SOCKET: socket,
        NETCTL_CNI_TIMEOUT: String(DEADLINE_S),
        // Were the shim to go around the daemon, this would make it exit 5, not 11.
        NETCTL_NODE: join(dir, 'no-node'),
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'deadline1',
        CNI_NETNS: '/run/netns/deadline1',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/opt/cni/bin',
        ...env,
      },
      input: CONFIG,
    });
  } finally {
    clearTimeout(watchdog);
  }
}

function answer(status: string, exit: number | undefined, body: string): string {
  const exitHeader = exit === undefined ? '' : `Netctl-Cni-Exit: ${exit}\r\n`;
  return (
    `HTTP/1.1 ${status}\r\n${exitHeader}content-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Error 11 on stdout and as the exit status, its msg naming the socket and what happened. */
function expectTryAgain(r: Spawned, what: RegExp): void {
  expect({ status: r.status, stdout: r.stdout }).toMatchObject({ status: 11 });
  const error = JSON.parse(r.stdout) as { code: number; msg: string };
  expect(error.code).toBe(11);
  expect(error.msg).toContain(`netctl daemon at ${socket} is not answering: `);
  expect(error.msg).toMatch(what);
  expect(r.ms).toBeLessThan(DEADLINE_S * 1000 + MARGIN_MS);
}

describe('netctl-cni against a daemon that fails it', () => {
  it('(a) accepts and never answers: error 11 at the deadline', async () => {
    faults++;
    const requests = await fakeDaemon(() => {});
    const r = await add();
    expectTryAgain(r, /no answer within 1 s/);
    expect(r.ms).toBeGreaterThanOrEqual(DEADLINE_S * 1000 - 50);
    expect(requests).toHaveLength(1);
  });

  it('(a) a fractional deadline: NETCTL_CNI_TIMEOUT=0.5', async () => {
    faults++;
    await fakeDaemon(() => {});
    const r = await add({ NETCTL_CNI_TIMEOUT: '0.5' });
    expectTryAgain(r, /no answer within 0\.5 s/);
    expect(r.ms).toBeGreaterThanOrEqual(450);
    expect(r.ms).toBeLessThan(500 + MARGIN_MS);
  });

  it('(a) trickles a valid header a byte at a time, never ending it: the deadline is for the whole answer', async () => {
    faults++;
    await fakeDaemon((conn) => {
      conn.write('HTTP/1.1 200 OK\r\nX-Slow: ');
      const timer = setInterval(() => conn.write('a'), 50);
      conn.on('close', () => clearInterval(timer));
    });
    expectTryAgain(await add(), /no answer within 1 s/);
  });

  it('(b) closes after part of the header', async () => {
    faults++;
    await fakeDaemon((conn) => conn.end('HTTP/1.1 200 OK\r\nNetctl-Cni-Ex'));
    expectTryAgain(await add(), /closed the connection 30 bytes into its answer's header/);
  });

  it('(b) closes without a byte of answer', async () => {
    faults++;
    await fakeDaemon((conn) => conn.end());
    expectTryAgain(await add(), /closed the connection without answering/);
  });

  it('(c) declares Content-Length 100, sends 10 bytes and closes', async () => {
    faults++;
    await fakeDaemon((conn) =>
      conn.end('HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: 100\r\n\r\n{"cniVers"'),
    );
    expectTryAgain(await add(), /closed the connection after 10 of its answer's 100 body bytes/);
  });

  it('(c) declares Content-Length 100, sends 10 bytes and goes silent', async () => {
    faults++;
    await fakeDaemon((conn) =>
      conn.write('HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: 100\r\n\r\n0123456789'),
    );
    expectTryAgain(await add(), /no answer within 1 s/);
  });

  // Kept open after the garbage: the shim must see it is not HTTP, not wait for the deadline.
  const GARBAGE: [string, string | Buffer][] = [
    ['another protocol', 'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'],
    ['binary noise', Buffer.from([0, 255, 13, 10, 13, 10, 1, 2, 3])],
    ['HTTP/1.0', 'HTTP/1.0 200 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: 2\r\n\r\n{}'],
    ['a status without a code', 'HTTP/1.1 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: 2\r\n\r\n{}'],
    ['no Content-Length', 'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\n\r\n{}'],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: -5\r\n\r\n{}'],
    [
      'two Content-Lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\nNetctl-Cni-Exit: 0\r\n\r\n{}',
    ],
    [
      'a huge Content-Length',
      'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: 99999999999\r\n\r\n{}',
    ],
    [
      'an exit status that is no number',
      'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: zero\r\nContent-Length: 2\r\n\r\n{}',
    ],
    ['an exit status over 255', 'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 256\r\nContent-Length: 2\r\n\r\n{}'],
    [
      'chunked',
      'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
    ],
    [
      'a line that is no field',
      'HTTP/1.1 200 OK\r\nNetctl-Cni-Exit: 0\r\nContent-Length: 2\r\nhello\r\n\r\n{}',
    ],
    ['a header of 64 KiB', `HTTP/1.1 200 OK\r\nX-Pad: ${'x'.repeat(65536)}`],
  ];
  it.each(GARBAGE)('(d) answers garbage (%s): error 11 at once', async (_what, garbage) => {
    faults++;
    await fakeDaemon((conn) => conn.write(garbage));
    const r = await add();
    // The validation's message, not the deadline's: it did not wait for the deadline.
    expectTryAgain(r, /its answer is not HTTP\/1\.1 as netctl writes it: /);
  });

  it('(e) answers correctly after 0.3 s: the result and its exit status, without waiting for the close', async () => {
    const requests = await fakeDaemon((conn) =>
      setTimeout(() => conn.write(answer('200 OK', 0, RESULT)), 300),
    );
    const r = await add();
    expect(r).toMatchObject({ status: 0, stdout: RESULT });
    expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(requests[0]?.head).toMatch(/^POST \/v1\/cni HTTP\/1\.1\r\n/);
    expect(requests[0]?.body).toEqual({
      env: {
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'deadline1',
        CNI_NETNS: '/run/netns/deadline1',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/opt/cni/bin',
      },
      plugin: 'netctl-cni',
      config: CONFIG,
    });
  });

  it('(e) answers in pieces over 0.3 s and closes: assembled whole', async () => {
    const whole = answer('200 OK', 0, RESULT);
    await fakeDaemon((conn) => {
      const cuts = [0, 10, 40, 90, whole.length - 5, whole.length];
      cuts.slice(1).forEach((cut, i) => {
        setTimeout(() => {
          conn.write(whole.slice(cuts[i], cut));
          if (cut === whole.length) conn.end();
        }, 75 * i);
      });
    });
    expect(await add()).toMatchObject({ status: 0, stdout: RESULT });
  });

  it("(e) the daemon's CNI error passes through: its body, its exit status", async () => {
    const error = JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'invalid network configuration' });
    await fakeDaemon((conn) => conn.end(answer('200 OK', 7, error)));
    expect(await add()).toMatchObject({ status: 7, stdout: error });
  });

  it('a well-formed answer that is not a CNI answer (an older daemon: 404) stays error 5', async () => {
    const body = JSON.stringify({ code: 'NETCTL_ROUTE_NOT_FOUND', message: 'no API route POST /v1/cni' });
    await fakeDaemon((conn) => conn.end(answer('404 Not Found', undefined, body)));
    const r = await add();
    expect(r.status).toBe(5);
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 5,
      msg: 'the netctl daemon did not answer the CNI request',
      details: body,
    });
  });

  const BAD_TIMEOUTS = ['abc', '0', '-1', '1e3', '.', '1.2.3', 'inf', ' 5', '86401'];
  it.each(BAD_TIMEOUTS)(
    'NETCTL_CNI_TIMEOUT=%j is refused with error 7, before any connection',
    async (value) => {
      inputs++;
      const requests = await fakeDaemon((conn) => conn.end(answer('200 OK', 0, RESULT)));
      let connections = 0;
      server?.on('connection', () => connections++);
      const r = await add({ NETCTL_CNI_TIMEOUT: value });
      expect(r.status).toBe(7);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: 'invalid NETCTL_CNI_TIMEOUT' });
      expect(connections).toBe(0);
      expect(requests).toHaveLength(0);
    },
  );

  it('NETCTL_CNI_TIMEOUT empty is the default (30 s): a prompt answer succeeds', async () => {
    await fakeDaemon((conn) => conn.end(answer('200 OK', 0, RESULT)));
    expect(await add({ NETCTL_CNI_TIMEOUT: '' })).toMatchObject({ status: 0, stdout: RESULT });
  });
});
