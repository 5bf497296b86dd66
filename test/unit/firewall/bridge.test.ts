import { describe, expect, it } from 'vitest';
import {
  type EndpointFirewall,
  type NetworkFirewall,
  networkRules,
  portRules,
  requiredSysctls,
} from '../../../src/firewall/bridge.js';
import { baseRules } from '../../../src/firewall/chains.js';
import { FirewallInputError } from '../../../src/firewall/errors.js';
import { restoreText } from './render.js';

const ID = 'a1b2c3d4e5f6';
const EP = '0123456789abcdef';

function net(overrides: Partial<NetworkFirewall> = {}): NetworkFirewall {
  return {
    id: ID,
    bridge: 'nc-a1b2c3d4e5f6',
    subnets: [{ cidr: '10.77.0.0/24', family: 4 }],
    internal: false,
    icc: true,
    masquerade: true,
    ...overrides,
  };
}

function ep(overrides: Partial<EndpointFirewall> = {}): EndpointFirewall {
  return { id: EP, network: net(), ip: '10.77.0.2', family: 4, ...overrides };
}

describe('networkRules golden output', () => {
  it('default network: forward accept, isolation, masquerade, hairpin, host-local', async () => {
    await expect(restoreText(networkRules(net()))).toMatchFileSnapshot('golden/network-default.txt');
  });

  it('ICC off: bridge-to-bridge dropped except DNAT-ed (published) traffic', async () => {
    await expect(restoreText(networkRules(net({ icc: false })))).toMatchFileSnapshot(
      'golden/network-icc-off.txt',
    );
  });

  it('internal: nothing in or out, no NAT at all', async () => {
    await expect(restoreText(networkRules(net({ internal: true })))).toMatchFileSnapshot(
      'golden/network-internal.txt',
    );
  });

  it('masquerade off: no MASQUERADE for traffic leaving the subnet, hairpin kept', () => {
    const text = restoreText(networkRules(net({ masquerade: false })));
    expect(text).not.toContain('-s 10.77.0.0/24 ! -o');
    expect(text).toContain('-s 10.77.0.0/24 -o nc-a1b2c3d4e5f6 -m conntrack --ctstate DNAT');
  });

  it('dual stack: IPv6 rules go to ip6tables, without the IPv4-only host-local masquerade', async () => {
    const dual = net({
      subnets: [
        { cidr: '10.77.0.0/24', family: 4 },
        { cidr: 'fd00:77::/64', family: 6 },
      ],
    });
    await expect(restoreText(networkRules(dual))).toMatchFileSnapshot('golden/network-dual-stack.txt');
  });

  it('normalises subnets to their network address', () => {
    const rules = networkRules(net({ subnets: [{ cidr: '10.77.0.9/24', family: 4 }] }));
    expect(rules.some((r) => r.spec.includes('10.77.0.0/24'))).toBe(true);
    expect(rules.some((r) => r.spec.includes('10.77.0.9/24'))).toBe(false);
  });

  it('tags every rule with the network as owner', () => {
    const rules = networkRules(net({ subnets: [{ cidr: 'fd00::/64', family: 6 }] }));
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) expect(rule.owner).toBe(`net:${ID}`);
    expect(rules.every((r) => r.family === 6)).toBe(true);
  });
});

describe('rule counts', () => {
  it('a network costs a constant number of rules; isolation of N networks is O(N)', () => {
    const per = networkRules(net()).length;
    const all = Array.from({ length: 50 }, (_, i) =>
      networkRules(net({ id: i.toString(16).padStart(4, '0'), bridge: `nc-${i}` })),
    ).flat();
    expect(all).toHaveLength(50 * per);
    expect(per).toBeLessThanOrEqual(10);
  });

  it('an endpoint without published ports costs no rule; a mapping costs two, ranges included', () => {
    expect(portRules(ep(), [])).toEqual([]);
    expect(portRules(ep(), [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }])).toHaveLength(2);
    expect(
      portRules(ep(), [
        { proto: 'tcp', hostPort: 9000, hostPortEnd: 9999, containerPort: 9000, containerPortEnd: 9999 },
      ]),
    ).toHaveLength(2);
  });
});

