/**
 * Rules as data. A Rule is one iptables rule in argv form plus the owner it
 * belongs to; backends turn it into an iptables-restore line with a comment
 * match `netctl:<owner>/<hash>`, where hash is a short stable hash of
 * (family, table, chain, spec).
 *
 * That comment is the rule's identity: iptables-save prints a rule in its
 * own canonical form (`-p tcp` becomes `-p tcp -m tcp`, `-d 10.0.0.2`
 * becomes `-d 10.0.0.2/32`, option order changes), so comparing spec text
 * with saved text is fragile; comparing comments is exact. The owner in the
 * comment tells `netctl gc` which network or endpoint a rule belongs to
 * even when netctl's state for it is gone.
 */
import { createHash } from 'node:crypto';
import type { Family } from '../address.js';
import { FirewallInputError } from './errors.js';

export type { Family } from '../address.js';
export type Table = 'filter' | 'nat';
export const TABLES: readonly Table[] = ['filter', 'nat'];

export interface Rule {
  family: Family;
  table: Table;
  /** The chain the rule lives in. */
  chain: string;
  /** argv-style, without the chain command: ['-o', 'br0', '-j', 'ACCEPT']. Never a shell string. */
  spec: readonly string[];
  /** 'base', 'net:<hex id>' or 'ep:<hex id>' (any `kind` or `kind:<hex id>`). */
  owner: string;
  /**
   * Insert at the head of the chain instead of appending: for jumps from
   * built-in chains, which must come before other software's rules. Not
   * part of the rule's identity.
   */
  first?: boolean;
  /**
   * Only where the chain exists: skipped by add() and not reported by
   * check() while the chain is absent (the jump from dockerd's DOCKER-USER,
   * which netctl never creates). Not part of the rule's identity.
   */
  ifChainExists?: boolean;
}

/** A netctl rule found in the kernel's tables. */
export interface OwnedRule {
  family: Family;
  table: Table;
  chain: string;
  owner: string;
  hash: string;
  /** The whole comment, `netctl:<owner>/<hash>`. */
  tag: string;
  /** The rule as iptables-save printed it: `-A CHAIN ...`. */
  line: string;
}

/** A chain in one family's table. */
export interface ChainRef {
  family: Family;
  table: Table;
  chain: string;
}

export const TAG_PREFIX = 'netctl:';
const JUMPS = new Set(['-j', '--jump', '-g', '--goto']);
const HASH_LENGTH = 8;

const OWNER = /^[a-z][a-z0-9-]{0,15}(:[0-9a-f]{1,64})?$/;
const CHAIN = /^[A-Za-z0-9_-]{1,28}$/;
// What a token of a spec may contain: addresses ("[fd00::2]:80"), ranges
// ("80-90/8080", "8080:8090"), flag lists ("RELATED,ESTABLISHED"), "!".
// No whitespace, quotes, '#', '\' or control characters: each token must
// reach iptables-restore as exactly one word.
const TOKEN = /^[A-Za-z0-9_.:/,!+=@[\]-]{1,256}$/;
// Tokens that would turn a rule line into another command, or forge the
// comment that carries the rule's identity.
const FORBIDDEN = new Set([
  '-A',
  '--append',
  '-C',
  '--check',
  '-D',
  '--delete',
  '-I',
  '--insert',
  '-R',
  '--replace',
  '-L',
  '--list',
  '-S',
  '--list-rules',
  '-F',
  '--flush',
  '-Z',
  '--zero',
  '-N',
  '--new-chain',
  '-X',
  '--delete-chain',
  '-P',
  '--policy',
  '-E',
  '--rename-chain',
  '-t',
  '--table',
  '--comment',
]);

/** Throw FirewallInputError unless owner is `kind` or `kind:<hex id>`. */
export function checkOwner(owner: unknown): string {
  if (typeof owner !== 'string' || !OWNER.test(owner)) {
    throw new FirewallInputError(
      'owner',
      owner,
      'not an owner such as "net:<hex id>", "ep:<hex id>", "base"',
    );
  }
  return owner;
}

/** Throw FirewallInputError unless name is a valid iptables chain name. */
export function checkChain(field: string, name: unknown): string {
  if (typeof name !== 'string' || !CHAIN.test(name)) {
    throw new FirewallInputError(field, name, 'not a chain name (1-28 of A-Z a-z 0-9 _ -)');
  }
  return name;
}

/** Throw FirewallInputError unless every part of rule is well-formed. */
export function validateRule(rule: Rule): void {
  if (rule.family !== 4 && rule.family !== 6)
    throw new FirewallInputError('family', rule.family, 'not 4 or 6');
  if (rule.table !== 'filter' && rule.table !== 'nat') {
    throw new FirewallInputError('table', rule.table, 'netctl writes only the filter and nat tables');
  }
  checkChain('chain', rule.chain);
  checkOwner(rule.owner);
  if (!Array.isArray(rule.spec) || rule.spec.length === 0) {
    throw new FirewallInputError('spec', rule.spec, 'empty');
  }
  for (const token of rule.spec) {
    if (typeof token !== 'string' || !TOKEN.test(token)) {
      throw new FirewallInputError('spec', token, 'not a single iptables word');
    }
    if (FORBIDDEN.has(token)) throw new FirewallInputError('spec', token, 'not allowed inside a rule');
  }
}

/** Short stable hash of (family, table, chain, spec): 8 hex digits. */
export function ruleHash(rule: Rule): string {
  // Tokens hold no spaces (validateRule), so joining with spaces is unambiguous.
  const text = `${rule.family} ${rule.table} ${rule.chain} ${rule.spec.join(' ')}`;
  return createHash('sha256').update(text).digest('hex').slice(0, HASH_LENGTH);
}

/** The comment that identifies rule: `netctl:<owner>/<hash>`. */
export function ruleTag(rule: Rule): string {
  return `${TAG_PREFIX}${rule.owner}/${ruleHash(rule)}`;
}

/** Owner and hash from a comment, or undefined when it is not a netctl tag. */
export function parseTag(comment: string): { owner: string; hash: string } | undefined {
  if (!comment.startsWith(TAG_PREFIX)) return undefined;
  const slash = comment.lastIndexOf('/');
  const owner = comment.slice(TAG_PREFIX.length, slash);
  const hash = comment.slice(slash + 1);
  if (slash < 0 || !OWNER.test(owner) || !/^[0-9a-f]{8}$/.test(hash)) return undefined;
  return { owner, hash };
}

/** 'net:ab12' -> {kind: 'net', id: 'ab12'}; 'base' -> {kind: 'base'}. */
export function parseOwner(owner: string): { kind: string; id?: string } {
  const [kind = '', id] = checkOwner(owner).split(':');
  return id === undefined ? { kind } : { kind, id };
}

/**
 * The rule's arguments after `-A CHAIN`, with the identity comment placed
 * just before the target (`-j`/`-g`), where iptables users expect it.
 */
export function ruleArgs(rule: Rule): string[] {
  const spec = [...rule.spec];
  let target = spec.findIndex((token) => JUMPS.has(token));
  if (target < 0) target = spec.length;
  return [...spec.slice(0, target), '-m', 'comment', '--comment', ruleTag(rule), ...spec.slice(target)];
}

/** The chain a rule jumps or goes to, if it names one (`-j X` / `-g X`). */
export function jumpTarget(spec: readonly string[]): string | undefined {
  const index = spec.findIndex((token) => JUMPS.has(token));
  return index >= 0 ? spec[index + 1] : undefined;
}
