/**
 * The iptables backend's diff logic against captured iptables-save text
 * (test/unit/firewall/captured: Docker 20.10's chains, netctl's base, one
 * network with ICC off whose DNAT accept was deleted by hand, one published
 * port), with a fake exec that records what would be run.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type NetworkFirewall, networkRules, portRules } from '../../../src/firewall/bridge.js';
import { baseChains, baseRules, ensureBase } from '../../../src/firewall/chains.js';
import {
  FirewallChainMissingError,
  FirewallCommandError,
  FirewallInputError,
} from '../../../src/firewall/errors.js';
import { flavourOf, IptablesBackend } from '../../../src/firewall/iptables/backend.js';
import { parseSave, splitWords } from '../../../src/firewall/iptables/save.js';
import { type Rule, ruleTag } from '../../../src/firewall/rule.js';

const CAPTURED = readFileSync(new URL('captured/nft-docker-netctl.save', import.meta.url), 'utf8');

const NET: NetworkFirewall = {
  id: 'a1b2c3d4e5f6',
  bridge: 'nc-a1b2c3d4e5f6',
  subnets: [{ cidr: '10.77.0.0/24', family: 4 }],
  internal: false,
  icc: false,
  masquerade: true,
};
const EP = { id: '0123456789abcdef', network: NET, ip: '10.77.0.2', family: 4 as const };

interface Call {
  file: string;
  args: readonly string[];
  input: string | undefined;
}

/** A fake exec: fixed save output per tool, optional restore failures, every call recorded. */
interface FakeOptions {
  version?: string;
  /** Return an error text to make the n-th restore fail. */
  failRestore?: (input: string, n: number) => string | undefined;
}

function fakeExec(saves: Record<string, string>, options: FakeOptions = {}) {
  const calls: Call[] = [];
  let restores = 0;
  const exec = async (file: string, args: readonly string[], input?: string): Promise<string> => {
    calls.push({ file, args, input });
    if (file === 'iptables') return options.version ?? 'iptables v1.8.9 (nf_tables)\n';
    if (file.endsWith('-save')) return saves[file] ?? '';
    if (file.endsWith('-restore')) {
      const error = options.failRestore?.(input ?? '', restores++);
      if (error) throw new FirewallCommandError(file, args, 1, error);
      return '';
    }
    throw new FirewallCommandError(file, args, null, 'not found');
  };
  return { exec, calls, restores: () => calls.filter((c) => c.file.endsWith('-restore')) };
}

function backend(
  saves: Record<string, string> = { 'iptables-nft-save': CAPTURED },
  options: FakeOptions = {},
) {
  const fake = fakeExec(saves, options);
  return { fw: new IptablesBackend({ exec: fake.exec, families: [4, 6] }), ...fake };
}

describe('parsing iptables-save', () => {
  it('reads chains in order, tags and jump targets, keeping the saved text', () => {
    const snapshot = parseSave(CAPTURED);
    expect([...snapshot.filter.keys()]).toContain('DOCKER-USER');
    const forward = snapshot.filter.get('FORWARD') ?? [];
    expect(forward[0]).toEqual({
      rest: '-m comment --comment "netctl:base/10934cb6" -j NETCTL-FORWARD',
      tag: 'netctl:base/10934cb6',
      target: 'NETCTL-FORWARD',
    });
    expect(forward[1]).toEqual({ rest: '-j DOCKER-USER', tag: undefined, target: 'DOCKER-USER' });
    // A foreign comment is not a tag, even with escaped quotes in it.
    expect(snapshot.filter.get('INPUT')?.[0]?.tag).toBeUndefined();
    expect(snapshot.nat.get('NETCTL-PREROUTING')?.[0]?.tag).toBe('netctl:ep:0123456789abcdef/1f9597b7');
  });

  it('splits words the way iptables-restore does', () => {
    expect(splitWords('-m comment --comment "admin: \\"keep\\" this" -j ACCEPT')).toEqual([
      '-m',
      'comment',
      '--comment',
      'admin: "keep" this',
      '-j',
      'ACCEPT',
    ]);
  });

  it('has the built-in chains even for an empty save (iptables-nft prints nothing for unused tables)', () => {
    expect([...parseSave('').nat.keys()]).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
  });
});