describe('portRules golden output', () => {
  it('tcp, udp range, host IP binding and sctp', async () => {
    const rules = portRules(ep(), [
      { proto: 'tcp', hostPort: 8080, containerPort: 80 },
      { proto: 'udp', hostPort: 5000, hostPortEnd: 5010, containerPort: 6000, containerPortEnd: 6010 },
      { proto: 'tcp', hostIp: '192.0.2.1', hostPort: 8443, containerPort: 443 },
      { proto: 'sctp', hostIp: '0.0.0.0', hostPort: 3868, containerPort: 3868 },
    ]);
    await expect(restoreText(rules)).toMatchFileSnapshot('golden/ports-v4.txt');
  });

  it('IPv6 endpoint: bracketed DNAT destination, /128 host addresses', async () => {
    const rules = portRules(ep({ ip: 'fd00:77::2', family: 6 }), [
      { proto: 'tcp', hostPort: 8080, containerPort: 80 },
      {
        proto: 'udp',
        hostIp: 'fd00:1::1',
        hostPort: 7000,
        hostPortEnd: 7001,
        containerPort: 53,
        containerPortEnd: 54,
      },
    ]);
    await expect(restoreText(rules)).toMatchFileSnapshot('golden/ports-v6.txt');
  });

  it('the exact DNAT and ACCEPT of one mapping', () => {
    const [dnat, accept] = portRules(ep(), [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    expect(dnat).toEqual({
      family: 4,
      table: 'nat',
      chain: 'NETCTL-PREROUTING',
      spec: ['-p', 'tcp', '-m', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', '10.77.0.2:80'],
      owner: `ep:${EP}`,
    });
    expect(accept?.chain).toBe('NETCTL-PUBLISH');
    expect(accept?.spec.join(' ')).toBe(
      '-d 10.77.0.2/32 ! -i nc-a1b2c3d4e5f6 -o nc-a1b2c3d4e5f6 -p tcp -m tcp --dport 80 -j ACCEPT',
    );
  });

  it("uses the network's host_binding_ipv4 unless a mapping names its own host IP", () => {
    const endpoint = ep({ network: { ...net(), hostBindingIpv4: '198.51.100.7' } });
    const rules = portRules(endpoint, [
      { proto: 'tcp', hostPort: 8080, containerPort: 80 },
      { proto: 'tcp', hostIp: '192.0.2.1', hostPort: 8081, containerPort: 81 },
    ]);
    const dnats = rules.filter((r) => r.table === 'nat').map((r) => r.spec.slice(0, 2).join(' '));
    expect(dnats).toEqual(['-d 198.51.100.7/32', '-d 192.0.2.1/32']);
  });

  it('two host ports to one container port share one ACCEPT', () => {
    const rules = portRules(ep(), [
      { proto: 'tcp', hostPort: 8080, containerPort: 80 },
      { proto: 'tcp', hostPort: 8081, containerPort: 80 },
    ]);
    expect(rules.filter((r) => r.table === 'nat')).toHaveLength(2);
    expect(rules.filter((r) => r.table === 'filter')).toHaveLength(1);
  });
});

describe('base rules golden output', () => {
  it('jumps from the built-in chains, DOCKER-USER when present, at their heads', async () => {
    const text = restoreText(
      [...baseRules(4), ...baseRules(6)],
      [{ family: 4, table: 'filter', chain: 'DOCKER-USER' }],
    );
    await expect(text).toMatchFileSnapshot('golden/base.txt');
  });
});

describe('input validation', () => {
  const bad: [string, () => unknown][] = [
    ['bridge name with a space', () => networkRules(net({ bridge: 'br 0' }))],
    ['bridge name too long', () => networkRules(net({ bridge: 'a-very-long-bridge' }))],
    ['bridge name with a quote', () => networkRules(net({ bridge: 'br"0' }))],
    ['bridge name with a newline', () => networkRules(net({ bridge: 'br\n-F' }))],
    ['bridge name that is an iptables wildcard', () => networkRules(net({ bridge: 'nc+' }))],
    ['network id that is not hex', () => networkRules(net({ id: 'net 1' }))],
    ['no subnets', () => networkRules(net({ subnets: [] }))],
    ['a CIDR without length', () => networkRules(net({ subnets: [{ cidr: '10.0.0.0', family: 4 }] }))],
    ['a CIDR too long', () => networkRules(net({ subnets: [{ cidr: '10.0.0.0/33', family: 4 }] }))],
    ['a short-form IPv4', () => networkRules(net({ subnets: [{ cidr: '10.1/16', family: 4 }] }))],
    ['an octal-looking IPv4', () => networkRules(net({ subnets: [{ cidr: '010.0.0.0/8', family: 4 }] }))],
    ['a CIDR of the wrong family', () => networkRules(net({ subnets: [{ cidr: 'fd00::/64', family: 4 }] }))],
    [
      'a CIDR with a shell word',
      () => networkRules(net({ subnets: [{ cidr: '10.0.0.0/8 -j', family: 4 }] })),
    ],
    ['a zoned IPv6', () => portRules(ep({ ip: 'fe80::1%eth0', family: 6 }), [])],
    ['a host binding that is IPv6', () => networkRules(net({ hostBindingIpv4: 'fd00::1' }))],
    ['port 0', () => portRules(ep(), [{ proto: 'tcp', hostPort: 0, containerPort: 80 }])],
    ['port 70000', () => portRules(ep(), [{ proto: 'tcp', hostPort: 8080, containerPort: 70000 }])],
    ['a fractional port', () => portRules(ep(), [{ proto: 'tcp', hostPort: 80.5, containerPort: 80 }])],
    [
      'uneven ranges',
      () =>
        portRules(ep(), [
          { proto: 'tcp', hostPort: 8000, hostPortEnd: 8010, containerPort: 80, containerPortEnd: 85 },
        ]),
    ],
    [
      'a host range to one container port',
      () => portRules(ep(), [{ proto: 'tcp', hostPort: 8000, hostPortEnd: 8010, containerPort: 80 }]),
    ],
    [
      'a range that runs backwards',
      () =>
        portRules(ep(), [
          { proto: 'tcp', hostPort: 8010, hostPortEnd: 8000, containerPort: 90, containerPortEnd: 80 },
        ]),
    ],
    [
      'a host IP of the wrong family',
      () => portRules(ep(), [{ proto: 'tcp', hostIp: 'fd00::1', hostPort: 8080, containerPort: 80 }]),
    ],
    [
      'an unknown protocol',
      () => portRules(ep(), [{ proto: 'icmp' as 'tcp', hostPort: 1, containerPort: 1 }]),
    ],
    ['an endpoint IP of the wrong family', () => portRules(ep({ ip: 'fd00::2' }), [])],
    ['an endpoint id with spaces', () => portRules(ep({ id: 'ep 1' }), [])],
    [
      'ports on an internal network',
      () =>
        portRules(ep({ network: { ...net(), internal: true } }), [
          { proto: 'tcp', hostPort: 8080, containerPort: 80 },
        ]),
    ],
  ];
  it.each(bad)('rejects %s with a FirewallInputError', (_, build) => {
    expect(build).toThrow(FirewallInputError);
  });

  it('names the offending field', () => {
    expect(() => portRules(ep(), [{ proto: 'tcp', hostPort: 8080, containerPort: 0 }])).toThrow(
      expect.objectContaining({ field: 'mappings[0].containerPort', value: 0, code: 'EINVAL' }),
    );
  });
});

describe('requiredSysctls', () => {
  it('forwarding and route_localnet for a network with a way out', () => {
    expect(requiredSysctls(net()).map(({ key, value }) => `${key}=${value}`)).toEqual([
      'net.ipv4.ip_forward=1',
      'net/ipv4/conf/nc-a1b2c3d4e5f6/route_localnet=1',
    ]);
  });

  it('IPv6 forwarding for IPv6 subnets; br_netfilter calls when ICC is off', () => {
    const v6 = net({ subnets: [{ cidr: 'fd00::/64', family: 6 }], icc: false });
    expect(requiredSysctls(v6).map(({ key }) => key)).toEqual([
      'net.ipv6.conf.all.forwarding',
      'net.bridge.bridge-nf-call-ip6tables',
    ]);
  });

  it('nothing routed for an internal network', () => {
    expect(requiredSysctls(net({ internal: true }))).toEqual([]);
  });
});
