import { Writable } from 'node:stream';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NetctlApi } from '../../../src/controller/api.js';
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { Errors } from '../../../src/errors.js';
import { buildApiServer } from '../../../src/server/api.js';

let api: FakeApi;
let app: FastifyInstance;

beforeEach(async () => {
  api = new FakeApi();
  app = buildApiServer(api, { logger: false, bodyLimit: 64 * 1024 });
  await app.ready();
});

afterEach(() => app.close());

async function call(options: InjectOptions) {
  const res = await app.inject(options);
  return { status: res.statusCode, body: res.body ? res.json() : undefined, headers: res.headers };
}

const post = (url: string, payload?: object) =>
  call({ method: 'POST', url, ...(payload ? { payload } : {}) });

async function seed() {
  const web = (await post('/v1/networks', { name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } }))
    .body;
  const box = (await post('/v1/sandboxes', { name: 'box' })).body;
  return { web, box };
}

describe('netctl REST API: routes', () => {
  it('GET /v1/health', async () => {
    expect(await call({ method: 'GET', url: '/v1/health' })).toMatchObject({
      status: 200,
      body: { version: 'fake', networks: 0, sandboxes: 0, endpoints: 0 },
    });
  });

  it('POST /v1/networks creates (201, defaults applied by the schema) and GET lists', async () => {
    const res = await post('/v1/networks', { name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({
      name: 'web',
      driver: 'bridge',
      ipam: { config: [{ subnet: '10.1.0.0/24', gateway: '10.1.0.1' }] },
    });
    expect(res.body.id).toMatch(/^[0-9a-f]{64}$/);
    // The controller got the parsed request, defaults filled in.
    expect(api.calls.at(-1)?.args[0]).toMatchObject({ driver: 'bridge', enableIPv6: false, labels: {} });
    const list = await call({ method: 'GET', url: '/v1/networks' });
    expect(list.status).toBe(200);
    expect(list.body.map((n: { name: string }) => n.name)).toEqual(['web']);
  });

  it('GET /v1/networks/:ref by name, id and id prefix, with endpoints', async () => {
    const { web } = await seed();
    await post('/v1/networks/web/connect', { sandbox: 'box' });
    for (const ref of ['web', web.id, web.id.slice(0, 12)]) {
      const res = await call({ method: 'GET', url: `/v1/networks/${ref}` });
      expect(res.status).toBe(200);
      expect(res.body.network.id).toBe(web.id);
      expect(res.body.endpoints).toMatchObject([{ sandboxName: 'box', ipv4: '10.1.0.2/24' }]);
    }
  });

  it('DELETE /v1/networks/:ref removes and returns the network', async () => {
    await seed();
    expect(await call({ method: 'DELETE', url: '/v1/networks/web' })).toMatchObject({
      status: 200,
      body: { name: 'web' },
    });
    expect(api.networks.size).toBe(0);
  });

  it('POST /v1/networks/prune removes networks without endpoints (and still lets a network be called "prune")', async () => {
    await seed();
    await post('/v1/networks', { name: 'prune' });
    await post('/v1/networks/web/connect', { sandbox: 'box' });
    expect((await call({ method: 'GET', url: '/v1/networks/prune' })).body.network.name).toBe('prune');
    expect(await post('/v1/networks/prune')).toEqual(
      expect.objectContaining({ status: 200, body: { networksDeleted: ['prune'] } }),
    );
  });

  it('POST /v1/networks/:ref/connect takes the network from the URL; disconnect takes {sandbox}', async () => {
    await seed();
    const res = await post('/v1/networks/web/connect', {
      sandbox: 'box',
      ipv4: '10.1.0.9',
      aliases: ['db'],
      portMappings: [{ hostPort: 8080, containerPort: 80 }],
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      ipv4: '10.1.0.9/24',
      aliases: ['db'],
      portMappings: [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }],
    });
    expect(api.calls.at(-1)).toMatchObject({ method: 'connect', args: [{ network: 'web', sandbox: 'box' }] });
    const out = await post('/v1/networks/web/disconnect', { sandbox: 'box' });
    expect(out).toMatchObject({ status: 200, body: { id: res.body.id } });
    expect(api.endpoints.size).toBe(0);
  });

  it('sandboxes: POST, GET list, GET one, PUT pid, DELETE', async () => {
    const created = await post('/v1/sandboxes', { name: 'box', hostname: 'h1', labels: { a: 'b' } });
    expect(created).toMatchObject({ status: 201, body: { name: 'box', hostname: 'h1', ownsNetns: true } });
    expect((await call({ method: 'GET', url: '/v1/sandboxes' })).body).toHaveLength(1);
    expect((await call({ method: 'GET', url: '/v1/sandboxes/box' })).body).toMatchObject({
      sandbox: { name: 'box' },
      endpoints: [],
    });
    expect(await call({ method: 'PUT', url: '/v1/sandboxes/box/pid', payload: { pid: 4242 } })).toMatchObject(
      {
        status: 200,
        body: { pid: 4242 },
      },
    );
    expect(await call({ method: 'DELETE', url: '/v1/sandboxes/box' })).toMatchObject({ status: 200 });
    expect(api.sandboxes.size).toBe(0);
  });

  it('POST /v1/gc: {dryRun} or no body at all (a real run)', async () => {
    api.pendingGc = [{ kind: 'link', name: 'nc-1', owner: 'net:x', action: 'remove', reason: 'no network' }];
    expect(await post('/v1/gc', { dryRun: true })).toMatchObject({
      status: 200,
      body: { dryRun: true, actions: [{ name: 'nc-1' }] },
    });
    expect(await post('/v1/gc')).toMatchObject({ status: 200, body: { dryRun: false, actions: [{}] } });
    expect((await post('/v1/gc', {})).body).toEqual({ dryRun: false, actions: [] });
  });

  it('GET /v1/networks/:ref/check, with ?sandbox= for one attachment', async () => {
    const { web } = await seed();
    api.missing.set(web.id, ['bridge nc-1']);
    expect(await call({ method: 'GET', url: '/v1/networks/web/check' })).toMatchObject({
      status: 200,
      body: { network: 'web', problems: ['bridge nc-1'] },
    });
    await post('/v1/networks/web/connect', { sandbox: 'box' });
    expect(await call({ method: 'GET', url: '/v1/networks/web/check?sandbox=box' })).toMatchObject({
      status: 200,
      body: { network: 'web', sandbox: 'box', problems: ['bridge nc-1'], sandboxProblems: [] },
    });
    expect(api.calls.at(-1)).toEqual({ method: 'check', args: ['web', 'box'] });
    expect(await call({ method: 'GET', url: '/v1/networks/web/check?other=1' })).toMatchObject({
      status: 400,
      body: { code: 'NETCTL_INVALID_REQUEST' },
    });
  });

  it('POST /v1/repair: one network, or every network without a body', async () => {
    const { web } = await seed();
    api.missing.set(web.id, ['bridge nc-1']);
    expect(await post('/v1/repair', { network: 'web' })).toMatchObject({
      status: 200,
      body: {
        actions: [{ kind: 'network', name: 'web', action: 'restore', reason: 'missing: bridge nc-1' }],
      },
    });
    expect(await post('/v1/repair')).toEqual(expect.objectContaining({ status: 200, body: { actions: [] } }));
    expect(api.calls.filter((c) => c.method === 'repair').map((c) => c.args)).toEqual([['web'], [undefined]]);
  });
});

describe('netctl REST API: errors', () => {
  it('unknown network: 404 with the registry code, message and class', async () => {
    expect(await call({ method: 'GET', url: '/v1/networks/nope' })).toMatchObject({
      status: 404,
      body: { code: 'NETCTL_NETWORK_NOT_FOUND', message: 'network nope not found', class: 'notFound' },
    });
    expect((await call({ method: 'DELETE', url: '/v1/sandboxes/nope' })).body.code).toBe(
      'NETCTL_SANDBOX_NOT_FOUND',
    );
  });

  it('duplicate name: 409', async () => {
    await seed();
    expect(await post('/v1/networks', { name: 'web' })).toMatchObject({
      status: 409,
      body: {
        code: 'NETCTL_NETWORK_EXISTS',
        message: 'network with name web already exists',
        class: 'conflict',
      },
    });
  });

  it('network in use: 409 naming the endpoints', async () => {
    await seed();
    await post('/v1/networks/web/connect', { sandbox: 'box' });
    expect(await call({ method: 'DELETE', url: '/v1/networks/web' })).toMatchObject({
      status: 409,
      body: { code: 'NETCTL_NETWORK_IN_USE', message: expect.stringContaining('(box)') },
    });
  });

  it('invalid name: 400 NETCTL_INVALID_REQUEST naming the field and the rule; nothing called', async () => {
    const res = await post('/v1/networks', { name: '-web' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 'NETCTL_INVALID_REQUEST',
      class: 'badRequest',
      message:
        'invalid request: name: "-web" is not a valid name: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64 characters)',
    });
    expect(api.calls).toEqual([]);
  });

  it('a CIDR that is not one: 400 naming the field', async () => {
    const res = await post('/v1/networks', { name: 'web', ipam: { config: [{ subnet: '10.1.0.0/33' }] } });
    expect(res).toMatchObject({ status: 400, body: { code: 'NETCTL_INVALID_REQUEST' } });
    expect(res.body.message).toBe(
      'invalid request: ipam.config[0].subnet: "10.1.0.0/33" is not a valid CIDR (expected e.g. 10.1.0.0/24 or fd00::/64)',
    );
  });

  it('every bad field is named, in one message', async () => {
    const res = await post('/v1/networks/web/connect', {
      sandbox: 'box',
      ipv4: '10.1.0.300',
      portMappings: [{ hostPort: 0, containerPort: 80 }],
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain('ipv4: "10.1.0.300" is not a valid IPv4 address');
    expect(res.body.message).toContain('portMappings[0].hostPort: expected number to be >=1 (got 0)');
  });

  it('unknown fields are rejected by the strict schemas (including the network in a connect body)', async () => {
    expect((await post('/v1/networks', { name: 'web', subnet: '10.0.0.0/8' })).body).toMatchObject({
      code: 'NETCTL_INVALID_REQUEST',
      message: 'invalid request: unknown field "subnet"',
    });
    expect((await post('/v1/networks/web/connect', { sandbox: 'box', network: 'web' })).body.message).toBe(
      'invalid request: unknown field "network"',
    );
    expect(
      (await call({ method: 'PUT', url: '/v1/sandboxes/b/pid', payload: { pid: 1, x: 1 } })).status,
    ).toBe(400);
    expect(api.calls).toEqual([]);
  });

  it('a body missing where one is required: 400', async () => {
    expect((await post('/v1/networks')).body).toMatchObject({
      code: 'NETCTL_INVALID_REQUEST',
      message: 'invalid request: a JSON body is required',
    });
  });

  it('malformed JSON: 400', async () => {
    const res = await call({
      method: 'POST',
      url: '/v1/networks',
      headers: { 'content-type': 'application/json' },
      body: '{"name": "web",',
    });
    expect(res).toMatchObject({
      status: 400,
      body: { code: 'NETCTL_INVALID_REQUEST', message: 'invalid request: body is not valid JSON' },
    });
  });

  it('a request WITHOUT Content-Type is parsed as JSON (Docker plugin clients send none)', async () => {
    const bare = buildApiServer(api, { logger: false });
    const seen: (string | undefined)[] = [];
    bare.addHook('onRequest', async (request) => {
      seen.push(request.headers['content-type']);
    });
    const res = await bare.inject({
      method: 'POST',
      url: '/v1/networks',
      payload: Buffer.from(JSON.stringify({ name: 'web' })),
    });
    expect(seen).toEqual([undefined]);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ name: 'web' });
    await bare.close();
  });

  it('any other content type is parsed as JSON too (Docker: application/vnd.docker.plugins.v1.2+json)', async () => {
    const res = await call({
      method: 'POST',
      url: '/v1/sandboxes',
      headers: { 'content-type': 'application/vnd.docker.plugins.v1.2+json' },
      body: JSON.stringify({ name: 'box' }),
    });
    expect(res.status).toBe(201);
  });

  it('a body over the limit: 413 NETCTL_REQUEST_TOO_LARGE (class badRequest); nothing called', async () => {
    const res = await post('/v1/networks', { name: 'web', labels: { big: 'x'.repeat(70 * 1024) } });
    expect(res).toMatchObject({
      status: 413,
      body: {
        code: 'NETCTL_REQUEST_TOO_LARGE',
        class: 'badRequest',
        message: 'request body is larger than 65536 bytes',
      },
    });
    expect(api.calls).toEqual([]);
  });

  it('the default limit is 1 MiB', async () => {
    const big = buildApiServer(api, { logger: false });
    const res = await big.inject({
      method: 'POST',
      url: '/v1/networks',
      payload: { name: 'web', labels: { big: 'x'.repeat(1024 * 1024) } },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().message).toBe('request body is larger than 1048576 bytes');
    await big.close();
  });

  it('unknown route: 404 JSON', async () => {
    for (const [method, url] of [
      ['GET', '/v1/nothing'],
      ['POST', '/v1/networks/web'],
      ['GET', '/'],
    ] as const) {
      expect(await call({ method, url })).toMatchObject({
        status: 404,
        body: { code: 'NETCTL_ROUTE_NOT_FOUND', class: 'notFound', message: `no API route ${method} ${url}` },
      });
    }
  });

  it('anything else: 500 NETCTL_INTERNAL, the message logged', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logged = buildApiServer(api, { logger: pino({ level: 'error' }, sink) });
    api.failNext.set('listNetworks', new TypeError('boom'));
    const res = await logged.inject({ method: 'GET', url: '/v1/networks' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      code: 'NETCTL_INTERNAL',
      class: 'internal',
      message: 'internal error: boom',
    });
    expect(lines.join('')).toContain('boom');
    await logged.close();
  });

  it('every registry error keeps its class status, from any route', async () => {
    api.failNext.set('health', new Errors.StoreUnavailable('redis://x', 'connection refused'));
    expect(await call({ method: 'GET', url: '/v1/health' })).toMatchObject({
      status: 503,
      body: { code: 'NETCTL_STORE_UNAVAILABLE', class: 'unavailable' },
    });
  });
});

it('FakeApi is a NetctlApi', () => {
  const fake: NetctlApi = new FakeApi();
  expect(typeof fake.connect).toBe('function');
});
