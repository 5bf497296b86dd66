/**
 * The real `netctl` executable (bin/netctl.js → dist/, built by `npm test`'s
 * ensure step or `npm run build`), against a real API server on a temporary
 * socket backed by a FakeApi: exit statuses and output as a script sees them.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { packageRoot } from '../../../src/paths.js';
import { buildApiServer } from '../../../src/server/api.js';
import { listenUnix } from '../../../src/server/listen.js';
import { spawnCollected } from '../../helpers/spawned.js';

const bin = join(packageRoot, 'bin', 'netctl.js');
let dir: string;
let socket: string;
let api: FakeApi;
let app: FastifyInstance;

async function netctl(args: string[], env: NodeJS.ProcessEnv = {}) {
  // Async spawn: the server answering it runs in this very process. A state
  // dir of ours even so: a CLI that found no daemon would otherwise make
  // /var/lib/netctl on the host's disk.
  const { status, stdout, stderr } = await spawnCollected(process.execPath, [bin, ...args], {
    env: { PATH: process.env.PATH, NETCTL_LOG_LEVEL: 'warn', NETCTL_STATE_DIR: join(dir, 'state'), ...env },
  });
  return { status, stdout, stderr };
}

beforeAll(async () => {
  if (!existsSync(join(packageRoot, 'dist', 'src', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'netctl-bin-'));
  socket = join(dir, 'api.sock');
  api = new FakeApi();
  app = buildApiServer(api, { logger: false });
  await listenUnix(app, socket);
});

afterAll(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('netctl, spawned', () => {
  it('talks to the daemon on --socket: create prints the id, ls --format json lists it (exit 0)', async () => {
    const created = await netctl(['--socket', socket, 'network', 'create', '--subnet', '10.5.0.0/24', 'web']);
    expect(created).toMatchObject({ status: 0, stderr: '' });
    expect(created.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const ls = await netctl(['network', 'ls', '--format', 'json'], { NETCTL_SOCKET: socket });
    expect(ls.status).toBe(0);
    expect(JSON.parse(ls.stdout)).toMatchObject([
      { name: 'web', ipam: { config: [{ subnet: '10.5.0.0/24' }] } },
    ]);
  });

  it('exit statuses: 3 not found, 4 conflict, with `netctl: message` on stderr', async () => {
    expect(await netctl(['network', 'rm', 'ghost'], { NETCTL_SOCKET: socket })).toEqual({
      status: 3,
      stdout: '',
      stderr: 'netctl: network ghost not found\n',
    });
    expect(await netctl(['--socket', socket, 'network', 'create', 'web'])).toMatchObject({
      status: 4,
      stderr: 'netctl: network with name web already exists\n',
    });
  });

  it('bad input: 2, before anything reaches the daemon', async () => {
    const before = api.calls.length;
    const r = await netctl(['--socket', socket, 'network', 'create', '--subnet', '10.0.0.0/33', 'x']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^netctl: option '--subnet <cidr>' argument '10\.0\.0\.0\/33' is invalid\. /);
    expect(api.calls.length).toBe(before);
  });

  it('runs the controller in its own process when no daemon answers', async () => {
    const r = await netctl(['--socket', join(dir, 'none.sock'), 'sandbox', 'ls', '--format', 'json'], {
      NETCTL_STATE_DIR: join(dir, 'state'),
    });
    expect(r).toMatchObject({ status: 0, stdout: '[]\n' });
  });
});
