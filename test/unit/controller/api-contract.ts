/**
 * The NetctlApi contract: the rules a CLI user meets, whichever NetctlApi
 * answers — one suite, registered once per implementation (the CLI's
 * FakeApi and the real Controller), as the KvStore contract is for the
 * store's backends (../kv/contract.ts). The real controller is the truth:
 * where the fake answers otherwise, the fake is wrong.
 *
 * A refusal is checked as the user sees it: its registry code and class
 * (src/errors.ts, docs/errors.md) and its message, and that nothing changed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NetctlApi } from '../../../src/controller/api.js';
import type { Endpoint } from '../../../src/core/model.js';
import { type ErrorClass, specOf } from '../../../src/errors.js';

export interface ApiUnderTest {
  api: NetctlApi;
  /** The path of a network namespace to give as a sandbox key (made on first use, gone after the test). */
  netns(name: string): string;
  close(): Promise<void>;
}

export type ApiSetup = () => Promise<ApiUnderTest>;

interface Refusal {
  code: string;
  class: ErrorClass;
  message: string;
}

/** How a call was refused, as the registry reports it (a lower layer's error by the code it means). */
async function refusal(call: Promise<unknown>): Promise<Refusal> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call was refused').toBeInstanceOf(Error);
  const spec = specOf(err);
  expect(spec, `a registry error, not ${String(err)}`).toBeDefined();
  return { code: spec?.code ?? '', class: spec?.class ?? 'internal', message: (err as Error).message };
}

/** What a user can list: every network and sandbox, with their endpoints' addresses. */
async function listing(api: NetctlApi) {
  const networks = await api.listNetworks();
  const sandboxes = await api.listSandboxes();
  return {
    networks: networks
      .map((n) => `${n.name} ${n.driver} ${n.ipam.config.map((c) => c.subnet).join(',')}`)
      .sort(),
    sandboxes: (
      await Promise.all(
        sandboxes.map(async (s) => {
          const { endpoints } = await api.inspectSandbox(s.id);
          return `${s.name} ${endpoints.map((e) => `${e.networkName}=${e.ipv4 ?? '-'}`).join(',')}`;
        }),
      )
    ).sort(),
  };
}

