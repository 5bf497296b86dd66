/**
 * The FirewallBackend contract, as one suite every backend runs: the fake
 * (test/unit) and the iptables backend in both flavours (test/privileged).
 * `make` returns a backend over empty tables; `cleanup` (optional) runs
 * after each test.
 */
import { describe, expect, it } from 'vitest';
import type { FirewallBackend } from '../../src/firewall/backend.js';
import { removeOwners, syncOwner } from '../../src/firewall/backend.js';
import { FirewallChainMissingError, FirewallInputError } from '../../src/firewall/errors.js';
import { type Family, type Rule, ruleHash } from '../../src/firewall/rule.js';

const rule = (
  owner: string,
  chain: string,
  spec: string[],
  family: Family = 4,
  extra: Partial<Rule> = {},
): Rule => ({
  family,
  table: 'filter',
  chain,
  spec,
  owner,
  ...extra,
});

const A = 'net:aa';
const B = 'net:bb';
const a1 = rule(A, 'NETCTL-T', ['-i', 'x1', '-j', 'ACCEPT']);
const a2 = rule(A, 'NETCTL-T', ['-i', 'x2', '-j', 'DROP']);
const a3 = rule(A, 'NETCTL-T', ['-i', 'x3', '-j', 'RETURN']);
const b1 = rule(B, 'NETCTL-T', ['-i', 'y1', '-j', 'ACCEPT']);
const b6 = rule(B, 'NETCTL-T', ['-i', 'y1', '-j', 'ACCEPT'], 6);
const natA = { ...rule(A, 'NETCTL-N', ['-o', 'x1', '-j', 'MASQUERADE']), table: 'nat' as const };

export function firewallBackendContract(
  name: string,
  make: () => Promise<FirewallBackend> | FirewallBackend,
): void {
  const specs = async (fw: FirewallBackend, chain = 'NETCTL-T', family: Family = 4) =>
    (await fw.list())
      .filter((r) => r.chain === chain && r.family === family)
      .map((r) => `${r.owner} ${r.hash}`);
  const id = (r: Rule) => `${r.owner} ${ruleHash(r)}`;

  describe(`FirewallBackend contract: ${name}`, () => {
    it('adds rules once, in order, and lists them with their owners', async () => {
      const fw = await make();
      await fw.add([a1, a2, a3, b1, b6, natA]);
      await fw.add([a1, a2, a3, b1, b6, natA]);
      expect(await specs(fw)).toEqual([a1, a2, a3, b1].map(id));
      expect(await specs(fw, 'NETCTL-T', 6)).toEqual([id(b6)]);
      expect((await fw.list()).filter((r) => r.table === 'nat').map((r) => r.owner)).toEqual([A]);
      expect(await fw.check([a1, a2, a3, b1, b6, natA])).toEqual([]);
    });

    it('creates netctl chains it needs and reports them', async () => {
      const fw = await make();
      await fw.add([a1, natA, rule(A, 'NETCTL-T', ['-j', 'NETCTL-U'])]);
      const chains = await fw.chains();
      for (const chain of ['NETCTL-T', 'NETCTL-U'])
        expect(chains).toContainEqual({ family: 4, table: 'filter', chain });
      expect(chains).toContainEqual({ family: 4, table: 'nat', chain: 'NETCTL-N' });
      expect(chains).toContainEqual({ family: 4, table: 'filter', chain: 'FORWARD' });
    });

    it('deletes exactly the rules asked, leaving other owners alone; absent rules are fine', async () => {
      const fw = await make();
      await fw.add([a1, a2, b1, b6]);
      await fw.del([a1, a2, a3]);
      await fw.del([a1, a2, a3]);
      expect(await specs(fw)).toEqual([id(b1)]);
      expect(await specs(fw, 'NETCTL-T', 6)).toEqual([id(b6)]);
    });

    it('check reports the missing ones; a re-add puts a middle rule back in its place', async () => {
      const fw = await make();
      await fw.add([a1, a2, a3, b1]);
      await fw.del([a2]);
      expect(await fw.check([a1, a2, a3])).toEqual([a2]);
      await fw.add([a1, a2, a3]);
      expect(await specs(fw)).toEqual([a1, a2, a3, b1].map(id));
    });

    it('puts `first` rules at the head of their chain', async () => {
      const fw = await make();
      await fw.add([a1, b1]);
      const head = rule('base', 'NETCTL-T', ['-j', 'RETURN'], 4, { first: true });
      await fw.add([head]);
      expect((await specs(fw))[0]).toBe(id(head));
    });

    it('deletes listed rules, and whole owners through removeOwners', async () => {
      const fw = await make();
      await fw.add([a1, a2, b1, b6, natA]);
      const removed = await removeOwners(fw, [A]);
      expect(removed).toHaveLength(3);
      expect((await fw.list()).map((r) => r.owner)).toEqual([B, B]);
      await fw.del(await fw.list());
      expect(await fw.list()).toEqual([]);
    });

    it('syncOwner adds the missing rules and drops stale ones of that owner only', async () => {
      const fw = await make();
      await fw.add([a1, a2, b1]);
      const stale = await syncOwner(fw, A, [a2, a3]);
      expect(stale.map((r) => r.hash)).toEqual([ruleHash(a1)]);
      expect(await specs(fw)).toEqual([a2, b1, a3].map(id));
    });

    it('removes whole netctl chains with the jumps into them', async () => {
      const fw = await make();
      await fw.add([
        rule('base', 'FORWARD', ['-j', 'NETCTL-T'], 4, { first: true }),
        a1,
        rule(A, 'NETCTL-T', ['-j', 'NETCTL-U']),
        rule(A, 'NETCTL-U', ['-j', 'DROP']),
      ]);
      await fw.removeChains([
        { family: 4, table: 'filter', chain: 'NETCTL-T' },
        { family: 4, table: 'filter', chain: 'NETCTL-U' },
        { family: 6, table: 'filter', chain: 'NETCTL-T' },
      ]);
      await fw.removeChains([{ family: 4, table: 'filter', chain: 'NETCTL-T' }]);
      expect(await fw.list()).toEqual([]);
      expect((await fw.chains()).filter((c) => c.chain.startsWith('NETCTL-'))).toEqual([]);
    });

    it('refuses malformed rules and rules in missing foreign chains, changing nothing', async () => {
      const fw = await make();
      const bad = rule('net:has space', 'NETCTL-T', ['-j', 'ACCEPT']);
      await expect(Promise.resolve().then(() => fw.add([a1, bad]))).rejects.toThrow(FirewallInputError);
      await expect(fw.add([a1, rule(A, 'NOT-THERE', ['-j', 'ACCEPT'])])).rejects.toThrow(
        FirewallChainMissingError,
      );
      expect(await fw.list()).toEqual([]);
    });

    it('takes concurrent writes', async () => {
      const fw = await make();
      const many = Array.from({ length: 30 }, (_, i) =>
        rule(`ep:${(i + 1).toString(16)}`, 'NETCTL-T', ['-i', `v${i}`, '-j', 'ACCEPT']),
      );
      await Promise.all(many.map((r) => fw.add([r])));
      expect((await fw.list()).length).toBe(30);
      await Promise.all(many.map((r) => fw.del([r])));
      expect(await fw.list()).toEqual([]);
    });
  });
}
