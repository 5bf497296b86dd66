/**
 * The iptables backend against the real iptables, both flavours Debian
 * ships (nft and legacy keep separate tables), each test in its own netns
 * through the backend's `netns` option, so nothing reaches the run's
 * namespace.
 */
import { describe, expect, it } from 'vitest';
import { type NetworkFirewall, networkRules, portRules } from '../../../src/firewall/bridge.js';
import { baseRules, ensureBase, removeBase } from '../../../src/firewall/chains.js';
import { type Flavour, iptablesBackend } from '../../../src/firewall/iptables/index.js';
import { type Family, ruleTag } from '../../../src/firewall/rule.js';
import { firewallBackendContract } from '../../contract/firewall.js';
import { run } from '../../helpers/tools.js';
import { testNetns } from '../harness.js';

const FLAVOURS: Flavour[] = ['nft', 'legacy'];

const NET: NetworkFirewall = {
  id: 'a1b2c3d4e5f6',
  bridge: 'nc-a1b2c3d4e5f6',
  subnets: [
    { cidr: '10.77.0.0/24', family: 4 },
    { cidr: 'fd00:77::/64', family: 6 },
  ],
  internal: false,
  icc: false,
  masquerade: true,
};
const OTHER: NetworkFirewall = {
  ...NET,
  id: 'ffee',
  bridge: 'nc-ffee',
  subnets: [{ cidr: '10.88.0.0/24', family: 4 }],
};
const EP = { id: '0123456789abcdef', network: NET, ip: '10.77.0.2', family: 4 as const };
const MAPPINGS = [
  { proto: 'tcp' as const, hostPort: 8080, containerPort: 80 },
  { proto: 'udp' as const, hostPort: 5000, hostPortEnd: 5010, containerPort: 6000, containerPortEnd: 6010 },
];

/** iptables-save of one flavour and family in netns, without the date comments. */
function save(flavour: Flavour, family: Family, netns: string): string {
  const tool = `${family === 4 ? 'iptables' : 'ip6tables'}-${flavour}-save`;
  return run(tool, [], { netns })
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n');
}

/** The netctl comments in a save, in order. */
function tags(text: string): string[] {
  return [...text.matchAll(/--comment "?(netctl:[^" ]+)"?/g)].map((m) => m[1] as string);
}

