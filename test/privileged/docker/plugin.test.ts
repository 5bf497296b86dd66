/**
 * netctl as Docker's network and IPAM plugin (issue 6), end to end: a real
 * dockerd 20.10 with `-d netctl-bridge --ipam-driver netctl`, a real netctl
 * daemon beside it, real containers and packets. One dockerd for the file;
 * each test removes the containers and networks it made.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ping } from '../../helpers/ping.js';
import {
  type DockerHost,
  docker,
  dockerFails,
  dockerHostForFile,
  EXT_HOST,
  EXT_PEER,
  echoPeerOutside,
  fetchFromOutside,
  HTTPD,
  inContainer,
  inspectNetwork,
  ipOn,
  leftovers,
  NET,
  netctl,
  postPlugin,
  removeAllDocker,
  runOn,
} from './fixture.js';

const file = dockerHostForFile('dk');
let h: DockerHost;

// Whatever a test left (a failed one included): every container, every netctl-bridge network.
afterEach(async () => {
  await removeAllDocker(file.h);
});

/** A network through Docker with netctl's driver and IPAM (removed after the test). */
async function network(name: string, ...args: string[]): Promise<string> {
  return docker(h, 'network', 'create', ...NET, ...args, name);
}

/** `docker network create` with netctl's driver and IPAM that must fail: its stderr. */
const createFails = (...args: string[]) => dockerFails(h, 'network', 'create', ...NET, ...args);

const run = (name: string, network: string, ...args: string[]) => runOn(h, network, name, args);