describe('flavour', () => {
  it('follows `iptables --version` and names the tools after it', async () => {
    expect(flavourOf('iptables v1.8.9 (nf_tables)')).toBe('nft');
    expect(flavourOf('iptables v1.8.9 (legacy)')).toBe('legacy');
    expect(flavourOf('iptables v1.6.1')).toBe('legacy');
    const legacy = backend({}, { version: 'iptables v1.8.9 (legacy)\n' });
    expect(await legacy.fw.flavour()).toBe('legacy');
    await legacy.fw.add(baseRules(6));
    expect(legacy.calls.map((c) => c.file)).toEqual([
      'iptables',
      'ip6tables-legacy-save',
      'ip6tables-legacy-restore',
    ]);
  });

  it('uses the configured flavour over the detected one', async () => {
    const fake = fakeExec({});
    const fw = new IptablesBackend({ exec: fake.exec, flavour: 'legacy' });
    await fw.list();
    expect(fake.calls.map((c) => c.file).sort()).toEqual([
      'ip6tables-legacy-save',
      'iptables',
      'iptables-legacy-save',
    ]);
  });
});

describe('add', () => {
  it('writes only the missing rule, before its present successor, in one restore', async () => {
    const { fw, calls, restores } = backend();
    await fw.add(networkRules(NET));
    expect(calls.map((c) => c.file)).toEqual(['iptables', 'iptables-nft-save', 'iptables-nft-restore']);
    // NETCTL-BRIDGE holds: way out (1), ICC drop (2), default drop (3); the
    // DNAT accept goes back between 1 and 2, not to the end.
    expect(restores()[0]?.args).toEqual(['--noflush', '--wait']);
    expect(restores()[0]?.input).toBe(
      '*filter\n' +
        '-I NETCTL-BRIDGE 2 -i nc-a1b2c3d4e5f6 -o nc-a1b2c3d4e5f6 -m conntrack --ctstate DNAT ' +
        '-m comment --comment netctl:net:a1b2c3d4e5f6/b1ae3411 -j ACCEPT\n' +
        'COMMIT\n',
    );
  });

  it('writes nothing when everything is there', async () => {
    const { fw, restores } = backend();
    await fw.add([...baseRules(4), ...portRules(EP, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }])]);
    expect(restores()).toEqual([]);
  });

  it('creates only the netctl chains that are missing, with -N (never a flushing declaration)', async () => {
    const { fw, restores } = backend();
    await fw.add([...baseRules(4), ...baseRules(6)]);
    expect(restores()).toHaveLength(1);
    expect(restores()[0]?.file).toBe('ip6tables-nft-restore');
    const input = restores()[0]?.input ?? '';
    expect(input).toMatch(/^\*filter\n-N NETCTL-FORWARD\n-I FORWARD 1 /);
    expect(input).not.toMatch(/^:/m);
  });

  it('puts new jumps at the head of built-in chains, ahead of dockerd', async () => {
    const { fw, restores } = backend({
      'iptables-nft-save': CAPTURED.replace(/^-A FORWARD -m comment.*\n/m, ''),
    });
    await fw.add(baseRules(4));
    expect(restores()[0]?.input).toBe(
      '*filter\n-I FORWARD 1 -m comment --comment netctl:base/10934cb6 -j NETCTL-FORWARD\nCOMMIT\n',
    );
  });

  it('appends new rules of a new owner to shared chains', async () => {
    const { fw, restores } = backend();
    const rules = portRules({ ...EP, id: 'ee' }, [{ proto: 'udp', hostPort: 53, containerPort: 53 }]);
    await fw.add(rules);
    const [dnat, accept] = rules.map(ruleTag);
    expect(restores()[0]?.input).toBe(
      '*filter\n' +
        '-A NETCTL-PUBLISH -d 10.77.0.2/32 ! -i nc-a1b2c3d4e5f6 -o nc-a1b2c3d4e5f6 -p udp -m udp --dport 53 ' +
        `-m comment --comment ${accept} -j ACCEPT\n` +
        'COMMIT\n' +
        '*nat\n' +
        `-A NETCTL-PREROUTING -p udp -m udp --dport 53 -m comment --comment ${dnat} ` +
        '-j DNAT --to-destination 10.77.0.2:53\n' +
        'COMMIT\n',
    );
  });

  it('refuses a rule in a foreign chain that does not exist, writing nothing', async () => {
    const { fw, restores } = backend({});
    const jump: Rule = {
      family: 4,
      table: 'filter',
      chain: 'DOCKER-USER',
      spec: ['-j', 'NETCTL-FORWARD'],
      owner: 'base',
    };
    await expect(fw.add([...baseRules(4), jump])).rejects.toThrow(FirewallChainMissingError);
    expect(restores()).toEqual([]);
  });

  it('skips an ifChainExists rule while its chain is absent, and check does not call it missing', async () => {
    const { fw, restores } = backend({});
    await fw.add(baseRules(4));
    expect(restores()[0]?.input).not.toContain('DOCKER-USER');
    const dockerUserJump = baseRules(4).filter((r) => r.chain === 'DOCKER-USER');
    expect(dockerUserJump).toHaveLength(1);
    expect(await fw.check(dockerUserJump)).toEqual([]);
  });

  it('validates before queueing: a bad rule is rejected and nothing runs', async () => {
    const { fw, calls } = backend();
    const bad: Rule = { family: 4, table: 'filter', chain: 'NETCTL-X', spec: ['-o', 'a b'], owner: 'net:1' };
    expect(() => fw.add([bad])).toThrow(FirewallInputError);
    expect(calls).toEqual([]);
  });
});

