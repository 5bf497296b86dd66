/** Flags → requests, and bad input → exit 2 with a clear message and no call on the api. */
import { describe, expect, it } from 'vitest';
import { consolidateIpam } from '../../../src/cli/requests.js';
import { harness } from './harness.js';

describe('network create: flags to the request', () => {
  it('passes every flag through, each --gateway/--ip-range/--aux-address to the --subnet containing it', async () => {
    const { api, netctl } = harness();
    const r = await netctl([
      'network',
      'create',
      '-d',
      'bridge',
      '--subnet',
      '10.1.0.0/16',
      '--subnet',
      'fd00:1::/64',
      // Given in the "wrong" order: Docker matches by containment, not position.
      '--gateway',
      'fd00:1::1',
      '--gateway',
      '10.1.0.254',
      '--ip-range',
      '10.1.4.0/24',
      '--aux-address',
      'router=10.1.0.2',
      '--aux-address',
      'dns=fd00:1::53',
      '--ipv6',
      '--internal',
      '-o',
      'com.docker.network.bridge.name=br-web',
      '--opt',
      'mtu=1400',
      '--label',
      'team=a',
      '--label',
      'flag',
      'web',
    ]);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(api.calls).toEqual([
      {
        method: 'createNetwork',
        args: [
          {
            name: 'web',
            driver: 'bridge',
            ipam: {
              config: [
                {
                  subnet: '10.1.0.0/16',
                  gateway: '10.1.0.254',
                  ipRange: '10.1.4.0/24',
                  auxAddresses: { router: '10.1.0.2' },
                },
                { subnet: 'fd00:1::/64', gateway: 'fd00:1::1', auxAddresses: { dns: 'fd00:1::53' } },
              ],
            },
            enableIPv6: true,
            internal: true,
            options: { 'com.docker.network.bridge.name': 'br-web', mtu: '1400' },
            labels: { team: 'a', flag: '' },
          },
        ],
      },
    ]);
  });

  it('-d names the driver', async () => {
    const { api, netctl } = harness();
    expect((await netctl(['network', 'create', '-d', 'none', 'quiet'])).status).toBe(0);
    expect(api.calls[0]?.args[0]).toMatchObject({ name: 'quiet', driver: 'none' });
  });

  it('defaults: bridge, no subnets (the IPAM picks), no options', async () => {
    const { api, netctl } = harness();
    expect((await netctl(['network', 'create', 'web'])).status).toBe(0);
    expect(api.calls[0]?.args[0]).toEqual({
      name: 'web',
      driver: 'bridge',
      ipam: { config: [] },
      enableIPv6: false,
      internal: false,
      options: {},
      labels: {},
    });
  });

  it("follows Docker's consolidateIpam rules", () => {
    expect(() => consolidateIpam([], [], ['10.0.0.1'], [])).toThrow(
      'every --ip-range or --gateway must have a corresponding --subnet',
    );
    expect(() => consolidateIpam(['10.0.0.0/24'], [], ['10.9.0.1'], [])).toThrow(
      'no --subnet contains --gateway 10.9.0.1',
    );
    expect(() => consolidateIpam(['10.0.0.0/24', '10.1.0.0/24'], [], ['10.0.0.1', '10.0.0.2'], [])).toThrow(
      'cannot configure two --gateways (10.0.0.1, 10.0.0.2) on one subnet (10.0.0.0/24)',
    );
    expect(() => consolidateIpam(['10.0.0.0/16', '10.0.1.0/24'], [], [], [])).toThrow(
      '--subnet 10.0.1.0/24 overlaps --subnet 10.0.0.0/16',
    );
    expect(() => consolidateIpam(['10.0.0.0/24'], ['10.0.0.0/16'], [], [])).toThrow(
      'no --subnet contains --ip-range 10.0.0.0/16',
    );
    expect(() => consolidateIpam(['10.0.0.0/24'], [], [], [['x', '10.5.0.1']])).toThrow(
      'no --subnet contains --aux-address x=10.5.0.1',
    );
    expect(consolidateIpam(['10.0.0.0/24'], ['10.0.0.128/25'], ['10.0.0.1'], [])).toEqual([
      { subnet: '10.0.0.0/24', ipRange: '10.0.0.128/25', gateway: '10.0.0.1' },
    ]);
  });
});