/** Every test gets a fresh api; `t` is it. */
function useApi(setup: ApiSetup): { readonly t: ApiUnderTest } {
  let current: ApiUnderTest | undefined;
  beforeEach(async () => {
    current = await setup();
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return {
    get t() {
      if (!current) throw new Error('setup failed');
      return current;
    },
  };
}

const NAME_RULE = 'names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64 characters)';

/** The contract for sandboxes made on namespaces given by key (no netns is made). */
export function apiContract(name: string, setup: ApiSetup): void {
  describe(`NetctlApi contract: ${name}`, () => {
    const s = useApi(setup);
    const web = { name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } };
    const box = (name = 'box') => ({ name, key: s.t.netns(name) });

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
          await refusal(
            api.createNetwork({ ...web, options: { 'com.docker.network.bridge.colour': 'red' } }),
          ),
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
        await api.createSandbox(box());
        await api.createSandbox(box('other'));
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

    describe('references', () => {
      it('finds a network and a sandbox by name, full id, or a unique id prefix of 6 digits or more', async () => {
        const { api } = s.t;
        const n = await api.createNetwork(web);
        const sb = await api.createSandbox(box());
        for (const ref of ['web', n.id, n.id.slice(0, 12), n.id.slice(0, 6)])
          expect((await api.inspectNetwork(ref)).network.id, ref).toBe(n.id);
        for (const ref of ['box', sb.id, sb.id.slice(0, 12), sb.id.slice(0, 6)])
          expect((await api.inspectSandbox(ref)).sandbox.id, ref).toBe(sb.id);
      });

      it('refuses an unknown name, a prefix shorter than 6 digits, or an upper-case one, with ..._NOT_FOUND', async () => {
        const { api } = s.t;
        const n = await api.createNetwork(web);
        const sb = await api.createSandbox(box());
        for (const ref of ['nope', n.id.slice(0, 5), n.id.slice(0, 12).toUpperCase()]) {
          expect(await refusal(api.inspectNetwork(ref)), ref).toEqual({
            code: 'NETCTL_NETWORK_NOT_FOUND',
            class: 'notFound',
            message: `network ${ref} not found`,
          });
        }
        for (const ref of ['nobody', sb.id.slice(0, 5)]) {
          expect(await refusal(api.inspectSandbox(ref)), ref).toEqual({
            code: 'NETCTL_SANDBOX_NOT_FOUND',
            class: 'notFound',
            message: `sandbox ${ref} not found`,
          });
        }
      });

      it('refuses every call on an unknown network or sandbox, changing nothing', async () => {
        const { api } = s.t;
        await api.createNetwork(web);
        await api.createSandbox(box());
        const before = await listing(api);
        const calls: [() => Promise<unknown>, string][] = [
          [() => api.deleteNetwork('nope'), 'network nope not found'],
          [() => api.connect({ network: 'nope', sandbox: 'box' }), 'network nope not found'],
          [() => api.connect({ network: 'web', sandbox: 'nobody' }), 'sandbox nobody not found'],
          [() => api.disconnect('nope', 'box'), 'network nope not found'],
          [() => api.disconnect('web', 'nobody'), 'sandbox nobody not found'],
          [() => api.deleteSandbox('nobody'), 'sandbox nobody not found'],
          [() => api.setSandboxPid('nobody', 1), 'sandbox nobody not found'],
          [() => api.check('nope'), 'network nope not found'],
          [
            () => api.createSandbox({ name: 'shares', netnsOf: 'container:nobody' }),
            'sandbox nobody not found',
          ],
        ];
        for (const [call, message] of calls)
          expect(await refusal(call()), message).toMatchObject({ class: 'notFound', message });
        expect(await listing(api)).toEqual(before);
      });
    });

    describe('sandboxes', () => {
      it('takes a network namespace by key; its hostname is its name unless given', async () => {
        const { api } = s.t;
        const sb = await api.createSandbox(box());
        expect(sb).toMatchObject({
          name: 'box',
          key: s.t.netns('box'),
          ownsNetns: false,
          hostname: 'box',
          endpointIds: [],
        });
        const other = await api.createSandbox({ ...box('other'), hostname: 'h1.example' });
        expect(other.hostname).toBe('h1.example');
        expect((await api.listSandboxes()).map((x) => x.name)).toEqual(['box', 'other']);
      });

      it('refuses a bad or taken name, a key that is not a network namespace, and a key with netnsOf', async () => {
        const { api } = s.t;
        await api.createSandbox(box());
        const before = await listing(api);
        expect(await refusal(api.createSandbox({ name: '-box' }))).toEqual({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: `invalid request: name: "-box" is not a valid name: ${NAME_RULE}`,
        });
        expect(await refusal(api.createSandbox({ name: 'box', key: s.t.netns('again') }))).toEqual({
          code: 'NETCTL_SANDBOX_EXISTS',
          class: 'conflict',
          message: 'sandbox with name box already exists',
        });
        for (const key of ['/proc/self/ns/net', '/etc/hostname', '/nonexistent/netns']) {
          expect(await refusal(api.createSandbox({ name: 'k', key })), key).toMatchObject({
            code: 'NETCTL_INVALID_NETNS',
            class: 'badRequest',
            message: expect.stringMatching(/^invalid network namespace: /),
          });
        }
        expect(
          await refusal(api.createSandbox({ name: 'k', key: s.t.netns('k'), netnsOf: 'container:box' })),
        ).toEqual({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: 'invalid request: give either key or netnsOf, not both',
        });
        expect(await listing(api)).toEqual(before);
      });

      it("shares another sandbox's namespace (container:NAME), and joins no network itself", async () => {
        const { api } = s.t;
        await api.createNetwork(web);
        const owner = await api.createSandbox(box());
        const sharer = await api.createSandbox({ name: 'sharer', netnsOf: 'container:box' });
        expect(sharer).toMatchObject({ key: owner.key, netnsOf: owner.id, ownsNetns: false });
        // One sharing a sharer shares with the owner.
        expect(await api.createSandbox({ name: 'third', netnsOf: 'container:sharer' })).toMatchObject({
          key: owner.key,
          netnsOf: owner.id,
        });
        expect(await refusal(api.connect({ network: 'web', sandbox: 'sharer' }))).toEqual({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message:
            "invalid request: sandbox sharer shares another sandbox's network namespace: connect that one",
        });
      });

      it('records the pid of its process', async () => {
        const { api } = s.t;
        await api.createSandbox(box());
        expect((await api.setSandboxPid('box', process.pid)).pid).toBe(process.pid);
        expect((await api.inspectSandbox('box')).sandbox.pid).toBe(process.pid);
      });
    });

    describe('connect and disconnect', () => {
      it('gives the next free address and ethN, shown by both inspects; disconnect takes it back', async () => {
        const { api } = s.t;
        await api.createNetwork(web);
        await api.createNetwork({ name: 'db', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
        await api.createSandbox(box());
        await api.createSandbox(box('other'));
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
        await api.createSandbox(box());
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
        await api.createSandbox(box());
        await api.createSandbox(box('other'));
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
          [
            () => api.connect({ network: 'web', sandbox: 'other', ipv4: '10.1.0.1' }),
            inUse('10.1.0.1', 'net'),
          ],
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
        for (const name of ['a', 'b', 'c']) await api.createSandbox(box(name));
        expect((await api.connect({ network: 'tiny', sandbox: 'a' })).ipv4).toBe('10.1.0.2/29');
        await api.disconnect('tiny', 'a');
        expect((await api.connect({ network: 'tiny', sandbox: 'b' })).ipv4).toBe('10.1.0.3/29');
        // .4 to .6, then round to the freed .2; .7 is the broadcast address.
        const more = [];
        for (const name of ['c', 'a'])
          more.push((await api.connect({ network: 'tiny', sandbox: name })).ipv4);
        expect(more).toEqual(['10.1.0.4/29', '10.1.0.5/29']);
        for (const name of ['d', 'e', 'f']) await api.createSandbox(box(name));
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
        await api.createSandbox(box());
        await api.createSandbox(box('other'));
        expect(await api.connect({ network: 'dual', sandbox: 'box' })).toMatchObject({
          ipv4: '10.1.0.2/24',
          ipv6: 'fd00:1::2/64',
          mac: '02:42:0a:01:00:02',
        });
        expect((await api.connect({ network: 'dual', sandbox: 'other', mac: '02:AA:BB:CC:DD:EE' })).mac).toBe(
          '02:aa:bb:cc:dd:ee',
        );
      });

      it('names interfaces ethN, skipping one taken; a name asked for twice is NETCTL_INTERFACE_EXISTS', async () => {
        const { api } = s.t;
        for (const [i, name] of ['a', 'b', 'c'].entries())
          await api.createNetwork({ name, ipam: { config: [{ subnet: `10.${i + 1}.0.0/24` }] } });
        await api.createSandbox(box());
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
        await api.createSandbox(box());
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
        await api.createSandbox(box());
        await api.createSandbox(box('other'));
        const ports = [{ hostPort: 8080, containerPort: 80 }];
        const ep = await api.connect({ network: 'web', sandbox: 'box', portMappings: ports });
        expect(ep.portMappings).toEqual([{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
        const before = await listing(api);
        expect(await refusal(api.connect({ network: 'web', sandbox: 'other', portMappings: ports }))).toEqual(
          {
            code: 'NETCTL_PORT_IN_USE',
            class: 'conflict',
            message: 'host port 0.0.0.0:8080/tcp is already published by box',
          },
        );
        expect(
          await refusal(api.connect({ network: 'vault', sandbox: 'other', portMappings: ports })),
        ).toEqual({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: 'invalid request: network vault is internal: it publishes no ports',
        });
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
        for (const name of ['a', 'b', 'c', 'd']) await api.createSandbox(box(name));
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
        const on = (hostIp?: string) => [
          { ...(hostIp ? { hostIp } : {}), hostPort: 9000, containerPort: 90 },
        ];
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
        await api.createSandbox(box());
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
        await api.createSandbox(box());
        await api.createSandbox(box('other'));
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
        await api.createSandbox(box());
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
        await api.createSandbox(box('empty'));
        await api.deleteSandbox('empty', { ifEmpty: true });
        expect(await api.listSandboxes()).toEqual([]);
      });

      it('prunes the networks without endpoints, and says which', async () => {
        const { api } = s.t;
        await api.createNetwork(web);
        await api.createNetwork({ name: 'idle', ipam: { config: [{ subnet: '10.2.0.0/24' }] } });
        await api.createNetwork({ name: 'none', driver: 'none' });
        await api.createSandbox(box());
        await api.connect({ network: 'web', sandbox: 'box' });
        expect((await api.pruneNetworks()).sort()).toEqual(['idle', 'none']);
        expect((await api.listNetworks()).map((n) => n.name)).toEqual(['web']);
        expect(await api.pruneNetworks()).toEqual([]);
      });
    });

    it('counts what it holds in health()', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      await api.createSandbox(box());
      await api.createSandbox(box('other'));
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
      await api.createSandbox(box());
      expect(await api.check('web')).toEqual({ network: 'web', problems: [] });
      expect(await refusal(api.check('web', 'box'))).toMatchObject({ code: 'NETCTL_ENDPOINT_NOT_FOUND' });
      await api.connect({ network: 'web', sandbox: 'box' });
      expect(await api.check('web', 'box')).toMatchObject({ network: 'web', problems: [], sandbox: 'box' });
    });
  });
}

/**
 * The contract for sandboxes whose namespace netctl makes itself (a named
 * netns, or the host's pinned): the real controller needs the kernel for
 * these, so it runs them in the privileged project.
 */
export function ownNetnsContract(name: string, setup: ApiSetup): void {
  describe(`NetctlApi contract, namespaces netctl makes: ${name}`, () => {
    const s = useApi(setup);

    it('makes a sandbox its own netns, named after it; a name taken is NETCTL_SANDBOX_EXISTS', async () => {
      const { api } = s.t;
      const sb = await api.createSandbox({ name: 'own' });
      expect(sb).toMatchObject({
        name: 'own',
        key: '/run/netns/netctl-own',
        ownsNetns: true,
        hostname: 'own',
      });
      expect(await refusal(api.createSandbox({ name: 'own' }))).toEqual({
        code: 'NETCTL_SANDBOX_EXISTS',
        class: 'conflict',
        message: 'sandbox with name own already exists',
      });
      const sharer = await api.createSandbox({ name: 'sharer', netnsOf: 'container:own' });
      expect(sharer).toMatchObject({ key: sb.key, netnsOf: sb.id, ownsNetns: false });
      await api.deleteSandbox('sharer');
      await api.deleteSandbox('own');
      expect(await api.listSandboxes()).toEqual([]);
    });

    it("puts a sandbox in the host's namespace (host), which joins host networks only", async () => {
      const { api } = s.t;
      await api.createNetwork({ name: 'host', driver: 'host' });
      await api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
      const sb = await api.createSandbox({ name: 'h', netnsOf: 'host' });
      expect(sb).toMatchObject({ netnsOf: 'host', ownsNetns: false });
      const ep = await api.connect({ network: 'host', sandbox: 'h' });
      expect(ep.ipv4).toBeUndefined();
      expect(await refusal(api.connect({ network: 'web', sandbox: 'h' }))).toEqual({
        code: 'NETCTL_INVALID_REQUEST',
        class: 'badRequest',
        message:
          "invalid request: sandbox h uses the host's network namespace: it can only join host networks",
      });
      await api.deleteSandbox('h');
    });
  });
}
