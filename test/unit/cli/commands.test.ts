/** Every verb against a FakeApi, in-process: output, exit statuses, what is called. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Errors } from '../../../src/errors.js';
import { sandboxEtcDir } from '../../../src/paths.js';
import { harness, standIns } from './harness.js';

async function world() {
  const h = harness();
  const web = await h.api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
  const db = await h.api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
  const box = await h.api.createSandbox({ name: 'box' });
  h.api.calls.length = 0;
  return { ...h, web, db, box };
}

describe('network', () => {
  it('ls: a table like docker network ls, plus SUBNET', async () => {
    const { netctl, web, db } = await world();
    const r = await netctl(['network', 'ls']);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[1]).toMatch(/NETWORK ID\s+│\s+NAME\s+│\s+DRIVER\s+│\s+SCOPE\s+│\s+SUBNET/);
    expect(r.stdout).toContain(db.id.slice(0, 12));
    expect(r.stdout).not.toContain(db.id.slice(0, 13));
    // Sorted by name, as Docker does.
    expect(r.stdout.indexOf(' db ')).toBeLessThan(r.stdout.indexOf(' web '));
    expect(r.stdout).toMatch(
      new RegExp(`${web.id.slice(0, 12)}\\s+│\\s+web\\s+│\\s+bridge\\s+│\\s+local\\s+│\\s+10\\.1\\.0\\.0/24`),
    );
    expect(r.stdout).toMatch(/db\s+│\s+bridge\s+│\s+local\s+│\s+10\.2\.0\.0\/24/);
  });

  it('ls -q, --no-trunc, --format json', async () => {
    const { netctl, web, db } = await world();
    expect((await netctl(['network', 'ls', '-q'])).stdout).toBe(
      `${db.id.slice(0, 12)}\n${web.id.slice(0, 12)}\n`,
    );
    expect((await netctl(['network', 'ls', '-q', '--no-trunc'])).stdout).toBe(`${db.id}\n${web.id}\n`);
    const json = JSON.parse((await netctl(['network', 'list', '--format', 'json'])).stdout);
    expect(json.map((n: { id: string }) => n.id)).toEqual([db.id, web.id]);
  });

  it('create prints the id; a duplicate exits 4', async () => {
    const { api, netctl } = await world();
    const r = await netctl(['network', 'create', 'new']);
    expect(r.stdout.trim()).toBe([...api.networks.values()].find((n) => n.name === 'new')?.id);
    expect(await netctl(['network', 'create', 'new'])).toMatchObject({
      status: 4,
      stdout: '',
      stderr: 'netctl: network with name new already exists\n',
    });
  });

  it("inspect: Docker's shape, with each container's addresses, MAC and published ports", async () => {
    const { api, netctl, web, box } = await world();
    const ep = await api.connect({
      network: 'web',
      sandbox: 'box',
      portMappings: [
        { hostPort: 8080, containerPort: 80 },
        {
          proto: 'udp',
          hostIp: '127.0.0.1',
          hostPort: 5000,
          hostPortEnd: 5001,
          containerPort: 53,
          containerPortEnd: 54,
        },
      ],
    });
    const r = await netctl(['network', 'inspect', 'web']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      {
        Name: 'web',
        Id: web.id,
        Created: web.created,
        Scope: 'local',
        Driver: 'bridge',
        EnableIPv6: false,
        IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: '10.1.0.0/24', Gateway: '10.1.0.1' }] },
        Internal: false,
        Attachable: true,
        Ingress: false,
        ConfigOnly: false,
        Containers: {
          [box.id]: {
            Name: 'box',
            EndpointID: ep.id,
            MacAddress: ep.mac,
            IPv4Address: '10.1.0.2/24',
            IPv6Address: '',
            Ports: {
              '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }],
              '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5000' }],
              '54/udp': [{ HostIp: '127.0.0.1', HostPort: '5001' }],
            },
          },
        },
        Options: {},
        Labels: {},
      },
    ]);
  });

  it('inspect several: prints those found, reports the rest, exits 3', async () => {
    const { netctl } = await world();
    const r = await netctl(['network', 'inspect', 'web', 'ghost', 'db']);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout).map((n: { Name: string }) => n.Name)).toEqual(['web', 'db']);
    expect(r.stderr).toBe('netctl: network ghost not found\n');
  });

  it('rm: each name, failures reported one by one, the first failure decides the status', async () => {
    const { api, netctl } = await world();
    await api.connect({ network: 'db', sandbox: 'box' });
    const r = await netctl(['network', 'rm', 'ghost', 'db', 'web']);
    expect(r.stdout).toBe('web\n');
    expect(r.stderr).toBe(
      'netctl: network ghost not found\nnetctl: network db has active endpoints (box): disconnect them first\n',
    );
    expect(r.status).toBe(3);
    expect([...api.networks.values()].map((n) => n.name)).toEqual(['db']);
    expect((await netctl(['network', 'remove', 'db'])).status).toBe(4);
  });

  it('prune -f removes unused networks, Docker-style report', async () => {
    const { api, netctl } = await world();
    await api.connect({ network: 'db', sandbox: 'box' });
    const r = await netctl(['network', 'prune', '-f']);
    expect(r).toMatchObject({ status: 0, stdout: 'Deleted Networks:\nweb\n' });
    expect((await netctl(['network', 'prune', '--force'])).stdout).toBe('');
  });

  it('prune asks on a terminal: y prunes, anything else does nothing', async () => {
    const { api, netctl } = await world();
    const no = await netctl(['network', 'prune'], { interactive: true, input: 'n\n' });
    expect(no).toMatchObject({ status: 0, stdout: '' });
    expect(no.stderr).toContain('Are you sure you want to continue? [y/N]');
    expect(api.calls).toEqual([]);
    const yes = await netctl(['network', 'prune'], { interactive: true, input: 'y\n' });
    expect(yes).toMatchObject({ status: 0, stdout: 'Deleted Networks:\nweb\ndb\n' });
  });

  it('connect and disconnect; errors keep their status', async () => {
    const { api, netctl } = await world();
    expect(await netctl(['network', 'connect', 'web', 'box'])).toMatchObject({ status: 0, stdout: '' });
    expect(await netctl(['network', 'connect', 'web', 'box'])).toMatchObject({
      status: 4,
      stderr: 'netctl: endpoint with name box already exists in network web\n',
    });
    expect((await netctl(['network', 'connect', 'web', 'ghost'])).status).toBe(3);
    expect(await netctl(['network', 'disconnect', 'web', 'box'])).toMatchObject({ status: 0, stdout: '' });
    expect(api.endpoints.size).toBe(0);
    expect((await netctl(['network', 'disconnect', 'web', 'box'])).stderr).toBe(
      'netctl: endpoint box on web not found\n',
    );
  });
});

describe('sandbox', () => {
  it('create prints the id; ls shows a table, -q ids, json everything', async () => {
    const { api, netctl } = harness();
    const r = await netctl(['sandbox', 'create', '--hostname', 'h1', '--label', 'a=b', 'box']);
    expect(r.status).toBe(0);
    const id = r.stdout.trim();
    expect(api.calls[0]).toEqual({
      method: 'createSandbox',
      args: [{ name: 'box', hostname: 'h1', labels: { a: 'b' } }],
    });
    const outside = standIns.path('other');
    expect((await netctl(['sandbox', 'create', '--netns', outside, 'other'])).status).toBe(0);
    expect(api.calls[1]?.args[0]).toMatchObject({ key: outside });
    const ls = await netctl(['sandbox', 'ls']);
    expect(ls.stdout).toMatch(/SANDBOX ID\s+│\s+NAME\s+│\s+HOSTNAME\s+│\s+NETNS\s+│\s+ENDPOINTS\s+│\s+PID/);
    expect(ls.stdout).toMatch(
      new RegExp(`${id.slice(0, 12)}\\s+│\\s+box\\s+│\\s+h1\\s+│\\s+/run/netns/\\S+\\s+│\\s+0`),
    );
    expect((await netctl(['sandbox', 'ls', '-q'])).stdout.split('\n')[0]).toBe(id.slice(0, 12));
    expect(JSON.parse((await netctl(['sandbox', 'ls', '--format', 'json'])).stdout)).toHaveLength(2);
  });

  it('inspect shows the sandbox with its endpoints; rm removes each', async () => {
    const { api, netctl } = await world();
    await api.connect({ network: 'web', sandbox: 'box', aliases: ['x'] });
    const [details] = JSON.parse((await netctl(['sandbox', 'inspect', 'box'])).stdout);
    expect(details).toMatchObject({
      name: 'box',
      endpoints: [{ networkName: 'web', ipv4: '10.1.0.2/24', aliases: ['x'] }],
    });
    const rm = await netctl(['sandbox', 'rm', 'box', 'ghost']);
    expect(rm).toMatchObject({ status: 3, stdout: 'box\n', stderr: 'netctl: sandbox ghost not found\n' });
    expect(api.sandboxes.size).toBe(0);
  });

  it('exec: netctl-exec with the netns, the /etc dir and hostname of a sandbox netctl made; its status', async () => {
    const { netctl, box } = await world();
    const r = await netctl(['sandbox', 'exec', 'box', 'sh', '-c', 'echo out; exit 7']);
    expect(r.status).toBe(7);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe(
      `fake-netctl-exec --netns ${box.key} --etc ${sandboxEtcDir(box.id)} --hostname ${box.hostname} -- sh -c echo out; exit 7\n`,
    );
  });

  it('exec in a netns netctl did not make: only entered, no /etc or hostname of ours', async () => {
    const { api, netctl } = harness();
    const outside = standIns.path('joined');
    await api.createSandbox({ name: 'joined', key: outside });
    const r = await netctl(['sandbox', 'exec', 'joined', '--', 'true']);
    expect(r).toMatchObject({ status: 0, stderr: `fake-netctl-exec --netns ${outside} -- true\n` });
    expect((await netctl(['sandbox', 'exec', 'joined', '--'])).status).toBe(2);
  });

  it('exec: a command killed by a signal exits 128+n', async () => {
    const { netctl } = await world();
    expect((await netctl(['sandbox', 'exec', 'box', 'sh', '-c', 'kill -TERM $$'])).status).toBe(143);
  });

  it('exec: a missing netctl-exec is an internal error (1), and an unknown sandbox 3', async () => {
    const { netctl } = await world();
    const r = await netctl(['sandbox', 'exec', 'box', 'true'], { netctlExec: '/nonexistent/netctl-exec' });
    expect(r).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('/nonexistent/netctl-exec is missing'),
    });
    expect((await netctl(['sandbox', 'exec', 'ghost', 'true'])).status).toBe(3);
  });
});

describe('run', () => {
  it('foreground: sandbox, networks (--ip/-p on the first), command, its status; the sandbox stays', async () => {
    const { api, netctl } = await world();
    const r = await netctl([
      'run',
      '--name',
      'job',
      '--hostname',
      'jobhost',
      '--network',
      'web',
      '--network',
      'db',
      '--ip',
      '10.1.0.50',
      '-p',
      '8080:80',
      '--',
      'sh',
      '-c',
      'echo hi; exit 3',
    ]);
    expect(r.status).toBe(3);
    expect(r.stdout).toBe('hi\n');
    const job = [...api.sandboxes.values()].find((s) => s.name === 'job');
    expect(job).toBeDefined();
    expect(api.calls.map((c) => c.method)).toEqual(['createSandbox', 'connect', 'connect']);
    expect(api.calls[0]?.args[0]).toEqual({ name: 'job', hostname: 'jobhost', labels: {} });
    expect(api.calls[1]?.args[0]).toEqual({
      network: 'web',
      sandbox: job?.id,
      ipv4: '10.1.0.50',
      aliases: [],
      portMappings: [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }],
    });
    expect(api.calls[2]?.args[0]).toEqual({ network: 'db', sandbox: job?.id, aliases: [], portMappings: [] });
    expect(r.stderr).toContain(
      `--netns ${job?.key} --etc ${sandboxEtcDir(job?.id as string)} --hostname jobhost --`,
    );
  });

  it('--rm removes the sandbox after the command (leaving its networks first)', async () => {
    const { api, netctl } = await world();
    const r = await netctl(['run', '--rm', '--network', 'web', 'true']);
    expect(r.status).toBe(0);
    expect(api.calls.map((c) => c.method)).toEqual([
      'createSandbox',
      'connect',
      'disconnect',
      'deleteSandbox',
    ]);
    expect(api.sandboxes.size).toBe(1); // only the world's box
    expect(api.endpoints.size).toBe(0);
  });

  it('no --network (or --network none): loopback only, nothing connected', async () => {
    const { api, netctl } = harness();
    expect((await netctl(['run', 'true'])).status).toBe(0);
    expect((await netctl(['run', '--network', 'none', 'true'])).status).toBe(0);
    expect(api.calls.map((c) => c.method)).toEqual(['createSandbox', 'createSandbox']);
  });

  it('generates a Docker-like name, and another one on a clash', async () => {
    const { api, netctl } = harness();
    api.failNext.set('createSandbox', new Errors.SandboxExists('taken'));
    expect((await netctl(['run', 'true'])).status).toBe(0);
    const names = api.calls.map((c) => (c.args[0] as { name: string }).name);
    expect(names).toHaveLength(2);
    expect(names[0]).toMatch(/^[a-z]+_[a-z]+$/);
    expect(names[1]).toMatch(/^[a-z]+_[a-z]+\d$/);
    // A name the user chose is not replaced.
    api.failNext.set('createSandbox', new Errors.SandboxExists('job'));
    expect((await netctl(['run', '--name', 'job', 'true'])).status).toBe(4);
  });

  it('a failure half-way removes what run made, and exits with the failure', async () => {
    const { api, netctl } = await world();
    const r = await netctl(['run', '--name', 'job', '--network', 'web', '--network', 'ghost', 'true']);
    expect(r).toMatchObject({ status: 3, stderr: 'netctl: network ghost not found\n' });
    expect(api.calls.map((c) => c.method)).toEqual([
      'createSandbox',
      'connect',
      'connect',
      'disconnect',
      'deleteSandbox',
    ]);
    expect([...api.sandboxes.values()].map((s) => s.name)).toEqual(['box']);
    expect(api.endpoints.size).toBe(0);

    const noExec = await netctl(['run', '--network', 'web', 'true'], {
      netctlExec: '/nonexistent/netctl-exec',
    });
    expect(noExec.status).toBe(1);
    expect([...api.sandboxes.values()].map((s) => s.name)).toEqual(['box']);
  });

  it('-d: starts the command detached, logs to the sandbox dir, records the pid, prints the name', async () => {
    const { api, netctl, runDir } = await world();
    const r = await netctl([
      'run',
      '-d',
      '--name',
      'bg',
      '--network',
      'web',
      'sh',
      '-c',
      'echo started; echo oops >&2',
    ]);
    expect(r).toMatchObject({ status: 0, stdout: 'bg\n', stderr: '' });
    const bg = [...api.sandboxes.values()].find((s) => s.name === 'bg');
    expect(bg?.pid).toBeGreaterThan(1);
    expect(api.calls.map((c) => c.method)).toEqual(['createSandbox', 'connect', 'setSandboxPid']);
    const log = join(runDir, bg?.id as string, 'log');
    await expect
      .poll(() => existsSync(log) && readFileSync(log, 'utf8'), { timeout: 5000 })
      .toMatch(/^oops$/m);
    expect(readFileSync(log, 'utf8')).toMatch(/^started$/m);
  });

  it('-d: if the pid cannot be recorded, the command is stopped and the sandbox removed', async () => {
    const { api, netctl } = await world();
    api.failNext.set('setSandboxPid', new Errors.StoreUnavailable('kv', 'down'));
    const r = await netctl(['run', '-d', '--name', 'bg', 'sleep', '30']);
    expect(r).toMatchObject({ status: 5, stderr: 'netctl: state store kv is unavailable: down\n' });
    expect([...api.sandboxes.values()].map((s) => s.name)).toEqual(['box']);
    const pid = (api.calls.find((c) => c.method === 'setSandboxPid')?.args[1] as number) ?? 0;
    await expect
      .poll(() => {
        try {
          process.kill(pid, 0);
          return 'running';
        } catch {
          return 'gone';
        }
      })
      .toBe('gone');
  });
});

describe('gc', () => {
  const action = {
    kind: 'link',
    name: 'nc-abc',
    owner: 'net:abc',
    action: 'remove' as const,
    reason: 'network gone',
  };

  it('a table of actions; --dry-run says nothing changed', async () => {
    const { api, netctl } = harness();
    api.pendingGc = [action];
    const dry = await netctl(['gc', '--dry-run']);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toMatch(/KIND\s+│\s+NAME\s+│\s+OWNER\s+│\s+ACTION\s+│\s+REASON/);
    expect(dry.stdout).toMatch(/link\s+│\s+nc-abc\s+│\s+net:abc\s+│\s+remove\s+│\s+network gone/);
    expect(dry.stdout).toContain('Dry run: nothing was changed.');
    expect(api.calls.at(-1)).toEqual({ method: 'gc', args: [{ dryRun: true }] });
    const real = await netctl(['gc']);
    expect(real.stdout).not.toContain('Dry run');
    expect((await netctl(['gc'])).stdout).toBe('Nothing to clean up.\n');
  });

  it('--format json prints the report', async () => {
    const { api, netctl } = harness();
    api.pendingGc = [action];
    expect(JSON.parse((await netctl(['gc', '--format', 'json'])).stdout)).toEqual({
      dryRun: false,
      actions: [action],
    });
  });
});

describe('exit statuses by error class', () => {
  it('unavailable 5, internal 1 (message only, no stack)', async () => {
    const { api, netctl } = harness();
    const down = await netctl(['network', 'ls'], {
      openApi: async () => {
        throw new Errors.DaemonUnavailable('/run/netctl/api.sock', 'permission denied (run as root)');
      },
    });
    expect(down).toMatchObject({
      status: 5,
      stderr:
        'netctl: netctl daemon at /run/netctl/api.sock is not answering: permission denied (run as root)\n',
    });
    api.failNext.set('listSandboxes', new TypeError('x is undefined'));
    expect(await netctl(['sandbox', 'ls'])).toMatchObject({ status: 1, stderr: 'netctl: x is undefined\n' });
  });
});
