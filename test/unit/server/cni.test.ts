/**
 * POST /v1/cni (src/server/cni.ts) with app.inject and a FakeApi: the body
 * is what the plugin prints, the Netctl-Cni-Exit header its exit status.
 * The real shim against a real daemon is in test/privileged/cni.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_CONFIG_BYTES } from '../../../src/cni/skel.js';
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { MemoryStore } from '../../../src/kv/testing/memory.js';
import { buildApiServer } from '../../../src/server/api.js';
import { netnsStandIns } from '../../helpers/netns-stand-ins.js';

let api: FakeApi;
let app: FastifyInstance;
const standIns = netnsStandIns();
const netns = standIns.path('ns');
afterAll(() => standIns.remove());

beforeEach(async () => {
  api = new FakeApi({ checkKey: standIns.checkKey });
  const ipam = new Ipam(new MemoryStore());
  app = buildApiServer(api, { logger: false, cni: { api: async () => api, ipam: async () => ipam } });
  await app.ready();
});

afterEach(() => app.close());

async function cni(env: Record<string, string>, config: unknown, plugin?: string) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/cni',
    payload: {
      env,
      config: typeof config === 'string' ? config : JSON.stringify(config),
      ...(plugin ? { plugin } : {}),
    },
  });
  return {
    status: res.statusCode,
    exit: res.headers['netctl-cni-exit'],
    type: res.headers['content-type'],
    body: res.body ? res.json() : undefined,
  };
}

const ADD = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: netns,
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/x',
};

describe('POST /v1/cni', () => {
  it('VERSION', async () => {
    expect(await cni({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' })).toMatchObject({
      status: 200,
      exit: '0',
      body: { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] },
    });
  });

  it("ADD against the daemon's controller: the result, exit 0", async () => {
    await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
    const r = await cni(ADD, { cniVersion: '0.4.0', name: 'web', type: 'netctl-cni' });
    expect(r).toMatchObject({
      status: 200,
      exit: '0',
      body: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.2/24' }] },
    });
    expect(r.type).toMatch(/^application\/json/);
    expect(api.sandboxes.size).toBe(1);
  });

  it('a CNI error is still a 200: the error JSON as body, its code as exit status', async () => {
    expect(await cni(ADD, '{not json')).toMatchObject({ status: 200, exit: '6', body: { code: 6 } });
    expect(await cni({ ...ADD, CNI_IFNAME: '' }, { cniVersion: '1.0.0', name: 'web' })).toMatchObject({
      exit: '4',
      body: { code: 4, msg: 'required env variables [CNI_IFNAME] missing' },
    });
    expect(await cni(ADD, { cniVersion: '1.0.0', name: 'web' })).toMatchObject({
      exit: '7',
      body: { code: 7 },
    });
  });

  it('a configuration over the limit is CNI error 5, even escaped past the API body limit; one under it is read', async () => {
    // Control characters: each is six bytes once the shim escapes it in JSON.
    const over = `{"cniVersion":"1.0.0","name":"web","pad":"${'\u0001'.repeat(MAX_CONFIG_BYTES)}"}`;
    expect(await cni(ADD, over)).toMatchObject({
      status: 200,
      exit: '5',
      body: { code: 5, msg: 'network configuration on stdin is too large' },
    });
    const under = `{"cniVersion":"1.0.0","name":"web","pad":"${'\u0001'.repeat(MAX_CONFIG_BYTES - 100)}"}`;
    // Read and decoded: a control character in a JSON string is error 6, not 5.
    expect(await cni(ADD, under)).toMatchObject({ status: 200, exit: '6', body: { code: 6 } });
    expect(api.calls).toEqual([]);
  });

  it('netctl-ipam by name', async () => {
    const config = {
      cniVersion: '1.0.0',
      name: 'ref',
      type: 'bridge',
      ipam: { type: 'netctl-ipam', subnet: '10.3.0.0/24' },
    };
    expect(await cni(ADD, config, 'netctl-ipam')).toMatchObject({
      exit: '0',
      body: { cniVersion: '1.0.0', ips: [{ address: '10.3.0.2/24', gateway: '10.3.0.1' }] },
    });
  });

  it("a request the shim never sends: the API's own 400", async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/cni',
      payload: { env: { PATH: '/bin' }, config: '{}' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'NETCTL_INVALID_REQUEST' });
    expect((await cni({}, '{}', 'host-local')).status).toBe(400);
  });

  it('absent unless the server is built with a CNI backend', async () => {
    const plain = buildApiServer(api, { logger: false });
    const res = await plain.inject({ method: 'POST', url: '/v1/cni', payload: { env: {}, config: '' } });
    expect(res.statusCode).toBe(404);
    await plain.close();
  });
});
