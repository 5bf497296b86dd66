/** `netctl cni install` and `netctl repair` against a FakeApi, in temp dirs. */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { harness } from './harness.js';

let dir: string;
let shim: string;
let bin: string;
let conf: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netctl-cni-install-'));
  shim = join(dir, 'netctl-cni-built');
  writeFileSync(shim, '#!/bin/sh\n', { mode: 0o755 });
  bin = join(dir, 'bin');
  conf = join(dir, 'net.d');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('netctl cni install', () => {
  it('links both plugins to the shim; with --network and --subnet, makes the network and writes its conflist', async () => {
    const { api, netctl } = harness();
    const args = [
      'cni',
      'install',
      '--bin-dir',
      bin,
      '--conf-dir',
      conf,
      '--network',
      'pods',
      '--subnet',
      '10.88.0.0/24',
    ];
    const r = await netctl(args, { netctlCni: shim });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readlinkSync(join(bin, 'netctl-cni'))).toBe(shim);
    expect(readlinkSync(join(bin, 'netctl-ipam'))).toBe(shim);
    expect(JSON.parse(readFileSync(join(conf, '50-pods.conflist'), 'utf8'))).toEqual({
      cniVersion: '1.0.0',
      name: 'pods',
      plugins: [
        { type: 'netctl-cni', network: 'pods', capabilities: { portMappings: true, ips: true, mac: true } },
      ],
    });
    expect([...api.networks.values()][0]).toMatchObject({
      name: 'pods',
      ipam: { config: [{ subnet: '10.88.0.0/24' }] },
    });
    expect(r.stdout).toContain('created network pods (10.88.0.0/24)');
    // Again: nothing changes.
    const again = await netctl(args, { netctlCni: shim });
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('(unchanged)');
    expect(api.networks.size).toBe(1);
  });

  it('an existing network needs no --subnet; a missing one without it is "not found" (3) and nothing is written', async () => {
    const { api, netctl } = harness();
    const missing = await netctl(
      ['cni', 'install', '--bin-dir', bin, '--conf-dir', conf, '--network', 'web'],
      {
        netctlCni: shim,
      },
    );
    expect(missing.status).toBe(3);
    expect(existsSync(bin)).toBe(false);
    await api.createNetwork({ name: 'web' });
    const r = await netctl(
      [
        'cni',
        'install',
        '--bin-dir',
        bin,
        '--conf-dir',
        conf,
        '--network',
        'web',
        '--priority',
        '7',
        '--cni-version',
        '0.4.0',
      ],
      { netctlCni: shim },
    );
    expect(r.status).toBe(0);
    expect(JSON.parse(readFileSync(join(conf, '07-web.conflist'), 'utf8'))).toMatchObject({
      cniVersion: '0.4.0',
      name: 'web',
    });
  });

  it('refuses to replace a file that is not ours unless --force', async () => {
    const { netctl } = harness();
    mkdirSync(bin);
    writeFileSync(join(bin, 'netctl-cni'), 'someone else');
    const r = await netctl(['cni', 'install', '--bin-dir', bin], { netctlCni: shim });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('exists and is not netctl');
    expect(readFileSync(join(bin, 'netctl-cni'), 'utf8')).toBe('someone else');
    expect((await netctl(['cni', 'install', '--bin-dir', bin, '--force'], { netctlCni: shim })).status).toBe(
      0,
    );
    expect(readlinkSync(join(bin, 'netctl-cni'))).toBe(shim);
  });

  it('a different conflist in the way is kept unless --force', async () => {
    const { api, netctl } = harness();
    await api.createNetwork({ name: 'web' });
    mkdirSync(conf);
    writeFileSync(join(conf, '50-web.conflist'), '{}');
    const args = ['cni', 'install', '--bin-dir', bin, '--conf-dir', conf, '--network', 'web'];
    expect((await netctl(args, { netctlCni: shim })).status).toBe(2);
    expect(readFileSync(join(conf, '50-web.conflist'), 'utf8')).toBe('{}');
    expect((await netctl([...args, '--force'], { netctlCni: shim })).status).toBe(0);
    expect(JSON.parse(readFileSync(join(conf, '50-web.conflist'), 'utf8')).name).toBe('web');
  });

  it('bad flags exit 2 before anything happens', async () => {
    const { netctl } = harness();
    for (const args of [
      ['--priority', '100'],
      ['--cni-version', '0.2.0'],
      ['--subnet', '10.0.0.0/24'],
      ['--network', 'a b'],
    ]) {
      expect(
        (await netctl(['cni', 'install', '--bin-dir', bin, ...args], { netctlCni: shim })).status,
        args.join(' '),
      ).toBe(2);
    }
    expect(existsSync(bin)).toBe(false);
    expect(
      (await netctl(['cni', 'install', '--bin-dir', bin], { netctlCni: join(dir, 'unbuilt') })).status,
    ).toBe(1);
  });
});

describe('netctl repair', () => {
  it('restores what is missing and says so; nothing missing, says that', async () => {
    const { api, netctl } = harness();
    const web = await api.createNetwork({ name: 'web' });
    expect((await netctl(['repair'])).stdout).toBe('Nothing to repair.\n');
    api.missing.set(web.id, ['bridge nc-1', '2 firewall rule(s)']);
    const r = await netctl(['repair', 'web']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('missing: bridge nc-1, 2 firewall rule(s)');
    expect((await netctl(['repair', 'web'])).stdout).toBe('Network web is complete: nothing to repair.\n');
    api.missing.set(web.id, ['bridge nc-1']);
    expect(JSON.parse((await netctl(['repair', '--format', 'json'])).stdout)).toMatchObject([
      { name: 'web', action: 'restore' },
    ]);
    expect((await netctl(['repair', 'nope'])).status).toBe(3);
  });
});
