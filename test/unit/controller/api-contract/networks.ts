/** The contract's networks: names, drivers, subnets and gateways. */
import { describe, expect, it } from 'vitest';
import { type Api, box, NAME_RULE, refusal, web } from './harness.js';

export function networkContract(s: Api): void {
  describe('network names', () => {
    it("takes Docker's names: [a-zA-Z0-9][a-zA-Z0-9_.-]*, up to 64 characters", async () => {
      const { api } = s.t;
      const names = ['a', 'Web', '9lives', 'x.y_z-1', 'n'.repeat(64)];
      for (const [i, n] of names.entries())
        await api.createNetwork({ name: n, ipam: { config: [{ subnet: `10.9.${i}.0/24` }] } });
      expect((await api.listNetworks()).map((n) => n.name).sort()).toEqual([...names].sort());
    });

    it('refuses any other name with NETCTL_INVALID_REQUEST, and makes nothing', async () => {
      const { api } = s.t;
      for (const bad of ['-web', '.web', '_web', 'we b', 'web/1', 'wéb', '']) {
        expect(await refusal(api.createNetwork({ name: bad })), bad).toEqual({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: `invalid request: name: ${JSON.stringify(bad)} is not a valid name: ${NAME_RULE}`,
        });
      }
      expect(await refusal(api.createNetwork({ name: 'n'.repeat(65) }))).toMatchObject({
        code: 'NETCTL_INVALID_REQUEST',
        message: expect.stringMatching(/^invalid request: name: .*64/),
      });
      expect(await api.listNetworks()).toEqual([]);
    });

    it('refuses a name taken with NETCTL_NETWORK_EXISTS, and keeps the first network as it was', async () => {
      const { api } = s.t;
      const first = await api.createNetwork(web);
      expect(
        await refusal(api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.2.0.0/24' }] } })),
      ).toEqual({
        code: 'NETCTL_NETWORK_EXISTS',
        class: 'conflict',
        message: 'network with name web already exists',
      });
      expect(await api.listNetworks()).toEqual([first]);
    });
  });

  describe('drivers', () => {
    it('makes bridge networks by default, host and none networks without addresses', async () => {
      const { api } = s.t;
      expect(await api.createNetwork(web)).toMatchObject({ driver: 'bridge', scope: 'local' });
      for (const driver of ['host', 'none']) {
        const n = await api.createNetwork({ name: driver, driver });
        expect(n).toMatchObject({ driver, scope: 'local', ipam: { config: [] } });
      }
    });

    it('refuses a driver it does not have (overlay, today) with NETCTL_DRIVER_NOT_FOUND, naming the ones it has', async () => {
      const { api } = s.t;
      for (const driver of ['overlay', 'macvlan']) {
        expect(await refusal(api.createNetwork({ name: 'n', driver }))).toEqual({
          code: 'NETCTL_DRIVER_NOT_FOUND',
          class: 'notFound',
          message: `network driver ${driver} not found (available: bridge, host, none)`,
        });
      }
      expect(await api.listNetworks()).toEqual([]);
    });

    it('refuses subnets on a network without addresses (host, none)', async () => {
      const { api } = s.t;
      expect(await refusal(api.createNetwork({ ...web, driver: 'none' }))).toEqual({
        code: 'NETCTL_INVALID_REQUEST',
        class: 'badRequest',
        message: 'invalid request: the null IPAM driver takes no subnets',
      });
    });

    it('refuses a bridge option it cannot honour with NETCTL_INVALID_OPTION', async () => {
      const { api } = s.t;
      expect(
        await refusal(api.createNetwork({ ...web, options: { 'com.docker.network.driver.mtu': 'big' } })),
      ).toMatchObject({
        code: 'NETCTL_INVALID_OPTION',
        class: 'badRequest',
        message: expect.stringMatching(/mtu/),
      });
      expect(
        await refusal(api.createNetwork({ ...web, options: { 'com.docker.network.bridge.colour': 'red' } })),
      ).toEqual({
        code: 'NETCTL_INVALID_OPTION',
        class: 'badRequest',
        message: 'invalid option com.docker.network.bridge.colour: not a bridge driver option',
      });
      expect(await api.listNetworks()).toEqual([]);
    });
  });

  describe('subnets and gateways', () => {
    it('gives the first address to the gateway, and one default subnet per network, apart', async () => {
      const { api } = s.t;
      expect((await api.createNetwork(web)).ipam.config).toEqual([
        { subnet: '10.1.0.0/24', gateway: '10.1.0.1' },
      ]);
      const a = await api.createNetwork({ name: 'a' });
      const b = await api.createNetwork({ name: 'b' });
      const subnets = [a, b].map((n) => n.ipam.config[0]?.subnet);
      expect(subnets.every((c) => c !== undefined && /^[0-9.]+\/\d+$/.test(c))).toBe(true);
      expect(new Set([...subnets, '10.1.0.0/24']).size).toBe(3);
    });

    it('refuses a subnet overlapping another network’s with NETCTL_POOL_OVERLAP', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      const cases = [
        ['10.1.0.0/24', 'pool 10.1.0.0/24 already exists in address space local'],
        ['10.1.0.128/25', 'subnet 10.1.0.128/25 overlaps pool 10.1.0.0/24 in address space local'],
        ['10.0.0.0/15', 'subnet 10.0.0.0/15 overlaps pool 10.1.0.0/24 in address space local'],
      ];
      for (const [subnet, message] of cases) {
        expect(
          await refusal(api.createNetwork({ name: 'x', ipam: { config: [{ subnet }] } })),
          subnet,
        ).toEqual({
          code: 'NETCTL_POOL_OVERLAP',
          class: 'conflict',
          message,
        });
      }
      expect((await api.listNetworks()).map((n) => n.name)).toEqual(['web']);
    });

    it('refuses what is not a CIDR with NETCTL_INVALID_REQUEST', async () => {
      const { api } = s.t;
      for (const subnet of ['10.0.0.300/24', 'banana', '10.1.0.0', '10.1.0.0/33']) {
        expect(
          await refusal(api.createNetwork({ name: 'x', ipam: { config: [{ subnet }] } })),
          subnet,
        ).toEqual({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: `invalid request: ipam.config[0].subnet: ${JSON.stringify(subnet)} is not a valid CIDR (expected e.g. 10.1.0.0/24 or fd00::/64)`,
        });
      }
      expect(await api.listNetworks()).toEqual([]);
    });

    it('refuses a subnet with host bits set with NETCTL_INVALID_CIDR, naming the network it meant', async () => {
      const { api } = s.t;
      expect(
        await refusal(api.createNetwork({ name: 'x', ipam: { config: [{ subnet: '10.1.0.5/24' }] } })),
      ).toEqual({
        code: 'NETCTL_INVALID_CIDR',
        class: 'badRequest',
        message: 'invalid CIDR "10.1.0.5/24": subnet has host bits set; the network is 10.1.0.0/24',
      });
      expect(await api.listNetworks()).toEqual([]);
    });

    it('takes dynamic addresses from the IP range, and keeps the aux addresses for the network', async () => {
      const { api } = s.t;
      await api.createNetwork({
        name: 'web',
        ipam: {
          config: [
            {
              subnet: '10.1.0.0/16',
              gateway: '10.1.0.1',
              ipRange: '10.1.4.0/24',
              auxAddresses: { dns: '10.1.4.0' },
            },
          ],
        },
      });
      await api.createSandbox(box(s));
      await api.createSandbox(box(s, 'other'));
      expect((await api.connect({ network: 'web', sandbox: 'box' })).ipv4).toBe('10.1.4.1/16');
      expect(
        await refusal(api.connect({ network: 'web', sandbox: 'other', ipv4: '10.1.4.0' })),
      ).toMatchObject({
        code: 'NETCTL_ADDRESS_IN_USE',
        message: expect.stringMatching(
          /^address 10\.1\.4\.0 in pool local\/10\.1\.0\.0\/16 is already in use by net:/,
        ),
      });
      // A static address may be anywhere in the subnet.
      expect((await api.connect({ network: 'web', sandbox: 'other', ipv4: '10.1.9.9' })).ipv4).toBe(
        '10.1.9.9/16',
      );
    });

    it('refuses a gateway, an aux address or an IP range outside the subnet', async () => {
      const { api } = s.t;
      const config = (extra: object) => ({
        name: 'x',
        ipam: { config: [{ subnet: '10.1.0.0/24', ...extra }] },
      });
      expect(await refusal(api.createNetwork(config({ gateway: '10.2.0.1' })))).toEqual({
        code: 'NETCTL_GATEWAY_OUTSIDE_SUBNET',
        class: 'badRequest',
        message: 'gateway 10.2.0.1 is not inside subnet 10.1.0.0/24',
      });
      expect(await refusal(api.createNetwork(config({ auxAddresses: { dns: '10.2.0.53' } })))).toEqual({
        code: 'NETCTL_ADDRESS_OUT_OF_RANGE',
        class: 'badRequest',
        message: 'address 10.2.0.53 is not inside subnet 10.1.0.0/24',
      });
      expect(await refusal(api.createNetwork(config({ ipRange: '10.1.0.0/16' })))).toEqual({
        code: 'NETCTL_INVALID_REQUEST',
        class: 'badRequest',
        message: 'invalid request: --ip-range 10.1.0.0/16 is not inside subnet 10.1.0.0/24',
      });
      expect(
        await refusal(api.createNetwork({ name: 'x', ipam: { config: [{ gateway: '10.1.0.1' }] } })),
      ).toEqual({
        code: 'NETCTL_INVALID_REQUEST',
        class: 'badRequest',
        message: 'invalid request: --gateway, --ip-range and --aux-address need a --subnet',
      });
      expect(await api.listNetworks()).toEqual([]);
    });

    it('refuses a subnet that would take the routes of the whole Internet, and IPv6 without an IPv6 subnet', async () => {
      const { api } = s.t;
      expect(
        await refusal(api.createNetwork({ name: 'x', ipam: { config: [{ subnet: '128.0.0.0/1' }] } })),
      ).toEqual({
        code: 'NETCTL_SUBNET_TOO_BROAD',
        class: 'badRequest',
        message:
          'subnet 128.0.0.0/1 is refused: netctl takes IPv4 subnets of /8 or longer and IPv6 of /48 or longer',
      });
      expect(await refusal(api.createNetwork({ ...web, enableIPv6: true }))).toEqual({
        code: 'NETCTL_INVALID_REQUEST',
        class: 'badRequest',
        message: 'invalid request: --ipv6 needs an IPv6 --subnet (no default IPv6 pool is configured)',
      });
      expect(await api.listNetworks()).toEqual([]);
    });
  });
}