describe('del', () => {
  it('deletes present rules by the exact text iptables-save showed, ignores absent ones', async () => {
    const { fw, restores } = backend();
    await fw.del(portRules(EP, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]));
    expect(restores()[0]?.input).toBe(
      '*filter\n' +
        '-D NETCTL-PUBLISH -d 10.77.0.2/32 ! -i nc-a1b2c3d4e5f6 -o nc-a1b2c3d4e5f6 -p tcp -m tcp --dport 80 ' +
        '-m comment --comment "netctl:ep:0123456789abcdef/e5f31742" -j ACCEPT\n' +
        'COMMIT\n' +
        '*nat\n' +
        '-D NETCTL-PREROUTING -p tcp -m tcp --dport 8080 -m comment --comment ' +
        '"netctl:ep:0123456789abcdef/1f9597b7" -j DNAT --to-destination 10.77.0.2:80\n' +
        'COMMIT\n',
    );
  });

  it("removes a whole network's rules, leaves other owners and Docker alone", async () => {
    const { fw, restores } = backend();
    await fw.del(networkRules(NET));
    const input = restores()[0]?.input ?? '';
    expect(input.match(/^-D /gm)).toHaveLength(10); // 11 rules, one was already gone
    expect(input).not.toMatch(/ep:|base|docker0/);
  });

  it('writes nothing when nothing is there', async () => {
    const { fw, restores } = backend({});
    await fw.del([...networkRules(NET), ...baseRules(6)]);
    expect(restores()).toEqual([]);
  });

  it('deletes listed rules (gc of owners whose state is lost)', async () => {
    const { fw, restores } = backend();
    const listed = (await fw.list()).filter((r) => r.owner === 'ep:0123456789abcdef');
    expect(listed).toHaveLength(2);
    await fw.del(listed);
    expect(restores()[0]?.input?.match(/^-D /gm)).toHaveLength(2);
  });
});

describe('check, list, chains', () => {
  it('check reports exactly the rule deleted by hand', async () => {
    const { fw, calls } = backend();
    const missing = await fw.check([...baseRules(4), ...networkRules(NET)]);
    expect(missing.map((r) => r.spec.join(' '))).toEqual([
      '-i nc-a1b2c3d4e5f6 -o nc-a1b2c3d4e5f6 -m conntrack --ctstate DNAT -j ACCEPT',
    ]);
    expect(calls.filter((c) => c.file.endsWith('-save')).map((c) => c.file)).toEqual(['iptables-nft-save']);
  });

  it('list gives every netctl rule with owner, hash and saved line, nothing foreign', async () => {
    const { fw } = backend();
    const listed = await fw.list();
    const owners = new Map<string, number>();
    for (const r of listed) owners.set(r.owner, (owners.get(r.owner) ?? 0) + 1);
    expect(Object.fromEntries(owners)).toEqual({ base: 9, 'net:a1b2c3d4e5f6': 10, 'ep:0123456789abcdef': 2 });
    expect(listed.find((r) => r.chain === 'DOCKER-USER')).toMatchObject({
      family: 4,
      table: 'filter',
      hash: 'cd627c1a',
      tag: 'netctl:base/cd627c1a',
      line: '-A DOCKER-USER -m comment --comment "netctl:base/cd627c1a" -j NETCTL-FORWARD',
    });
  });

  it('chains shows built-in, Docker and netctl chains of both families', async () => {
    const { fw } = backend();
    const chains = await fw.chains();
    expect(chains).toContainEqual({ family: 4, table: 'filter', chain: 'DOCKER-USER' });
    expect(chains).toContainEqual({ family: 4, table: 'nat', chain: 'NETCTL-PREROUTING' });
    expect(chains).toContainEqual({ family: 6, table: 'filter', chain: 'FORWARD' });
    expect(chains).not.toContainEqual({ family: 6, table: 'filter', chain: 'DOCKER-USER' });
  });

  it('ensureBase finds dockerd’s DOCKER-USER and adds only the missing jump', async () => {
    const saved = CAPTURED.replace(/^-A DOCKER-USER -m comment.*\n/m, '');
    const { fw, restores } = backend({ 'iptables-nft-save': saved });
    await ensureBase(fw, [4]);
    expect(restores()[0]?.input).toBe(
      '*filter\n-I DOCKER-USER 1 -m comment --comment netctl:base/cd627c1a -j NETCTL-FORWARD\nCOMMIT\n',
    );
  });
});