describe('network connect / run: flags to the request', () => {
  it('connect: --ip, --ip6, --alias, -p', async () => {
    const { api, netctl } = harness();
    await api.createNetwork({
      name: 'web',
      enableIPv6: true,
      ipam: { config: [{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64' }] },
    });
    await api.createSandbox({ name: 'box' });
    api.calls.length = 0;
    const r = await netctl([
      'network',
      'connect',
      '--ip',
      '10.1.0.9',
      '--ip6',
      'fd00::9',
      '--alias',
      'db',
      '--alias',
      'cache',
      '-p',
      '8080:80',
      '-p',
      '127.0.0.1:5353:53/udp',
      '--publish',
      '[::1]:9000-9001:90-91',
      'web',
      'box',
    ]);
    expect(r).toEqual(expect.objectContaining({ status: 0, stdout: '', stderr: '' }));
    expect(api.calls).toEqual([
      {
        method: 'connect',
        args: [
          {
            network: 'web',
            sandbox: 'box',
            ipv4: '10.1.0.9',
            ipv6: 'fd00::9',
            aliases: ['db', 'cache'],
            portMappings: [
              { proto: 'tcp', hostPort: 8080, containerPort: 80 },
              { proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53 },
              {
                proto: 'tcp',
                hostIp: '::1',
                hostPort: 9000,
                hostPortEnd: 9001,
                containerPort: 90,
                containerPortEnd: 91,
              },
            ],
          },
        ],
      },
    ]);
  });
});

describe('bad input: exit 2, a clear message, nothing called', () => {
  const cases: [string[], RegExp][] = [
    [
      ['network', 'create', '--subnet', '10.0.0.0/33', 'web'],
      /--subnet.*"10\.0\.0\.0\/33" is not a valid CIDR/,
    ],
    [['network', 'create', '--subnet', 'banana', 'web'], /--subnet.*is not a valid CIDR/],
    [
      ['network', 'create', '--subnet', '10.0.0.0/24', '--gateway', '10.0.0.256', 'web'],
      /--gateway.*is not a valid IP address/,
    ],
    [
      ['network', 'create', '--gateway', '10.0.0.1', 'web'],
      /every --ip-range or --gateway must have a corresponding --subnet/,
    ],
    [
      ['network', 'create', '--subnet', '10.0.0.0/24', '--gateway', '10.9.0.1', 'web'],
      /no --subnet contains --gateway 10\.9\.0\.1/,
    ],
    [['network', 'create', '--ip-range', '10.0.0/24', 'web'], /--ip-range.*is not a valid CIDR/],
    [['network', 'create', '--aux-address', 'router', 'web'], /--aux-address.*"router" is not key=value/],
    [
      ['network', 'create', '--aux-address', 'r=10.0.0.x', 'web'],
      /--aux-address.*"10\.0\.0\.x" is not a valid IP address/,
    ],
    [['network', 'create', '-o', 'mtu', 'web'], /--opt.*"mtu" is not key=value/],
    [['network', 'create', '--label', '=v', 'web'], /--label.*the key before = is empty/],
    [['network', 'create', '-d', 'Bridge!', 'web'], /--driver.*"Bridge!" must match/],
    [
      ['network', 'create', 'bad name'],
      /value 'bad name' is invalid for argument 'name'\. "bad name" is not a valid name/,
    ],
    [
      ['network', 'create', 'x'.repeat(65)],
      /invalid for argument 'name'\. expected string to have <=64 characters/,
    ],
    [['network', 'create'], /missing required argument 'name'/],
    [['network', 'create', 'a', 'b'], /too many arguments/],
    [['network', 'create', '--nope', 'web'], /unknown option '--nope'/],
    [['network', 'ls', '--format', 'xml'], /argument 'xml' is invalid\. Allowed choices are table, json/],
    [['network', 'connect', '--ip', '10.0.0.300', 'web', 'box'], /--ip.*is not a valid IP address/],
    [['network', 'connect', '--ip', 'fd00::1', 'web', 'box'], /--ip.*"fd00::1" is not an IPv4 address/],
    [
      ['network', 'connect', '--ip6', '10.0.0.1', 'web', 'box'],
      /--ip6.*"10\.0\.0\.1" is not an IPv6 address/,
    ],
    [
      ['network', 'connect', '--alias', '-x', 'web', 'box'],
      /option '--alias <name>' argument missing|not a valid name/,
    ],
    [['network', 'connect', '--alias', 'a b', 'web', 'box'], /--alias.*"a b" is not a valid name/],
    [
      ['network', 'connect', '-p', '80', 'web', 'box'],
      /--publish.*invalid port mapping "80": expected \[ip:\]hostPort:containerPort/,
    ],
    [
      ['network', 'connect', '-p', '0:80', 'web', 'box'],
      /--publish.*hostPort: expected number to be >=1 \(got 0\)/,
    ],
    [
      ['network', 'connect', '-p', '70000:80', 'web', 'box'],
      /--publish.*hostPort: expected number to be <=65535/,
    ],
    [['network', 'connect', '-p', '80-81:90', 'web', 'box'], /--publish.*ranges must have the same length/],
    [['network', 'connect', '-p', '80:80/icmp', 'web', 'box'], /--publish.*invalid port mapping/],
    [['network', 'connect', 'web'], /missing required argument 'sandbox'/],
    [['sandbox', 'create', '--hostname', '-h', 'box'], /--hostname.*argument missing|must match/],
    [['sandbox', 'create', '--hostname', 'a_b', 'box'], /--hostname.*"a_b" must match/],
    [
      ['sandbox', 'create', '--netns', 'run/netns/x', 'box'],
      /--netns.*"run\/netns\/x" is not an absolute path/,
    ],
    [['sandbox', 'create', '--label', '=x', 'box'], /--label.*the key before = is empty/],
    [['sandbox', 'exec', 'box'], /missing required argument 'command'/],
    [['run', '--name', 'a b', 'true'], /--name.*"a b" is not a valid name/],
    [['run', '--network', 'a/b', 'true'], /--network.*"a\/b" is not a valid name/],
    [['run', '--ip', '10.0.0.5', 'true'], /invalid option --ip: needs a --network to apply to/],
    [['run', '-p', '80:80', 'true'], /invalid option --publish: needs a --network to apply to/],
    [
      ['run', '--network', 'none', '--network', 'web', 'true'],
      /invalid option --network: none cannot be combined/,
    ],
    [['run', '--rm', '-d', 'true'], /invalid option --rm: cannot be combined with --detach/],
    [['run', '--network', 'web', '-p', '1:2:3:4', 'true'], /--publish.*invalid port mapping/],
    [['run'], /missing required argument 'command'/],
    [['gc', '--format', 'yaml'], /Allowed choices are table, json/],
    [['--log-level', 'loud', 'network', 'ls'], /--log-level.*Allowed choices/],
    [['network', 'prune'], /network prune needs confirmation: pass -f\/--force/],
    [['nope'], /unknown command 'nope'/],
    [['network', 'nope'], /unknown command 'nope'/],
  ];

  it.each(cases)('netctl %j', async (argv, message) => {
    const { api, netctl } = harness();
    const r = await netctl(argv);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^netctl: /);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(api.calls).toEqual([]);
  });

  it('`netctl` and `netctl network` alone print help on stderr, exit 2', async () => {
    const { netctl } = harness();
    for (const argv of [[], ['network']]) {
      const r = await netctl(argv);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^Usage: netctl/);
    }
  });

  it('--help and --version exit 0 on stdout', async () => {
    const { netctl } = harness();
    const help = await netctl(['network', 'create', '--help']);
    expect(help).toMatchObject({ status: 0, stderr: '' });
    expect(help.stdout).toContain('--aux-address <name=ip>');
    expect(await netctl(['--version'])).toMatchObject({
      status: 0,
      stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/),
    });
  });
});

