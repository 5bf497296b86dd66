import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openApi } from '../../../src/cli/backend.js';
import { errorFromBody, HttpApi, isNoDaemon } from '../../../src/cli/client.js';
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { Errors, errorClassOf, specOf } from '../../../src/errors.js';
import { buildApiServer } from '../../../src/server/api.js';
import { listenUnix, probeSocket } from '../../../src/server/listen.js';

let dir: string;
let socket: string;
let fake: FakeApi;
let app: FastifyInstance;
let api: HttpApi;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'netctl-client-'));
  socket = join(dir, 'run', 'api.sock');
  fake = new FakeApi();
  app = buildApiServer(
    // Each test starts from an empty fake, behind the same server.
    new Proxy({} as FakeApi, { get: (_t, key) => Reflect.get(fake, key).bind(fake) }),
    { logger: false },
  );
  await listenUnix(app, socket);
  api = new HttpApi(socket);
});

afterAll(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  fake = new FakeApi();
});

/** The socket file a daemon killed with SIGKILL leaves behind: nobody listens on it. */
function staleSocket(path: string): void {
  spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  expect(statSync(path).isSocket()).toBe(true);
}

describe('HttpApi over a real unix socket', () => {
  it('round-trips every method', async () => {
    const web = await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
    expect(web).toMatchObject({ name: 'web', ipam: { config: [{ gateway: '10.1.0.1' }] } });
    expect((await api.listNetworks()).map((n) => n.name)).toEqual(['web']);
    const box = await api.createSandbox({ name: 'box', labels: { role: 'db' } });
    expect(box).toMatchObject({ name: 'box', labels: { role: 'db' } });
    expect((await api.listSandboxes()).map((s) => s.id)).toEqual([box.id]);
    const ep = await api.connect({
      network: 'web',
      sandbox: 'box',
      ipv4: '10.1.0.7',
      portMappings: [{ hostPort: 8080, containerPort: 80, proto: 'udp' }],
    });
    expect(ep).toMatchObject({ ipv4: '10.1.0.7/24', portMappings: [{ proto: 'udp', hostPort: 8080 }] });
    expect(await api.inspectNetwork(web.id.slice(0, 10))).toMatchObject({
      network: { id: web.id },
      endpoints: [{ id: ep.id, sandboxName: 'box' }],
    });
    expect(await api.inspectSandbox('box')).toMatchObject({
      sandbox: { id: box.id },
      endpoints: [{ id: ep.id, networkName: 'web' }],
    });
    expect(await api.setSandboxPid('box', 1234)).toMatchObject({ pid: 1234 });
    expect(await api.disconnect('web', 'box')).toMatchObject({ id: ep.id });
    expect(await api.deleteSandbox(box.id)).toMatchObject({ name: 'box' });
    await api.createNetwork({ name: 'other' });
    expect(await api.deleteNetwork('other')).toMatchObject({ name: 'other' });
    expect(await api.pruneNetworks()).toEqual(['web']);
    fake.pendingGc = [{ kind: 'rule', name: 'r', owner: 'ep:1', action: 'remove', reason: 'gone' }];
    expect(await api.gc({ dryRun: true })).toEqual({ dryRun: true, actions: fake.pendingGc });
    expect(await api.health()).toMatchObject({ version: 'fake', networks: 0 });
    const net = await api.createNetwork({ name: 'net', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
    await api.createSandbox({ name: 'c1' });
    await api.connect({ network: 'net', sandbox: 'c1' });
    fake.missing.set(net.id, ['2 firewall rule(s)']);
    expect(await api.check('net', 'c1')).toEqual({
      network: 'net',
      problems: ['2 firewall rule(s)'],
      sandbox: 'c1',
      sandboxProblems: [],
    });
    expect(await api.repair('net')).toMatchObject([{ name: 'net', action: 'restore' }]);
    expect(await api.repair()).toEqual([]);
    expect(fake.calls.map((c) => c.method)).toEqual([
      'createNetwork',
      'listNetworks',
      'createSandbox',
      'listSandboxes',
      'connect',
      'inspectNetwork',
      'inspectSandbox',
      'setSandboxPid',
      'disconnect',
      'deleteSandbox',
      'createNetwork',
      'deleteNetwork',
      'pruneNetworks',
      'gc',
      'health',
      'createNetwork',
      'createSandbox',
      'connect',
      'check',
      'repair',
      'repair',
    ]);
  });

  it('errors met before routing answer in the registry format: headers too large, a bad URL, a long ref, deep nesting', async () => {
    const { connect } = await import('node:net');
    const raw = (text: string) =>
      new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const conn = connect(socket);
        const chunks: Buffer[] = [];
        conn.on('data', (c: Buffer) => chunks.push(c));
        conn.on('error', reject);
        conn.on('close', () => {
          const answer = Buffer.concat(chunks).toString();
          const [head = '', body = ''] = answer.split('\r\n\r\n');
          resolve({ status: Number(head.split(' ')[1]), body: JSON.parse(body) });
        });
        conn.end(text);
      });
    const get = (path: string, headers = '') =>
      raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`);
    expect(await get('/v1/networks', `X-Big: ${'a'.repeat(20_000)}\r\n`)).toEqual({
      status: 431,
      body: {
        code: 'NETCTL_HEADERS_TOO_LARGE',
        class: 'badRequest',
        message: 'request line and headers are larger than 16384 bytes',
      },
    });
    expect(await get('/v1/networks/%E0%A4%A')).toMatchObject({
      status: 400,
      body: { code: 'NETCTL_INVALID_REQUEST', message: expect.stringContaining('percent-encoding') },
    });
    expect(await get(`/v1/networks/${'a'.repeat(150)}`)).toMatchObject({
      status: 400,
      body: { code: 'NETCTL_INVALID_REQUEST', message: expect.stringContaining('longer than 100') },
    });
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(
      await raw(
        `POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Length: ${deep.length}\r\nConnection: close\r\n\r\n${deep}`,
      ),
    ).toMatchObject({
      status: 400,
      body: { code: 'NETCTL_INVALID_REQUEST', message: 'invalid request: body nests deeper than 64 levels' },
    });
    expect(fake.calls).toEqual([]);
  });

  it('the real server takes a body with no Content-Type, as Docker sends it', async () => {
    const { request } = await import('node:http');
    const body = JSON.stringify({ name: 'docker-style' });
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(
        {
          socketPath: socket,
          method: 'POST',
          path: '/v1/sandboxes',
          headers: { 'content-length': body.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(status).toBe(201);
    expect(fake.sandboxes.size).toBe(1);
  });

  it('escapes refs in the URL', async () => {
    await expect(api.inspectNetwork('a/b?c')).rejects.toMatchObject({ message: 'network a/b?c not found' });
  });

  it('turns error bodies back into the same registry error: code, class, message', async () => {
    await api.createNetwork({ name: 'web' });
    const err = await api.createNetwork({ name: 'web' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Errors.NetworkExists);
    expect(err).toMatchObject({
      code: 'NETCTL_NETWORK_EXISTS',
      message: 'network with name web already exists',
    });
    expect(errorClassOf(err)).toBe('conflict');

    const notFound = await api.deleteSandbox('ghost').catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(Errors.SandboxNotFound);
    expect((notFound as Error).message).toBe('sandbox ghost not found');

    // Validation happens on the server too, with the same wording.
    const bad = await api.createNetwork({ name: '-x' }).catch((e: unknown) => e);
    expect(specOf(bad)?.code).toBe('NETCTL_INVALID_REQUEST');
    expect((bad as Error).message).toMatch(/^invalid request: name: "-x" is not a valid name/);
  });

  it('keeps an unknown code (a newer daemon) with its class', () => {
    const err = errorFromBody(409, { code: 'NETCTL_FUTURE', message: 'later', class: 'conflict' });
    expect(err).toMatchObject({ code: 'NETCTL_FUTURE', message: 'later', class: 'conflict' });
    expect(specOf(errorFromBody(502, 'Bad Gateway'))?.code).toBe('NETCTL_INTERNAL');
  });
});

describe('no daemon', () => {
  it('a missing socket is NETCTL_DAEMON_UNAVAILABLE, recognised by isNoDaemon', async () => {
    const err = await new HttpApi(join(dir, 'missing.sock')).health().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Errors.DaemonUnavailable);
    expect(isNoDaemon(err)).toBe(true);
    expect((err as Error).message).toContain('no daemon listening (ENOENT)');
  });

  it('a socket nobody listens on (a dead daemon) is too', async () => {
    const stale = join(dir, 'stale.sock');
    staleSocket(stale);
    expect(await probeSocket(stale)).toBe('stale');
    const err = await new HttpApi(stale).health().catch((e: unknown) => e);
    expect(isNoDaemon(err)).toBe(true);
  });

  it('other failures are not "no daemon"', () => {
    expect(isNoDaemon(new Errors.DaemonUnavailable('x', 'y'))).toBe(false);
    expect(isNoDaemon(new Errors.NetworkNotFound('x'))).toBe(false);
  });

  it('openApi uses the daemon when one answers, and falls back to the in-process api otherwise', async () => {
    const backend = await openApi({ socket });
    expect(backend.mode).toBe('daemon');
    expect(backend.api).toBeInstanceOf(HttpApi);
    await backend.close();
    const viaEnv = await openApi({ env: { NETCTL_SOCKET: socket } });
    expect(viaEnv.mode).toBe('daemon');
    const local = await openApi({ socket: join(dir, 'none.sock'), kv: `lmdb://${join(dir, 'state.lmdb')}` });
    try {
      expect(local.mode).toBe('local');
      expect(await local.api.listNetworks()).toEqual([]);
    } finally {
      await local.close();
    }
  });
});

