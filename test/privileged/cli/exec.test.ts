/**
 * `netctl sandbox exec` with the real netctl-exec: the command runs in the
 * sandbox's netns, and in a sandbox netctl made, with its /etc files and
 * hostname. The api is a FakeApi whose sandbox points at a test netns.
 */
import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NETCTL_EXEC } from '../../../src/cli/context.js';
import { removeSandboxEtc, writeSandboxEtc } from '../../../src/sandbox/etc.js';
import { harness } from '../../unit/cli/harness.js';
import { onCleanup, testNetns } from '../harness.js';

describe('netctl sandbox exec, real netctl-exec', () => {
  it('enters the netns of a sandbox it did not make, and nothing more', async () => {
    const ns = testNetns('ex');
    const { api, netctl } = harness();
    await api.createSandbox({ name: 'joined', key: ns.path });
    const r = await netctl(
      ['sandbox', 'exec', 'joined', '--', 'sh', '-c', 'stat -L -c %i /proc/self/ns/net; hostname'],
      {
        netctlExec: NETCTL_EXEC,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [inode, hostname] = r.stdout.trim().split('\n');
    expect(Number(inode)).toBe(statSync(ns.path).ino);
    expect(hostname).not.toBe('inbox');
  });

  it('gives a sandbox netctl made its own /etc files and hostname, and passes the exit status', async () => {
    const ns = testNetns('ex');
    const { api, netctl } = harness();
    const sandbox = await api.createSandbox({ name: 'own', hostname: 'inbox' });
    // Made by netctl (as the controller would), on the test netns.
    Object.assign(api.sandboxes.get(sandbox.id) as object, { key: ns.path, ownsNetns: true });
    writeSandboxEtc(sandbox.id, 'inbox', [{ ip: '10.9.0.2', names: ['peer'] }]);
    onCleanup(() => removeSandboxEtc(sandbox.id));
    const r = await netctl(
      ['sandbox', 'exec', 'own', 'sh', '-c', 'hostname; cat /etc/hostname; grep peer /etc/hosts; exit 9'],
      { netctlExec: NETCTL_EXEC },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('inbox\ninbox\n10.9.0.2\tpeer\n');
    expect(r.status).toBe(9);
  });

  it('a command that does not exist: 127, from netctl-exec', async () => {
    const ns = testNetns('ex');
    const { api, netctl } = harness();
    await api.createSandbox({ name: 'joined', key: ns.path });
    const r = await netctl(['sandbox', 'exec', 'joined', 'no-such-command-here'], {
      netctlExec: NETCTL_EXEC,
    });
    expect(r.status).toBe(127);
    expect(r.stderr).toContain('netctl-exec: cannot run no-such-command-here');
  });
});
