/**
 * 1,000 endpoints on one network: the rule count does not grow per
 * endpoint, except by two rules per published port; the cost of one more
 * endpoint's port stays flat. Figures are logged as one JSON line.
 */
import { describe, expect, it } from 'vitest';
import { type NetworkFirewall, networkRules, portRules } from '../../../src/firewall/bridge.js';
import { baseRules, ensureBase } from '../../../src/firewall/chains.js';
import { type Flavour, iptablesBackend } from '../../../src/firewall/iptables/index.js';
import { run } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

const NET: NetworkFirewall = {
  id: 'b00',
  bridge: 'nc-b00',
  subnets: [{ cidr: '10.96.0.0/16', family: 4 }],
  internal: false,
  icc: true,
  masquerade: true,
};
const ENDPOINTS = 1000;

function ip(i: number): string {
  return `10.96.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;
}

function ruleCount(flavour: Flavour, netns: string): number {
  return run(`iptables-${flavour}-save`, [], { netns })
    .split('\n')
    .filter((line) => line.startsWith('-A ')).length;
}

describe.each(['nft', 'legacy'] as const)('1,000 endpoints on one network (%s)', (flavour) => {
  it('adds no rule per endpoint, two per published port, at a flat cost', { timeout: 120_000 }, async () => {
    const ns = testNetns('scale');
    const fw = iptablesBackend({ flavour, netns: ns.path, families: [4] });
    await ensureBase(fw, [4]);
    await fw.add(networkRules(NET));
    const fixed = ruleCount(flavour, ns.path);
    expect(fixed).toBe(baseRules(4).length - 1 + networkRules(NET).length); // no DOCKER-USER here

    // Endpoints without published ports: nothing to add at all.
    const none = Array.from({ length: ENDPOINTS }, (_, i) =>
      portRules({ id: (i + 1).toString(16), network: NET, ip: ip(i), family: 4 }, []),
    );
    expect(none.flat()).toEqual([]);

    // Every endpoint publishing one port, all at once (group commit).
    const ports = Array.from({ length: ENDPOINTS }, (_, i) =>
      portRules({ id: (i + 1).toString(16), network: NET, ip: ip(i), family: 4 }, [
        { proto: 'tcp', hostPort: 20000 + i, containerPort: 80 },
      ]),
    );
    let start = performance.now();
    await Promise.all(ports.map((rules) => fw.add(rules)));
    const addAllMs = performance.now() - start;
    expect(ruleCount(flavour, ns.path)).toBe(fixed + 2 * ENDPOINTS);

    // One more endpoint after the thousand, one at a time: the per-endpoint cost.
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const rules = portRules({ id: `f${i}`, network: NET, ip: ip(ENDPOINTS + i), family: 4 }, [
        { proto: 'tcp', hostPort: 30000 + i, containerPort: 80 },
      ]);
      start = performance.now();
      await fw.add(rules);
      samples.push(performance.now() - start);
      start = performance.now();
      await fw.del(rules);
      samples.push(performance.now() - start);
    }
    start = performance.now();
    await Promise.all(ports.map((rules) => fw.del(rules)));
    const delAllMs = performance.now() - start;
    expect(ruleCount(flavour, ns.path)).toBe(fixed);

    const round = (n: number) => Math.round(n * 10) / 10;
    const adds = samples.filter((_, i) => i % 2 === 0).sort((a, b) => a - b);
    const dels = samples.filter((_, i) => i % 2 === 1).sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        bench: 'firewall-scale',
        flavour,
        endpoints: ENDPOINTS,
        add_all_ports_ms: round(addAllMs),
        del_all_ports_ms: round(delAllMs),
        add_one_port_at_1000_median_ms: round(adds[2]!),
        del_one_port_at_1000_median_ms: round(dels[2]!),
      }),
    );
  });
});