describe('listenUnix', () => {
  it('made the directory and the socket with mode 0660', () => {
    expect(statSync(socket).isSocket()).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
  });

  it('refuses a socket another daemon answers on', async () => {
    const second = buildApiServer(new FakeApi(), { logger: false });
    await expect(listenUnix(second, socket)).rejects.toMatchObject({ code: 'NETCTL_DAEMON_RUNNING' });
    await second.close();
    expect(await api.health()).toMatchObject({ version: 'fake' });
  });

  it('replaces a stale socket, refuses a file that is not a socket, and removes its socket on close', async () => {
    const path = join(dir, 'stale', 'api.sock');
    const first = buildApiServer(new FakeApi(), { logger: false });
    await listenUnix(first, path);
    await first.close();
    staleSocket(path);
    expect(await probeSocket(path)).toBe('stale');
    const next = buildApiServer(new FakeApi(), { logger: false });
    await listenUnix(next, path);
    expect(await new HttpApi(path).health()).toMatchObject({ version: 'fake' });
    await next.close();
    expect(() => statSync(path)).toThrow(/ENOENT/);

    const file = join(dir, 'plain');
    writeFileSync(file, 'not a socket');
    const third = buildApiServer(new FakeApi(), { logger: false });
    await expect(listenUnix(third, file)).rejects.toMatchObject({ code: 'NETCTL_INVALID_OPTION' });
    await third.close();
  });
});