describe('netctl-bridge and the netctl IPAM under a real dockerd', () => {
  beforeEach(() => {
    h = file.h;
  });

  it('creates a network with --subnet/--gateway/--ip-range through netctl IPAM; netctl lists it under the same id', async () => {
    const id = await network(
      'web',
      '--subnet',
      '10.20.0.0/24',
      '--gateway',
      '10.20.0.254',
      '--ip-range',
      '10.20.0.128/25',
    );
    const ls = await netctl(h, 'network', 'ls', '--no-trunc', '--format', 'json');
    const listed = (JSON.parse(ls.stdout) as { id: string; name: string; dockerId?: string }[]).find(
      (n) => n.id === id,
    );
    // Docker sends no name: without -o netctl.name it is docker-<id12>.
    expect(listed).toMatchObject({ name: `docker-${id.slice(0, 12)}`, dockerId: id });
    const inspected = await inspectNetwork(h, id.slice(0, 12));
    expect(inspected.IPAM).toMatchObject({
      Driver: 'netctl',
      Config: [{ Subnet: '10.20.0.0/24', Gateway: '10.20.0.254' }],
    });
    // The gateway and nothing else is Docker's so far.
    expect((await leftovers(h)).addresses).toEqual([
      expect.stringMatching(/^10\.20\.0\.254\/24 owner=docker:local\/10\.20\.0\.0\/24@[0-9a-f]{8}$/),
    ]);
    // `netctl network rm` leaves Docker's networks to Docker.
    const rm = await netctl(h, 'network', 'rm', id.slice(0, 12));
    expect(rm.status).toBe(4);
    expect(rm.stderr).toContain('docker network rm');
  });

  it('gives two containers distinct addresses from the range; they ping each other; netctl inspect shows them', async () => {
    await network('web', '-o', 'netctl.name=web', '--subnet', '10.20.0.0/24', '--ip-range', '10.20.0.128/25');
    await run('c1', 'web');
    await run('c2', 'web');
    const a = await ipOn(h, 'c1', 'web');
    const b = await ipOn(h, 'c2', 'web');
    expect(a).not.toBe(b);
    for (const ip of [a, b]) expect(Number(ip.split('.')[3])).toBeGreaterThanOrEqual(128);
    expect(await ping(inContainer(h, 'c1'), b)).toBe(true);
    expect(await ping(inContainer(h, 'c2'), a)).toBe(true);
    const inspected = await inspectNetwork(h, 'web');
    // No --gateway: the first address of the range, as Docker's own IPAM does.
    expect(inspected.IPAM.Config[0]?.Gateway).toBe('10.20.0.128');
    expect(await ping(inContainer(h, 'c1'), '10.20.0.128')).toBe(true); // the gateway on the bridge
    expect(
      Object.values(inspected.Containers)
        .map((c) => c.IPv4Address)
        .sort(),
    ).toEqual([`${a}/24`, `${b}/24`].sort());
    // Docker's view of the container agrees with netctl's.
    const endpointId = await docker(h, 'inspect', '-f', '{{.NetworkSettings.Networks.web.EndpointID}}', 'c1');
    expect(Object.values(inspected.Containers).map((c) => c.EndpointID)).toContain(endpointId);
  });

  it('takes containers out through MASQUERADE: the outside sees the host address', async () => {
    await network('out', '--subnet', '10.23.0.0/24');
    const server = await echoPeerOutside(h, 9000);
    try {
      await run('c1', 'out');
      const seen = await docker(h, 'exec', 'c1', 'nc', '-w', '2', EXT_PEER, '9000');
      expect(seen).toBe(EXT_HOST);
    } finally {
      server.stop();
    }
  });

  it('publishes -p through DNAT (userland proxy off), reported by netctl inspect', async () => {
    await network('web', '-o', 'netctl.name=pub', '--subnet', '10.24.0.0/24');
    await runOn(h, 'web', 'web1', ['-p', '8080:80', '-p', '9000/udp'], HTTPD);
    await expect
      .poll(() => fetchFromOutside(h, `http://${EXT_HOST}:8080/`), { timeout: 5000 })
      .toBe('hello from docker\n');
    // An unpublished port stays closed.
    expect(await fetchFromOutside(h, `http://${EXT_HOST}:8081/`)).toBeUndefined();
    const [container] = Object.values((await inspectNetwork(h, 'pub')).Containers);
    expect(container?.Ports['80/tcp']).toEqual([{ HostIp: '0.0.0.0', HostPort: '8080' }]);
    // -p 9000/udp: a free host port from Docker's ephemeral range.
    const udp = Number(container?.Ports['9000/udp']?.[0]?.HostPort);
    expect(udp).toBeGreaterThanOrEqual(49153);
    // The same host port twice is refused with Docker's error.
    const err = await dockerFails(
      h,
      'run',
      '-d',
      '--name',
      'web2',
      '--network',
      'web',
      '-p',
      '8080:80',
      'busybox',
      'sleep',
      '60',
    );
    expect(err).toMatch(/host port 0\.0\.0\.0:8080\/tcp is already published/);
  });

  it('isolates a second network, and an --internal one has no way out', async () => {
    await network('a', '--subnet', '10.25.0.0/24');
    await network('b', '--subnet', '10.26.0.0/24');
    await network('int', '--internal', '--subnet', '10.27.0.0/24');
    const server = await echoPeerOutside(h, 9001);
    try {
      await run('ca', 'a');
      await run('cb', 'b');
      await run('ci1', 'int');
      await run('ci2', 'int');
      const ipB = await ipOn(h, 'cb', 'b');
      expect(await ping(inContainer(h, 'ca'), ipB, 1)).toBe(false);
      expect(await ping(inContainer(h, 'cb'), '10.26.0.1')).toBe(true);
      // Internal: members reach each other, nothing reaches out, no default route.
      expect(await ping(inContainer(h, 'ci1'), await ipOn(h, 'ci2', 'int'))).toBe(true);
      expect(await dockerFails(h, 'exec', 'ci1', 'nc', '-w', '1', EXT_PEER, '9001')).toBeDefined();
      expect(await docker(h, 'exec', 'ci1', 'ip', 'route')).not.toMatch(/default/);
      expect(
        (
          await inspectNetwork(
            h,
            (await docker(h, 'network', 'inspect', '-f', '{{.Id}}', 'int')).slice(0, 12),
          )
        ).Internal,
      ).toBe(true);
    } finally {
      server.stop();
    }
  });

  it('honours a static --ip, refuses one in use, and frees addresses on stop/rm', async () => {
    await network('web', '-o', 'netctl.name=static', '--subnet', '10.28.0.0/24');
    await run('s1', 'web', '--ip', '10.28.0.50');
    expect(await ipOn(h, 's1', 'web')).toBe('10.28.0.50');
    expect(await docker(h, 'exec', 's1', 'ip', '-4', 'addr', 'show', 'eth0')).toContain('10.28.0.50/24');
    const err = await dockerFails(
      h,
      'run',
      '-d',
      '--name',
      's2',
      '--network',
      'web',
      '--ip',
      '10.28.0.50',
      'busybox',
      'sleep',
      '60',
    );
    expect(err).toMatch(/10\.28\.0\.50.*(in use|already)/);
    await docker(h, 'rm', '-f', 's2');
    // Stopped: the address is free again (Docker releases it, netctl's IPAM frees it).
    await docker(h, 'stop', '-t', '0', 's1');
    expect((await leftovers(h)).addresses.filter((a) => a.startsWith('10.28.0.50/'))).toEqual([]);
    await run('s3', 'web', '--ip', '10.28.0.50');
    expect(await ipOn(h, 's3', 'web')).toBe('10.28.0.50');
    await docker(h, 'rm', '-f', 's3');
    expect((await leftovers(h)).addresses.filter((a) => a.startsWith('10.28.'))).toEqual([
      expect.stringMatching(/^10\.28\.0\.1\/24 owner=docker:local\/10\.28\.0\.0\/24@/),
    ]);
  });

  it('keeps --aux-address for the network, and says so when the range is full', async () => {
    // The range holds .0-.3: .1 the gateway, .2 the aux address, .3 the one container.
    await network(
      'aux',
      '--subnet',
      '10.36.0.0/24',
      '--ip-range',
      '10.36.0.0/30',
      '--aux-address',
      'r=10.36.0.2',
    );
    await run('x1', 'aux');
    expect(await ipOn(h, 'x1', 'aux')).toBe('10.36.0.3');
    expect(
      await dockerFails(h, 'run', '-d', '--name', 'x2', '--network', 'aux', 'busybox', 'sleep', '60'),
    ).toMatch(/IpamDriver\.RequestAddress: no available address in 10\.36\.0\.0\/30/);
    await docker(h, 'rm', '-f', 'x2');
  });

  it('connects and disconnects a running container', async () => {
    await network('front', '--subnet', '10.29.0.0/24');
    await network('back', '-o', 'netctl.name=back', '--subnet', '10.30.0.0/24');
    await run('f1', 'front');
    await run('b1', 'back');
    const backIp = await ipOn(h, 'b1', 'back');
    expect(await ping(inContainer(h, 'f1'), backIp, 1)).toBe(false);
    await docker(h, 'network', 'connect', '--ip', '10.30.0.77', 'back', 'f1');
    expect(await docker(h, 'exec', 'f1', 'ip', '-4', 'addr')).toContain('10.30.0.77/24');
    expect(await ping(inContainer(h, 'f1'), backIp)).toBe(true);
    expect(
      Object.values((await inspectNetwork(h, 'back')).Containers)
        .map((c) => c.IPv4Address)
        .sort(),
    ).toEqual([`${backIp}/24`, '10.30.0.77/24'].sort());
    await docker(h, 'network', 'disconnect', 'back', 'f1');
    expect(await docker(h, 'exec', 'f1', 'ip', '-4', 'addr')).not.toContain('10.30.0.77');
    expect(Object.keys((await inspectNetwork(h, 'back')).Containers)).toHaveLength(1);
    // f1's own network still works.
    expect(await ping(inContainer(h, 'f1'), '10.29.0.1')).toBe(true);
  });

  it("honours Docker's options: bridge name, MTU, ICC off, IPv6, exposed ports with -P", async () => {
    await network(
      'opts',
      '-o',
      'com.docker.network.bridge.name=br-opts',
      '-o',
      'com.docker.network.driver.mtu=1400',
      '-o',
      'com.docker.network.bridge.enable_icc=false',
      '--ipv6',
      '--subnet',
      '10.35.0.0/24',
      '--subnet',
      'fd00:35::/64',
    );
    const [bridge] = JSON.parse((await h.d.exec(['ip', '-j', 'link', 'show', 'br-opts'])).stdout) as {
      mtu: number;
    }[];
    expect(bridge?.mtu).toBe(1400);
    await run('o1', 'opts', '--expose', '7000', '-P');
    await run('o2', 'opts');
    expect(await docker(h, 'exec', 'o1', 'ip', 'link', 'show', 'eth0')).toMatch(/mtu 1400/);
    const v6 = await docker(
      h,
      'inspect',
      '-f',
      '{{with index .NetworkSettings.Networks "opts"}}{{.GlobalIPv6Address}}{{end}}',
      'o2',
    );
    expect(v6).toMatch(/^fd00:35::/);
    expect(await docker(h, 'exec', 'o2', 'ip', '-6', 'addr', 'show', 'eth0')).toContain(`${v6}/64`);
    // ICC off: no container-to-container traffic, the gateway still answers.
    expect(await ping(inContainer(h, 'o1'), await ipOn(h, 'o2', 'opts'), 1)).toBe(false);
    expect(await ping(inContainer(h, 'o1'), '10.35.0.1')).toBe(true);
    const inspected = await inspectNetwork(
      h,
      (await docker(h, 'network', 'inspect', '-f', '{{.Id}}', 'opts')).slice(0, 12),
    );
    expect(inspected.Options).toMatchObject({
      'com.docker.network.bridge.name': 'br-opts',
      'com.docker.network.driver.mtu': '1400',
      'com.docker.network.bridge.enable_icc': 'false',
    });
    // -P publishes the exposed port on a host port of Docker's ephemeral range.
    const o1 = Object.values(inspected.Containers).find((c) => c.Ports['7000/tcp']);
    expect(Number(o1?.Ports['7000/tcp']?.[0]?.HostPort)).toBeGreaterThanOrEqual(49153);
  });

  it('answers overlapping subnets and bad CIDRs with a clear Docker error', async () => {
    await network('web', '--subnet', '10.31.0.0/24');
    const cli = await netctl(h, 'network', 'create', '--subnet', '10.32.0.0/24', 'clinet');
    expect(cli.status).toBe(0);
    try {
      expect(await createFails('--subnet', '10.31.0.0/16', 'x')).toMatch(
        /IpamDriver\.RequestPool: subnet 10\.31\.0\.0\/16 overlaps pool 10\.31\.0\.0\/24/,
      );
      // netctl's own networks are in the same IPAM.
      expect(await createFails('--subnet', '10.32.0.0/25', 'y')).toMatch(/overlaps/);
      expect(await createFails('--subnet', '10.33.0.0/33', 'z')).toMatch(/invalid CIDR|Invalid subnet/i);
      expect(await createFails('--subnet', '10.33.0.0/24', '--gateway', '10.34.0.1', 'z')).toMatch(
        /gateway|10\.34\.0\.1/i,
      );
      // A bad driver option reaches the user with its name.
      expect(
        await createFails(
          '--subnet',
          '10.33.0.0/24',
          '-o',
          'com.docker.network.bridge.enable_icc=maybe',
          'z',
        ),
      ).toMatch(/NetworkDriver\.CreateNetwork: invalid option com\.docker\.network\.bridge\.enable_icc/);
      expect((await docker(h, 'network', 'ls', '--format', '{{.Name}}')).split('\n')).not.toContain('z');
    } finally {
      await netctl(h, 'network', 'rm', 'clinet');
    }
  });

  it('answers bad input on its real sockets with {"Err"} and changes nothing', async () => {
    await network('web', '--subnet', '10.37.0.0/24');
    const before = await leftovers(h);
    expect(await postPlugin(h, 'netctl-bridge', '/Plugin.Activate', '')).toEqual({
      status: 200,
      body: { Implements: ['NetworkDriver'] },
    });
    const bad = [
      await postPlugin(h, 'netctl-bridge', '/NetworkDriver.CreateNetwork', '{"NetworkID": '),
      await postPlugin(h, 'netctl', '/IpamDriver.RequestPool', 'x'.repeat(2 * 1024 * 1024), {
        sendBytes: 64 * 1024,
      }),
      await postPlugin(
        h,
        'netctl',
        '/IpamDriver.RequestPool',
        '{"AddressSpace":"local","Pool":"10.37.0.0/16"}',
      ),
      await postPlugin(
        h,
        'netctl-bridge',
        '/NetworkDriver.Join',
        JSON.stringify({ NetworkID: 'f'.repeat(64), EndpointID: 'e'.repeat(64), SandboxKey: '/run/x' }),
      ),
    ];
    expect(bad).toEqual([
      { status: 500, body: { Err: expect.stringMatching(/not valid JSON/) } },
      { status: 500, body: { Err: expect.stringMatching(/larger than 1048576 bytes/) } },
      {
        status: 500,
        body: { Err: expect.stringMatching(/10\.37\.0\.0\/16 overlaps pool 10\.37\.0\.0\/24/) },
      },
      { status: 500, body: { Err: expect.stringMatching(/endpoint e{12}.* not found/) } },
    ]);
    expect(await leftovers(h)).toEqual(before);
    // Docker goes on as before.
    await run('w1', 'web');
    expect(await ipOn(h, 'w1', 'web')).toBe('10.37.0.2');
  });

  it('adopts a netctl network by -o netctl.name, sharing its pool with netctl sandboxes', async () => {
    expect((await netctl(h, 'network', 'create', '--subnet', '10.40.0.0/24', 'shared')).status).toBe(0);
    const sandbox = await netctl(h, 'sandbox', 'create', 'box');
    expect(sandbox.status).toBe(0);
    expect((await netctl(h, 'network', 'connect', 'shared', 'box')).status).toBe(0);
    try {
      // Without netctl's pool, Docker's addresses could collide with netctl's: refused.
      expect(
        await dockerFails(
          h,
          'network',
          'create',
          '-d',
          'netctl-bridge',
          '-o',
          'netctl.name=shared',
          '--subnet',
          '10.40.0.0/24',
          'shared',
        ),
      ).toMatch(/cannot be Docker network .*--ipam-driver netctl --ipam-opt netctl\.name=shared/);
      const id = await docker(
        h,
        'network',
        'create',
        ...NET,
        '--ipam-opt',
        'netctl.name=shared',
        '-o',
        'netctl.name=shared',
        '--subnet',
        '10.40.0.0/24',
        '--gateway',
        '10.40.0.1',
        'shared',
      );
      await run('d1', 'shared');
      const inspected = await inspectNetwork(h, 'shared');
      const ips = Object.values(inspected.Containers).map((c) => c.IPv4Address);
      expect(ips).toHaveLength(2);
      expect(new Set(ips).size).toBe(2);
      const boxIp = (
        Object.values(inspected.Containers).find((c) => c.Name === 'box')?.IPv4Address ?? ''
      ).split('/')[0] as string;
      expect(await ping(inContainer(h, 'd1'), boxIp)).toBe(true);
      const listed = JSON.parse(
        (await netctl(h, 'network', 'ls', '--no-trunc', '--format', 'json')).stdout,
      ) as { name: string; dockerId?: string }[];
      expect(listed.find((n) => n.name === 'shared')?.dockerId).toBe(id);
      await docker(h, 'rm', '-f', 'd1');
      await docker(h, 'network', 'rm', 'shared');
      // Docker let go of it: the netctl network and its sandbox stay, with their addresses.
      const after = await inspectNetwork(h, 'shared');
      expect(Object.values(after.Containers).map((c) => c.Name)).toEqual(['box']);
      expect((await leftovers(h)).addresses.filter((a) => a.includes('docker:'))).toEqual([]);
    } finally {
      await netctl(h, 'sandbox', 'rm', 'box');
      await netctl(h, 'network', 'rm', 'shared');
    }
  });

  it('leaves nothing behind once its containers and networks are gone: links, rules, allocations, records', async () => {
    expect(await leftovers(h)).toEqual(file.empty);
  });
});
