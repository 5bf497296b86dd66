/**
 * The NetctlApi contract: the rules a CLI user meets, whichever NetctlApi
 * answers — one suite, registered once per implementation (the CLI's
 * FakeApi and the real Controller), as the KvStore contract is for the
 * store's backends (../../kv/contract.ts). The real controller is the
 * truth: where the fake answers otherwise, the fake is wrong.
 *
 * A refusal is checked as the user sees it: its registry code and class
 * (src/errors.ts, docs/errors.md) and its message, and that nothing changed.
 * The rules are by aggregate: networks.ts, sandboxes.ts, endpoints.ts.
 */
import { describe, expect, it } from 'vitest';
import { endpointContract } from './endpoints.js';
import { type ApiSetup, refusal, useApi } from './harness.js';
import { networkContract } from './networks.js';
import { sandboxContract } from './sandboxes.js';

export type { ApiSetup, ApiUnderTest } from './harness.js';

/** The contract for sandboxes made on namespaces given by key (no netns is made). */
export function apiContract(name: string, setup: ApiSetup): void {
  describe(`NetctlApi contract: ${name}`, () => {
    const s = useApi(setup);
    networkContract(s);
    sandboxContract(s);
    endpointContract(s);
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