describe('removeChains', () => {
  it('removes jumps from other chains, then flushes and deletes', async () => {
    const { fw, restores } = backend();
    await fw.removeChains(baseChains([4]));
    const input = restores()[0]?.input ?? '';
    expect(
      input.split('\n').filter((l) => /^-[DFX] /.test(l) && !l.startsWith('-F') && !l.startsWith('-X')),
    ).toEqual([
      '-D FORWARD -m comment --comment "netctl:base/10934cb6" -j NETCTL-FORWARD',
      '-D DOCKER-USER -m comment --comment "netctl:base/cd627c1a" -j NETCTL-FORWARD',
      '-D PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "netctl:base/5e62cc9d" -j NETCTL-PREROUTING',
      '-D OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "netctl:base/f194de08" -j NETCTL-PREROUTING',
      '-D POSTROUTING -m comment --comment "netctl:base/89c2bd1a" -j NETCTL-POSTROUTING',
    ]);
    expect(input).toContain(
      '-F NETCTL-FORWARD\n-F NETCTL-CT\n-F NETCTL-ISOLATION-1\n-F NETCTL-ISOLATION-2\n-F NETCTL-PUBLISH\n' +
        '-F NETCTL-BRIDGE\n-X NETCTL-FORWARD\n-X NETCTL-CT\n-X NETCTL-ISOLATION-1\n-X NETCTL-ISOLATION-2\n' +
        '-X NETCTL-PUBLISH\n-X NETCTL-BRIDGE\nCOMMIT\n',
    );
  });

  it('refuses chains that are not netctl’s', () => {
    const { fw } = backend();
    expect(() => fw.removeChains([{ family: 4, table: 'filter', chain: 'DOCKER-USER' }])).toThrow(
      FirewallInputError,
    );
  });
});

describe('batching and failures', () => {
  it('merges writes queued meanwhile into one read and one write per family', async () => {
    const { fw, calls } = backend({});
    const eps = Array.from({ length: 20 }, (_, i) =>
      portRules({ ...EP, id: (i + 1).toString(16), ip: `10.77.0.${i + 2}` }, [
        { proto: 'tcp', hostPort: 8000 + i, containerPort: 80 },
      ]),
    );
    await Promise.all([fw.add(baseRules(4)), ...eps.map((rules) => fw.add(rules))]);
    const files = calls.map((c) => c.file);
    // The first add runs alone (nothing was queued yet); the 20 others share one batch.
    expect(files).toEqual([
      'iptables',
      'iptables-nft-save',
      'iptables-nft-restore',
      'iptables-nft-save',
      'iptables-nft-restore',
    ]);
    expect(calls[4]?.input?.match(/^-A NETCTL-PREROUTING /gm)).toHaveLength(20);
  });

  it('re-plans once from a fresh read when a write fails (another process raced us)', async () => {
    const { fw, calls } = backend(
      {},
      { failRestore: (_, n) => (n === 0 ? 'iptables-restore: line 2 failed' : undefined) },
    );
    await fw.add(baseRules(4));
    expect(calls.map((c) => c.file)).toEqual([
      'iptables',
      'iptables-nft-save',
      'iptables-nft-restore',
      'iptables-nft-save',
      'iptables-nft-restore',
    ]);
  });

  it('reports the input line iptables refused', async () => {
    const { fw } = backend({}, { failRestore: () => 'iptables-restore v1.8.9 (nf_tables): line 3 failed' });
    const error = await fw.add(baseRules(4)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FirewallCommandError);
    expect((error as FirewallCommandError).line).toBe(
      '-I FORWARD 1 -m comment --comment netctl:base/10934cb6 -j NETCTL-FORWARD',
    );
  });

  it('when a merged batch fails, retries each write alone so only the guilty one fails', async () => {
    const { fw } = backend(
      {},
      {
        failRestore: (input) =>
          input.includes('--dport 666 ') ? 'iptables-restore: line 2 failed' : undefined,
      },
    );
    const ok = portRules(EP, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    const guilty = portRules({ ...EP, id: 'bad' }, [{ proto: 'tcp', hostPort: 666, containerPort: 666 }]);
    const first = fw.add(baseRules(4));
    const results = await Promise.allSettled([first, fw.add(ok), fw.add(guilty), fw.add(networkRules(NET))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  });
});
