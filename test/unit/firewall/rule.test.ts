import { describe, expect, it } from 'vitest';
import { FirewallInputError } from '../../../src/firewall/errors.js';
import {
  jumpTarget,
  parseOwner,
  parseTag,
  type Rule,
  ruleArgs,
  ruleHash,
  ruleTag,
  validateRule,
} from '../../../src/firewall/rule.js';

const rule: Rule = {
  family: 4,
  table: 'filter',
  chain: 'NETCTL-BRIDGE',
  spec: ['-i', 'nc-1', '!', '-o', 'nc-1', '-j', 'ACCEPT'],
  owner: 'net:ab12',
};

describe('rule identity', () => {
  it('is a short stable hash of family, table, chain and spec', () => {
    expect(ruleHash(rule)).toMatch(/^[0-9a-f]{8}$/);
    expect(ruleHash({ ...rule })).toBe(ruleHash(rule));
    // Known value: changing the hash function would orphan every installed rule.
    expect(ruleHash(rule)).toBe('764f0ccd'); // sha256('4 filter NETCTL-BRIDGE -i nc-1 ! -o nc-1 -j ACCEPT');
    expect(ruleHash({ ...rule, family: 6 })).not.toBe(ruleHash(rule));
    expect(ruleHash({ ...rule, table: 'nat' })).not.toBe(ruleHash(rule));
    expect(ruleHash({ ...rule, chain: 'NETCTL-ACCEPT' })).not.toBe(ruleHash(rule));
    expect(ruleHash({ ...rule, spec: ['-i', 'nc-1', '-j', 'ACCEPT'] })).not.toBe(ruleHash(rule));
  });

  it('does not depend on the owner or the position flag; the tag carries the owner', () => {
    expect(ruleHash({ ...rule, owner: 'ep:cd34', first: true })).toBe(ruleHash(rule));
    expect(ruleTag(rule)).toBe(`netctl:net:ab12/${ruleHash(rule)}`);
  });

  it('round-trips tags and owners', () => {
    expect(parseTag(ruleTag(rule))).toEqual({ owner: 'net:ab12', hash: ruleHash(rule) });
    expect(parseTag('netctl:base/0123abcd')).toEqual({ owner: 'base', hash: '0123abcd' });
    for (const other of [
      'docker',
      'netctl:net:ab12',
      'netctl:net:AB/0123abcd',
      'netctl:x y/0123abcd',
      'cni:x/1',
    ]) {
      expect(parseTag(other)).toBeUndefined();
    }
    expect(parseOwner('ep:cd34')).toEqual({ kind: 'ep', id: 'cd34' });
    expect(parseOwner('base')).toEqual({ kind: 'base' });
  });
});

describe('ruleArgs', () => {
  it('places the identity comment just before the target', () => {
    expect(ruleArgs(rule).join(' ')).toBe(
      `-i nc-1 ! -o nc-1 -m comment --comment ${ruleTag(rule)} -j ACCEPT`,
    );
  });

  it('appends it to a rule without target', () => {
    expect(ruleArgs({ ...rule, spec: ['-o', 'nc-1'] }).slice(-2)).toEqual([
      '--comment',
      ruleTag({ ...rule, spec: ['-o', 'nc-1'] }),
    ]);
  });

  it('finds jump targets', () => {
    expect(jumpTarget(['-j', 'NETCTL-X'])).toBe('NETCTL-X');
    expect(jumpTarget(['-g', 'NETCTL-Y'])).toBe('NETCTL-Y');
    expect(jumpTarget(['-o', 'x'])).toBeUndefined();
  });
});

describe('validateRule', () => {
  const bad: [string, Partial<Rule> | Record<string, unknown>][] = [
    ['owner with spaces', { owner: 'net:ab 12' }],
    ['owner with upper-case id', { owner: 'net:AB12' }],
    ['owner that is empty', { owner: '' }],
    ['family 5', { family: 5 }],
    ['the mangle table', { table: 'mangle' }],
    ['chain with a space', { chain: 'NETCTL X' }],
    ['chain longer than 28', { chain: `NETCTL-${'X'.repeat(22)}` }],
    ['empty spec', { spec: [] }],
    ['spec token with a space', { spec: ['-o', 'nc 1', '-j', 'ACCEPT'] }],
    ['spec token with a quote', { spec: ['-o', 'nc"1', '-j', 'ACCEPT'] }],
    ['spec token with a newline', { spec: ['-o', 'nc1\n-F', '-j', 'ACCEPT'] }],
    ['spec token with a backslash', { spec: ['-o', 'nc\\1'] }],
    ['spec token that is empty', { spec: ['-o', '', '-j', 'ACCEPT'] }],
    ['spec with a command', { spec: ['-F', 'FORWARD'] }],
    ['spec with a table switch', { spec: ['-t', 'raw', '-j', 'ACCEPT'] }],
    [
      'spec forging a comment',
      { spec: ['-m', 'comment', '--comment', 'netctl:base/00000000', '-j', 'ACCEPT'] },
    ],
    ['spec that is a string', { spec: '-j ACCEPT' }],
  ];
  it.each(bad)('rejects %s', (_, change) => {
    expect(() => validateRule({ ...rule, ...change } as Rule)).toThrow(FirewallInputError);
  });

  it('accepts what the builders produce', () => {
    expect(() =>
      validateRule({
        ...rule,
        table: 'nat',
        spec: ['-p', 'udp', '--dport', '7000:7001', '-j', 'DNAT', '--to-destination', '[fd00::2]:53-54/7000'],
      }),
    ).not.toThrow();
  });
});
