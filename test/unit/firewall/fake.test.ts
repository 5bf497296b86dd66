import { describe, expect, it } from 'vitest';
import type { FirewallBackend } from '../../../src/firewall/backend.js';
import { networkRules } from '../../../src/firewall/bridge.js';
import { baseChains, ensureBase, removeBase } from '../../../src/firewall/chains.js';
import { ruleTag } from '../../../src/firewall/rule.js';
import { fakeFirewall } from '../../../src/firewall/testing/fake.js';
import { firewallBackendContract } from '../../contract/firewall.js';

firewallBackendContract('fake', () => fakeFirewall());

const NET = {
  id: 'ab12',
  bridge: 'nc-ab12',
  subnets: [{ cidr: '10.1.0.0/24', family: 4 as const }],
  internal: false,
  icc: true,
  masquerade: true,
};

describe('fake firewall', () => {
  it('is a FirewallBackend', () => {
    const backend: FirewallBackend = fakeFirewall();
    expect(typeof backend.add).toBe('function');
  });

  it('fails the next call of an operation on demand, changing nothing', async () => {
    const fw = fakeFirewall();
    fw.failNext('add', new Error('iptables-restore: line 1 failed'));
    await expect(fw.add(networkRules(NET))).rejects.toThrow('line 1 failed');
    expect(await fw.list()).toEqual([]);
    await fw.add(networkRules(NET));
    expect((await fw.list()).length).toBe(networkRules(NET).length);
  });

  it('reports a rule deleted by hand through check', async () => {
    const fw = fakeFirewall();
    const rules = networkRules(NET);
    await fw.add(rules);
    const victim = rules[2]!;
    fw.deleteByHand(4, victim.table, victim.chain, ruleTag(victim));
    expect(await fw.check(rules)).toEqual([victim]);
  });
});

describe('ensureBase and removeBase', () => {
  it('is idempotent: a second call writes nothing', async () => {
    const fw = fakeFirewall();
    await ensureBase(fw);
    const dump = fw.dump(4) + fw.dump(6);
    await ensureBase(fw);
    expect(fw.dump(4) + fw.dump(6)).toBe(dump);
  });

  it('adds the DOCKER-USER jump once dockerd has made that chain, and only then', async () => {
    const fw = fakeFirewall();
    await ensureBase(fw);
    expect(fw.dump(4)).not.toContain('DOCKER-USER');
    fw.createChain(4, 'filter', 'DOCKER-USER');
    await ensureBase(fw);
    expect(fw.dump(4)).toMatch(/^-A DOCKER-USER -m comment --comment netctl:base\/\w+ -j NETCTL-FORWARD$/m);
    expect(fw.dump(6)).not.toContain('DOCKER-USER');
  });

  it('removeBase takes every chain, jump and rule away, whatever networks are left', async () => {
    const fw = fakeFirewall();
    await ensureBase(fw);
    fw.createChain(4, 'filter', 'DOCKER-USER');
    await ensureBase(fw);
    await fw.add(networkRules(NET));
    await removeBase(fw);
    expect(await fw.list()).toEqual([]);
    const chains = await fw.chains();
    expect(chains.filter((c) => c.chain.startsWith('NETCTL-'))).toEqual([]);
    expect(chains).toContainEqual({ family: 4, table: 'filter', chain: 'DOCKER-USER' });
    expect(baseChains([4])).toHaveLength(8);
  });
});