describe('global options', () => {
  it('--socket/--kv work before the verb (like docker -H) and after it', async () => {
    const { netctl } = harness();
    expect(
      (await netctl(['--socket', '/tmp/a.sock', '--kv', 'redis://h/0', 'network', 'ls'])).opened,
    ).toEqual([{ socket: '/tmp/a.sock', kv: 'redis://h/0', env: {} }]);
    expect((await netctl(['network', 'ls', '--socket', '/tmp/b.sock'])).opened).toEqual([
      { socket: '/tmp/b.sock', env: {} },
    ]);
    // The verb's own copy wins.
    expect(
      (await netctl(['--socket', '/tmp/a.sock', 'sandbox', 'ls', '--socket', '/tmp/c.sock'])).opened,
    ).toEqual([{ socket: '/tmp/c.sock', env: {} }]);
  });

  it('run passes everything after the command through untouched', async () => {
    const { api, netctl } = harness();
    const r = await netctl(['run', '--name', 'box', 'sh', '-c', 'echo "$0 $1"', '--socket', '-p']);
    expect(r).toMatchObject({ status: 0, stdout: '--socket -p\n' });
    expect(r.opened).toEqual([{ env: {} }]);
    expect(api.calls[0]).toMatchObject({ method: 'createSandbox', args: [{ name: 'box' }] });
  });
});
