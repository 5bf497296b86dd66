import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/paths.js';
import { ipJson } from '../../helpers/tools.js';

const netctl = join(packageRoot, 'bin', 'netctl.js');

interface Check {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
}

function doctor(prefix: string[] = []) {
  const [cmd, ...args] = [...prefix, process.execPath, netctl, 'doctor', '--format', 'json'];
  const result = spawnSync(cmd as string, args, { encoding: 'utf8' });
  return {
    status: result.status,
    checks: JSON.parse(result.stdout || '[]') as Check[],
    stderr: result.stderr,
  };
}

const byName = (checks: Check[], name: string) => checks.find((c) => c.check === name);

describe('netctl doctor', () => {
  it('passes here, probing every link kind netctl needs, and changes nothing', () => {
    const linksBefore = ipJson(['link', 'show']);
    const netnsBefore = readdirSync('/run/netns');
    const { status, checks } = doctor();
    expect(status).toBe(0);
    for (const name of [
      'network namespaces',
      'link kind veth',
      'link kind bridge',
      'link kind vxlan',
      'iptables',
    ]) {
      expect(byName(checks, name)?.status, name).toBe('ok');
    }
    expect(byName(checks, 'iptables')?.detail).toMatch(/backend (nf_tables|legacy)/);
    expect(byName(checks, 'net.ipv4.ip_forward')?.detail).toMatch(/^(on|off)/);
    expect(ipJson(['link', 'show'])).toEqual(linksBefore);
    expect(readdirSync('/run/netns')).toEqual(netnsBefore);
  });

  it('fails with exit status 1 and says why when CAP_NET_ADMIN is missing', () => {
    const { status, checks } = doctor([
      'setpriv',
      '--bounding-set=-net_admin',
      '--inh-caps=-net_admin',
      '--',
    ]);
    expect(status).toBe(1);
    expect(byName(checks, 'CAP_NET_ADMIN')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/root/),
    });
    expect(byName(checks, 'link kind veth')?.status).toBe('fail');
  });

  it('refuses an unknown output format', () => {
    const result = spawnSync(process.execPath, [netctl, 'doctor', '--format', 'xml'], { encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Allowed choices are table, json/);
  });
});