function ms(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

for (const flavour of FLAVOURS) {
  firewallBackendContract(`iptables (${flavour})`, () =>
    iptablesBackend({ flavour, netns: testNetns('fw').path }),
  );

  describe(`iptables backend (${flavour})`, () => {
    it('ensureBase is idempotent: a second call leaves iptables-save unchanged', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      await ensureBase(fw);
      const first = [save(flavour, 4, ns.path), save(flavour, 6, ns.path)];
      await ensureBase(fw);
      expect([save(flavour, 4, ns.path), save(flavour, 6, ns.path)]).toEqual(first);
      expect(first[0]).toMatch(/^-A FORWARD -m comment --comment "netctl:base\/\w+" -j NETCTL-FORWARD$/m);
      expect(first[1]).toMatch(
        /^-A OUTPUT ! -d ::1\/128 -m addrtype --dst-type LOCAL .* -j NETCTL-PREROUTING$/m,
      );
    });

    it('adds exactly the rules with their comments, once; deletes exactly them', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      await ensureBase(fw);
      const base = [tags(save(flavour, 4, ns.path)), tags(save(flavour, 6, ns.path))];
      await fw.add(networkRules(OTHER));
      const rules = [...networkRules(NET), ...portRules(EP, MAPPINGS)];
      await fw.add(rules);
      await fw.add(rules);
      const all = [...tags(save(flavour, 4, ns.path)), ...tags(save(flavour, 6, ns.path))];
      for (const rule of rules)
        expect(
          all.filter((t) => t === ruleTag(rule)),
          rule.spec.join(' '),
        ).toHaveLength(1);
      expect(all).toHaveLength(base[0]!.length + base[1]!.length + networkRules(OTHER).length + rules.length);
      // The range is one DNAT rule, as iptables shows it.
      expect(save(flavour, 4, ns.path)).toMatch(
        /-p udp -m udp --dport 5000:5010 .* -j DNAT --to-destination 10\.77\.0\.2:6000-6010\/5000/,
      );

      await fw.del(rules);
      expect(tags(save(flavour, 4, ns.path)).sort()).toEqual(
        [...base[0]!, ...networkRules(OTHER).map(ruleTag)].sort(),
      );
      expect(tags(save(flavour, 6, ns.path))).toEqual(base[1]);
    });

    it('list() gives owners; check() reports a rule deleted by hand', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      await ensureBase(fw);
      const rules = [...networkRules(NET), ...portRules(EP, MAPPINGS)];
      await fw.add(rules);
      const owners = new Set((await fw.list()).map((r) => r.owner));
      expect([...owners].sort()).toEqual(['base', 'ep:0123456789abcdef', 'net:a1b2c3d4e5f6']);
      const listedLine = (await fw.list()).find(
        (r) => r.chain === 'NETCTL-PREROUTING' && r.family === 4,
      )?.line;
      expect(listedLine).toMatch(
        /^-A NETCTL-PREROUTING -p tcp -m tcp --dport 8080 .*--to-destination 10\.77\.0\.2:80$/,
      );

      // By hand, the way an admin would: iptables -D with the saved rule.
      const victim = (await fw.list()).find(
        (r) => r.owner === 'net:a1b2c3d4e5f6' && r.chain === 'NETCTL-BRIDGE',
      );
      const words = victim!.line.replace(/^-A /, '').replaceAll('"', '').split(' ');
      run(`iptables-${flavour}`, ['-D', ...words], { netns: ns.path });
      const missing = await fw.check(rules);
      expect(missing.map(ruleTag)).toEqual([victim!.tag]);
      await fw.add(rules);
      expect(await fw.check(rules)).toEqual([]);
    });

    it('adds the DOCKER-USER jump when dockerd made the chain after netctl started', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      await ensureBase(fw);
      // What dockerd does at start: DROP policy, its chains first.
      run(`iptables-${flavour}`, ['-P', 'FORWARD', 'DROP'], { netns: ns.path });
      run(`iptables-${flavour}`, ['-N', 'DOCKER-USER'], { netns: ns.path });
      run(`iptables-${flavour}`, ['-A', 'DOCKER-USER', '-j', 'RETURN'], { netns: ns.path });
      run(`iptables-${flavour}`, ['-I', 'FORWARD', '1', '-j', 'DOCKER-USER'], { netns: ns.path });
      // check() sees what is missing now: the jump from DOCKER-USER.
      expect((await fw.check(baseRules(4))).map((r) => r.chain)).toEqual(['DOCKER-USER']);
      await ensureBase(fw);
      const text = save(flavour, 4, ns.path);
      expect(text).toMatch(
        /^-A DOCKER-USER -m comment --comment "netctl:base\/\w+" -j NETCTL-FORWARD\n-A DOCKER-USER -j RETURN$/m,
      );
      await removeBase(fw);
      expect(save(flavour, 4, ns.path)).not.toContain('netctl');
      expect(save(flavour, 4, ns.path)).toContain('-A DOCKER-USER -j RETURN');
    });

    it('removeBase leaves no netctl chain or rule behind, networks included', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      await ensureBase(fw);
      await fw.add([...networkRules(NET), ...portRules(EP, MAPPINGS)]);
      await removeBase(fw);
      for (const family of [4, 6] as const)
        expect(save(flavour, family, ns.path)).not.toMatch(/NETCTL|netctl/);
      await removeBase(fw);
    });

    it('keeps its tables apart from the other flavour', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      await ensureBase(fw, [4]);
      const other = flavour === 'nft' ? 'legacy' : 'nft';
      expect(save(flavour, 4, ns.path)).toContain('NETCTL-FORWARD');
      expect(save(other, 4, ns.path)).not.toContain('NETCTL-FORWARD');
      expect(await iptablesBackend({ flavour: other, netns: ns.path, families: [4] }).list()).toEqual([]);
    });

    it('timings (logged): base, a network, one published port, deletes', async () => {
      const ns = testNetns('fw');
      const fw = iptablesBackend({ flavour, netns: ns.path });
      const t: Record<string, number> = {};
      let start = performance.now();
      await ensureBase(fw);
      t.ensureBase_first_ms = ms(start);
      start = performance.now();
      await ensureBase(fw);
      t.ensureBase_again_ms = ms(start);
      const v4 = { ...NET, subnets: [NET.subnets[0]!] };
      start = performance.now();
      await fw.add(networkRules(v4));
      t.add_network_v4_ms = ms(start);
      start = performance.now();
      await fw.add(networkRules(v4));
      t.add_network_again_ms = ms(start);
      start = performance.now();
      await fw.add(portRules(EP, [MAPPINGS[0]!]));
      t.add_port_ms = ms(start);
      start = performance.now();
      await fw.del(portRules(EP, [MAPPINGS[0]!]));
      t.del_port_ms = ms(start);
      start = performance.now();
      await fw.del(networkRules(v4));
      t.del_network_v4_ms = ms(start);
      const eps = Array.from({ length: 50 }, (_, i) =>
        portRules({ ...EP, id: (i + 1).toString(16), ip: `10.77.0.${i + 2}` }, [
          { proto: 'tcp', hostPort: 10000 + i, containerPort: 80 },
        ]),
      );
      start = performance.now();
      await Promise.all(eps.map((rules) => fw.add(rules)));
      t.add_50_ports_concurrently_ms = ms(start);
      start = performance.now();
      await Promise.all(eps.map((rules) => fw.del(rules)));
      t.del_50_ports_concurrently_ms = ms(start);
      console.log(JSON.stringify({ bench: 'firewall', flavour, ...t }));
      // Only the base is left (no DOCKER-USER here, so its jump is not there).
      expect((await fw.list()).every((r) => r.owner === 'base')).toBe(true);
      expect(await fw.check([...baseRules(4), ...baseRules(6)])).toEqual([]);
    });
  });
}
