/** The contract's references (by name, id, prefix) and sandboxes on namespaces given by key. */
import { describe, expect, it } from 'vitest';
import { type Api, box, listing, NAME_RULE, refusal, web } from './harness.js';

export function sandboxContract(s: Api): void {
  describe('references', () => {
    it('finds a network and a sandbox by name, full id, or a unique id prefix of 6 digits or more', async () => {
      const { api } = s.t;
      const n = await api.createNetwork(web);
      const sb = await api.createSandbox(box(s));
      for (const ref of ['web', n.id, n.id.slice(0, 12), n.id.slice(0, 6)])
        expect((await api.inspectNetwork(ref)).network.id, ref).toBe(n.id);
      for (const ref of ['box', sb.id, sb.id.slice(0, 12), sb.id.slice(0, 6)])
        expect((await api.inspectSandbox(ref)).sandbox.id, ref).toBe(sb.id);
    });

    it("takes a full id before a name, as Docker does: a name that is another's id does not hide it", async () => {
      const { api } = s.t;
      const n = await api.createNetwork(web);
      const impostor = await api.createNetwork({
        ...web,
        name: n.id,
        ipam: { config: [{ subnet: '10.99.1.0/24' }] },
      });
      expect((await api.inspectNetwork(n.id)).network.name).toBe('web');
      expect((await api.inspectNetwork(impostor.id)).network.id).toBe(impostor.id);
      const sb = await api.createSandbox(box(s));
      const other = await api.createSandbox(box(s, sb.id));
      expect((await api.inspectSandbox(sb.id)).sandbox.name).toBe('box');
      expect((await api.inspectSandbox(other.id)).sandbox.name).toBe(sb.id);
    });

    it('refuses an unknown name, a prefix shorter than 6 digits, or an upper-case one, with ..._NOT_FOUND', async () => {
      const { api } = s.t;
      const n = await api.createNetwork(web);
      const sb = await api.createSandbox(box(s));
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
      await api.createSandbox(box(s));
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
      const sb = await api.createSandbox(box(s));
      expect(sb).toMatchObject({
        name: 'box',
        key: s.t.netns('box'),
        ownsNetns: false,
        hostname: 'box',
        endpointIds: [],
      });
      const other = await api.createSandbox({ ...box(s, 'other'), hostname: 'h1.example' });
      expect(other.hostname).toBe('h1.example');
      expect((await api.listSandboxes()).map((x) => x.name)).toEqual(['box', 'other']);
    });

    it('refuses a bad or taken name, a key that is not a network namespace, and a key with netnsOf', async () => {
      const { api } = s.t;
      await api.createSandbox(box(s));
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
      const owner = await api.createSandbox(box(s));
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

    it('replaces the sandbox that holds the name when asked by its id; a refused key or another id changes nothing', async () => {
      const { api } = s.t;
      await api.createNetwork(web);
      const old = await api.createSandbox(box(s));
      await api.connect({ network: 'web', sandbox: 'box' });
      const before = await listing(api);
      expect(
        await refusal(api.createSandbox({ ...box(s), key: '/etc/hostname', replaces: old.id })),
      ).toMatchObject({ code: 'NETCTL_INVALID_NETNS' });
      const stranger = 'f'.repeat(64);
      expect(
        await refusal(api.createSandbox({ name: 'box', key: s.t.netns('again'), replaces: stranger })),
      ).toMatchObject({ code: 'NETCTL_SANDBOX_EXISTS' });
      expect(await listing(api)).toEqual(before);
      const made = await api.createSandbox({ name: 'box', key: s.t.netns('again'), replaces: old.id });
      expect(made).toMatchObject({ name: 'box', key: s.t.netns('again'), endpointIds: [] });
      expect(made.id).not.toBe(old.id);
      expect((await api.listSandboxes()).map((x) => x.id)).toEqual([made.id]);
      expect((await api.inspectNetwork('web')).endpoints).toEqual([]);
      // Nothing holds the name: replaces is a no-op.
      await api.deleteSandbox('box');
      expect((await api.createSandbox({ ...box(s), replaces: old.id })).name).toBe('box');
    });

    it('records the pid of its process', async () => {
      const { api } = s.t;
      await api.createSandbox(box(s));
      expect((await api.setSandboxPid('box', process.pid)).pid).toBe(process.pid);
      expect((await api.inspectSandbox('box')).sandbox.pid).toBe(process.pid);
    });

    it('refuses a pid that is not one process (0, -1: its removal would signal a group or everyone)', async () => {
      const { api } = s.t;
      await api.createSandbox(box(s));
      const before = await listing(api);
      for (const pid of [0, -1, 1.5, 2 ** 23]) {
        expect(await refusal(api.setSandboxPid('box', pid))).toMatchObject({
          code: 'NETCTL_INVALID_REQUEST',
          class: 'badRequest',
          message: expect.stringMatching(/^invalid request: pid: /),
        });
      }
      expect(await listing(api)).toEqual(before);
      expect((await api.inspectSandbox('box')).sandbox.pid).toBeUndefined();
    });
  });
}
