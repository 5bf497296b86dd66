/** The contract's endpoints: connect, disconnect, published ports, removal, health and check. */
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../../src/core/model.js';
import { type Api, box, listing, NAME_RULE, refusal, web } from './harness.js';

export function endpointContract(s: Api): void {
  describe('connect and disconnect', () => {
    it('gives the next free address and ethN, shown by both inspects; disconnect takes it back', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
      await api.createSandbox(box(s));
      await api.createSandbox(box(s, 'other'));
      const a = await api.connect({ network: 'web', sandbox: 'box' });
      const b = await api.connect({ network: 'web', sandbox: 'other' });
      const c = await api.connect({ network: 'db', sandbox: 'box' });
      expect([a, b, c].map((e) => `${e.name} ${e.ifname} ${e.ipv4}`)).toEqual([
        'box eth0 10.1.0.2/24',
        'other eth0 10.1.0.3/24',
        'box eth1 10.2.0.2/24',
      ]);
      const network = await api.inspectNetwork('web');
      expect(network.endpoints.map((e) => `${e.sandboxName} ${e.ipv4}`).sort()).toEqual([
        'box 10.1.0.2/24',
        'other 10.1.0.3/24',
      ]);
      const sandbox = await api.inspectSandbox('box');
      expect(sandbox.sandbox.endpointIds).toEqual([a.id, c.id]);
      expect(sandbox.endpoints.map((e) => `${e.networkName} ${e.ifname}`)).toEqual(['web eth0', 'db eth1']);

      expect((await api.disconnect('web', 'box')).id).toBe(a.id);
      expect((await api.inspectSandbox('box')).endpoints.map((e) => e.networkName)).toEqual(['db']);
      expect((await api.inspectNetwork('web')).endpoints.map((e) => e.sandboxName)).toEqual(['other']);
      // The address is free again.
      expect((await api.connect({ network: 'web', sandbox: 'box', ipv4: '10.1.0.2' })).ipv4).toBe(
        '10.1.0.2/24',
      );
    });

    it('honours a static address, MAC, interface name and aliases', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createSandbox(box(s));
      const ep = await api.connect({
        network: 'web',
        sandbox: 'box',
        ipv4: '10.1.0.50',
        mac: '02:42:0a:01:00:99',
        ifname: 'web0',
        aliases: ['db', 'db.local'],
      });
      expect(ep).toMatchObject({
        ipv4: '10.1.0.50/24',
        mac: '02:42:0a:01:00:99',
        ifname: 'web0',
        aliases: ['db', 'db.local'],
      });
    });

    it('refuses an address in use or outside the subnet, a second endpoint on one network, a bad alias', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createSandbox(box(s));
      await api.createSandbox(box(s, 'other'));
      await api.connect({ network: 'web', sandbox: 'box', ipv4: '10.1.0.50' });
      const before = await listing(api);
      const inUse = (address: string, owner: string) => ({
        code: 'NETCTL_ADDRESS_IN_USE',
        class: 'conflict',
        message: expect.stringMatching(
          new RegExp(
            `^address ${address.replaceAll('.', '\\.')} in pool local/10\\.1\\.0\\.0/24 is already in use by ${owner}:[0-9a-f]{64}$`,
          ),
        ),
      });
      const cases: [() => Promise<unknown>, unknown][] = [
        [
          () => api.connect({ network: 'web', sandbox: 'other', ipv4: '10.1.0.50' }),
          inUse('10.1.0.50', 'ep'),
        ],
        [() => api.connect({ network: 'web', sandbox: 'other', ipv4: '10.1.0.1' }), inUse('10.1.0.1', 'net')],
        [
          () => api.connect({ network: 'web', sandbox: 'other', ipv4: '10.9.0.5' }),
          {
            code: 'NETCTL_ADDRESS_OUT_OF_RANGE',
            class: 'badRequest',
            message: 'address 10.9.0.5 is not inside subnet 10.1.0.0/24',
          },
        ],
        [
          () => api.connect({ network: 'web', sandbox: 'box' }),
          {
            code: 'NETCTL_ENDPOINT_EXISTS',
            class: 'conflict',
            message: 'endpoint with name box already exists in network web',
          },
        ],
        [
          () => api.connect({ network: 'web', sandbox: 'other', aliases: ['-x'] }),
          {
            code: 'NETCTL_INVALID_REQUEST',
            class: 'badRequest',
            message: `invalid request: aliases[0]: "-x" is not a valid name: ${NAME_RULE}`,
          },
        ],
      ];
      for (const [call, expected] of cases) expect(await refusal(call())).toEqual(expected);
      expect(await listing(api)).toEqual(before);
    });

    it('moves on to the next address after a disconnect, as the IPAM does, and refuses when the network is full', async () => {
      const { api } = s.t;
      await api.createNetwork({ name: 'tiny', ipam: { config: [{ subnet: '10.1.0.0/29' }] } });
      for (const name of ['a', 'b', 'c']) await api.createSandbox(box(s, name));
      expect((await api.connect({ network: 'tiny', sandbox: 'a' })).ipv4).toBe('10.1.0.2/29');
      await api.disconnect('tiny', 'a');
      expect((await api.connect({ network: 'tiny', sandbox: 'b' })).ipv4).toBe('10.1.0.3/29');
      // .4 to .6, then round to the freed .2; .7 is the broadcast address.
      const more = [];
      for (const name of ['c', 'a']) more.push((await api.connect({ network: 'tiny', sandbox: name })).ipv4);
      expect(more).toEqual(['10.1.0.4/29', '10.1.0.5/29']);
      for (const name of ['d', 'e', 'f']) await api.createSandbox(box(s, name));
      expect((await api.connect({ network: 'tiny', sandbox: 'd' })).ipv4).toBe('10.1.0.6/29');
      expect((await api.connect({ network: 'tiny', sandbox: 'e' })).ipv4).toBe('10.1.0.2/29');
      expect(await refusal(api.connect({ network: 'tiny', sandbox: 'f' }))).toEqual({
        code: 'NETCTL_NO_AVAILABLE_ADDRESS',
        class: 'conflict',
        message: 'no available address in 10.1.0.0/29 (pool local/10.1.0.0/29)',
      });
      expect(await refusal(api.connect({ network: 'tiny', sandbox: 'f', ipv4: '10.1.0.7' }))).toEqual({
        code: 'NETCTL_INVALID_ADDRESS',
        class: 'badRequest',
        message:
          'invalid address "10.1.0.7": requested address cannot be assigned: it is the broadcast address of 10.1.0.0/29',
      });
    });

    it('gives an IPv6 address too on a network with an IPv6 subnet; the MAC follows the IPv4 address', async () => {
      const { api } = s.t;
      await api.createNetwork({
        name: 'dual',
        enableIPv6: true,
        ipam: { config: [{ subnet: '10.1.0.0/24' }, { subnet: 'fd00:1::/64' }] },
      });
      await api.createSandbox(box(s));
      await api.createSandbox(box(s, 'other'));
      expect(await api.connect({ network: 'dual', sandbox: 'box' })).toMatchObject({
        ipv4: '10.1.0.2/24',
        ipv6: 'fd00:1::2/64',
        mac: '02:42:0a:01:00:02',
      });
      expect((await api.connect({ network: 'dual', sandbox: 'other', mac: '02:AA:BB:CC:DD:EE' })).mac).toBe(
        '02:aa:bb:cc:dd:ee',
      );
    });

    it('gives one address per family on a network with two IPv4 subnets, as Docker: the asked one from its subnet, else the first with room', async () => {
      const { api } = s.t;
      await api.createNetwork({
        name: 'two',
        ipam: { config: [{ subnet: '10.1.0.0/30' }, { subnet: '10.2.0.0/24' }] },
      });
      for (const name of ['a', 'b', 'c', 'd']) await api.createSandbox(box(s, name));
      expect((await api.connect({ network: 'two', sandbox: 'a' })).ipv4).toBe('10.1.0.2/30');
      expect((await api.connect({ network: 'two', sandbox: 'b', ipv4: '10.2.0.9' })).ipv4).toBe(
        '10.2.0.9/24',
      );
      // The first subnet is full (a /30 has one address besides its gateway): the next has room.
      expect((await api.connect({ network: 'two', sandbox: 'c' })).ipv4).toBe('10.2.0.2/24');
      const before = await listing(api);
      expect(await refusal(api.connect({ network: 'two', sandbox: 'd', ipv4: '10.3.0.5' }))).toMatchObject({
        code: 'NETCTL_ADDRESS_OUT_OF_RANGE',
        message: 'address 10.3.0.5 is not inside subnet 10.1.0.0/30, 10.2.0.0/24',
      });
      expect(await refusal(api.connect({ network: 'two', sandbox: 'd', ipv6: 'fd00::5' }))).toMatchObject({
        code: 'NETCTL_INVALID_REQUEST',
        message: 'invalid request: network two has no IPv6 subnet for fd00::5',
      });
      expect(await listing(api)).toEqual(before);
      // One address each: the one freed goes back to its own subnet.
      await api.disconnect('two', 'a');
      expect((await api.connect({ network: 'two', sandbox: 'd' })).ipv4).toBe('10.1.0.2/30');
    });

    it('names interfaces ethN, skipping one taken; a name asked for twice is NETCTL_INTERFACE_EXISTS', async () => {
      const { api } = s.t;
      for (const [i, name] of ['a', 'b', 'c'].entries())
        await api.createNetwork({ name, ipam: { config: [{ subnet: `10.${i + 1}.0.0/24` }] } });
      await api.createSandbox(box(s));
      await api.connect({ network: 'a', sandbox: 'box', ifname: 'eth1' });
      expect((await api.connect({ network: 'b', sandbox: 'box' })).ifname).toBe('eth2');
      expect(await refusal(api.connect({ network: 'c', sandbox: 'box', ifname: 'eth1' }))).toEqual({
        code: 'NETCTL_INTERFACE_EXISTS',
        class: 'conflict',
        message: 'interface eth1 already exists in sandbox box',
      });
    });

    it('refuses to disconnect what is not connected with NETCTL_ENDPOINT_NOT_FOUND', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createSandbox(box(s));
      expect(await refusal(api.disconnect('web', 'box'))).toEqual({
        code: 'NETCTL_ENDPOINT_NOT_FOUND',
        class: 'notFound',
        message: 'endpoint box on web not found',
      });
      await api.connect({ network: 'web', sandbox: 'box' });
      await api.disconnect('web', 'box');
      expect(await refusal(api.disconnect('web', 'box'))).toMatchObject({
        code: 'NETCTL_ENDPOINT_NOT_FOUND',
      });
    });

    it('publishes a host port once: a second publisher gets NETCTL_PORT_IN_USE; none on an internal network', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createNetwork({
        name: 'vault',
        internal: true,
        ipam: { config: [{ subnet: '10.3.0.0/24' }] },
      });
      await api.createSandbox(box(s));
      await api.createSandbox(box(s, 'other'));
      const ports = [{ hostPort: 8080, containerPort: 80 }];
      const ep = await api.connect({ network: 'web', sandbox: 'box', portMappings: ports });
      expect(ep.portMappings).toEqual([{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
      const before = await listing(api);
      expect(await refusal(api.connect({ network: 'web', sandbox: 'other', portMappings: ports }))).toEqual({
        code: 'NETCTL_PORT_IN_USE',
        class: 'conflict',
        message: 'host port 0.0.0.0:8080/tcp is already published by box',
      });
      expect(await refusal(api.connect({ network: 'vault', sandbox: 'other', portMappings: ports }))).toEqual(
        {
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: 'invalid request: network vault is internal: it publishes no ports',
        },
      );
      expect(await listing(api)).toEqual(before);
      // Taken back with its endpoint.
      await api.disconnect('web', 'box');
      expect(
        (await api.connect({ network: 'web', sandbox: 'other', portMappings: ports })).portMappings,
      ).toHaveLength(1);
    });

    it('publishes a port range as one; a port on one host address leaves the others free', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      for (const name of ['a', 'b', 'c', 'd']) await api.createSandbox(box(s, name));
      await api.connect({
        network: 'web',
        sandbox: 'a',
        portMappings: [{ hostPort: 8001, containerPort: 81 }],
      });
      expect(
        await refusal(
          api.connect({
            network: 'web',
            sandbox: 'b',
            portMappings: [{ hostPort: 8000, hostPortEnd: 8002, containerPort: 80, containerPortEnd: 82 }],
          }),
        ),
      ).toEqual({
        code: 'NETCTL_PORT_IN_USE',
        class: 'conflict',
        message: 'host port 0.0.0.0:8000-8002/tcp is already published by a',
      });
      const on = (hostIp?: string) => [{ ...(hostIp ? { hostIp } : {}), hostPort: 9000, containerPort: 90 }];
      await api.connect({ network: 'web', sandbox: 'c', portMappings: on('127.0.0.1') });
      await api.connect({ network: 'web', sandbox: 'd', portMappings: on('127.0.0.2') });
      await api.disconnect('web', 'd');
      expect(await refusal(api.connect({ network: 'web', sandbox: 'd', portMappings: on() }))).toEqual({
        code: 'NETCTL_PORT_IN_USE',
        class: 'conflict',
        message: 'host port 0.0.0.0:9000/tcp is already published by c',
      });
      // udp is another port.
      expect(
        (
          await api.connect({
            network: 'web',
            sandbox: 'd',
            portMappings: [{ proto: 'udp', hostPort: 9000, containerPort: 90 }],
          })
        ).portMappings,
      ).toHaveLength(1);
    });

    it('lets only sandboxes in the host namespace join a host network', async () => {
      const { api } = s.t;
      await api.createNetwork({ name: 'host', driver: 'host' });
      await api.createSandbox(box(s));
      expect(await refusal(api.connect({ network: 'host', sandbox: 'box' }))).toEqual({
        code: 'NETCTL_INVALID_REQUEST',
        class: 'badRequest',
        message:
          "invalid request: only sandboxes in the host's namespace (--network host) can join host network host",
      });
    });
  });

  describe('removal', () => {
    it('refuses to delete a network in use with NETCTL_NETWORK_IN_USE, naming its sandboxes; deletes it once empty', async () => {
      const { api } = s.t;
      const n = await api.createNetwork(web);
      await api.createSandbox(box(s));
      await api.createSandbox(box(s, 'other'));
      await api.connect({ network: 'web', sandbox: 'box' });
      await api.connect({ network: 'web', sandbox: 'other' });
      const refused = await refusal(api.deleteNetwork('web'));
      expect(refused).toMatchObject({ code: 'NETCTL_NETWORK_IN_USE', class: 'conflict' });
      expect([
        'network web has active endpoints (box, other): disconnect them first',
        'network web has active endpoints (other, box): disconnect them first',
      ]).toContain(refused.message);
      expect((await api.inspectNetwork('web')).endpoints).toHaveLength(2);
      await api.disconnect('web', 'box');
      await api.deleteSandbox('other');
      expect((await api.deleteNetwork('web')).id).toBe(n.id);
      expect(await api.listNetworks()).toEqual([]);
    });

    it('deletes a sandbox with its endpoints; with ifEmpty only an empty one (NETCTL_SANDBOX_IN_USE)', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createSandbox(box(s));
      const ep: Endpoint = await api.connect({ network: 'web', sandbox: 'box' });
      expect(await refusal(api.deleteSandbox('box', { ifEmpty: true }))).toEqual({
        code: 'NETCTL_SANDBOX_IN_USE',
        class: 'conflict',
        message: `sandbox box has endpoints (ep:${ep.id.slice(0, 12)}): it stays`,
      });
      expect((await api.inspectSandbox('box')).endpoints).toHaveLength(1);
      expect((await api.deleteSandbox('box')).name).toBe('box');
      expect(await api.listSandboxes()).toEqual([]);
      expect((await api.inspectNetwork('web')).endpoints).toEqual([]);
      await api.createSandbox(box(s, 'empty'));
      await api.deleteSandbox('empty', { ifEmpty: true });
      expect(await api.listSandboxes()).toEqual([]);
    });

    it('prunes the networks without endpoints, and says which', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createNetwork({ name: 'idle', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
      await api.createNetwork({ name: 'none', driver: 'none' });
      await api.createSandbox(box(s));
      await api.connect({ network: 'web', sandbox: 'box' });
      expect((await api.pruneNetworks()).sort()).toEqual(['idle', 'none']);
      expect((await api.listNetworks()).map((n) => n.name)).toEqual(['web']);
      expect(await api.pruneNetworks()).toEqual([]);
    });
  });

  it('counts what it holds in health()', async () => {
    const { api } = s.t;
    await api.createNetwork(web);
    await api.createSandbox(box(s));
    await api.createSandbox(box(s, 'other'));
    await api.connect({ network: 'web', sandbox: 'box' });
    expect(await api.health()).toMatchObject({
      storeReachable: true,
      networks: 1,
      endpoints: 1,
      sandboxes: 2,
    });
  });

  it('checks a network: nothing missing, NETCTL_ENDPOINT_NOT_FOUND for a sandbox not on it', async () => {
    const { api } = s.t;
    await api.createNetwork(web);
    await api.createSandbox(box(s));
    expect(await api.check('web')).toEqual({ network: 'web', problems: [] });
    expect(await refusal(api.check('web', 'box'))).toMatchObject({ code: 'NETCTL_ENDPOINT_NOT_FOUND' });
    await api.connect({ network: 'web', sandbox: 'box' });
    expect(await api.check('web', 'box')).toMatchObject({ network: 'web', problems: [], sandbox: 'box' });
  });
}
