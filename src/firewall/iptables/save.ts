/**
 * iptables-save output, parsed into a model the planner can query and
 * change: for each table (filter, nat), its chains in order and each
 * chain's rules in order, with the netctl tag of those that carry one.
 */
import { type ChainRef, type Family, type OwnedRule, parseTag, TABLES, type Table } from '../rule.js';

export interface SavedRule {
  /** Everything after `-A CHAIN `, as iptables-save printed it (quoting intact). */
  rest: string;
  /** The netctl comment, if the rule carries one. */
  tag: string | undefined;
  /** The chain it jumps or goes to (`-j X` / `-g X`), if any. */
  target: string | undefined;
}

/** One family's filter and nat tables: chain name -> rules, in order. */
export type Snapshot = Record<Table, Map<string, SavedRule[]>>;

export const BUILTIN_CHAINS: Record<Table, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
};

export function isBuiltinChain(table: Table, chain: string): boolean {
  return BUILTIN_CHAINS[table].includes(chain);
}

/**
 * Split a saved rule into words the way iptables-restore does: spaces
 * separate, double quotes group, a backslash escapes the next character
 * inside quotes (iptables-save quotes every comment, escaping `"` and `\`).
 */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '\\' && i + 1 < text.length) word += text[++i];
      else if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function savedRule(rest: string): SavedRule {
  const words = splitWords(rest);
  let tag: string | undefined;
  let target: string | undefined;
  for (let i = 0; i < words.length - 1; i++) {
    const word = words[i];
    if (word === '--comment' && parseTag(words[i + 1] as string)) tag = words[i + 1];
    if (word === '-j' || word === '-g') target = words[i + 1];
  }
  return { rest, tag, target };
}

export function emptySnapshot(): Snapshot {
  const snapshot = { filter: new Map(), nat: new Map() } as Snapshot;
  for (const table of TABLES) for (const chain of BUILTIN_CHAINS[table]) snapshot[table].set(chain, []);
  return snapshot;
}

/**
 * Parse the output of iptables-save (one family, all tables). Tables other
 * than filter and nat are skipped. Built-in chains are always present in
 * the result: iptables-nft-save prints nothing for a table that was never
 * used, yet rules can be added to its built-in chains.
 */
export function parseSave(text: string): Snapshot {
  const snapshot = emptySnapshot();
  let table: Map<string, SavedRule[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      const name = line.slice(1);
      table = (TABLES as readonly string[]).includes(name) ? snapshot[name as Table] : undefined;
      continue;
    }
    if (!table) continue;
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0] as string;
      if (!table.has(chain)) table.set(chain, []);
    } else if (line.startsWith('-A ')) {
      const space = line.indexOf(' ', 3);
      const chain = line.slice(3, space < 0 ? undefined : space);
      const rules = table.get(chain) ?? [];
      table.set(chain, rules);
      rules.push(savedRule(space < 0 ? '' : line.slice(space + 1)));
    }
  }
  return snapshot;
}

/** Family-tagged snapshots, as the backend reads them. */
export type Snapshots = Map<Family, Snapshot>;

/** Every rule with an owner tag, in chain order, as list() reports it. */
export function ownedRulesOf(snapshots: Snapshots): OwnedRule[] {
  const owned: OwnedRule[] = [];
  for (const [family, snapshot] of snapshots) {
    for (const table of TABLES) {
      for (const [chain, rules] of snapshot[table]) {
        for (const { tag, rest } of rules) {
          const parsed = tag ? parseTag(tag) : undefined;
          if (tag && parsed)
            owned.push({ family, table, chain, ...parsed, tag, line: `-A ${chain} ${rest}` });
        }
      }
    }
  }
  return owned;
}

/** Every chain of every table, in order, as chains() reports it. */
export function chainsOf(snapshots: Snapshots): ChainRef[] {
  const out: ChainRef[] = [];
  for (const [family, snapshot] of snapshots) {
    for (const table of TABLES)
      for (const chain of snapshot[table].keys()) out.push({ family, table, chain });
  }
  return out;
}

/**
 * A snapshot back in iptables-save form (no counters, no date comments):
 * what the fake backend dumps and what golden tests compare.
 */
export function renderSnapshot(snapshot: Snapshot): string {
  let text = '';
  for (const table of TABLES) {
    text += `*${table}\n`;
    for (const chain of snapshot[table].keys()) {
      text += `:${chain} ${isBuiltinChain(table, chain) ? 'ACCEPT' : '-'} [0:0]\n`;
    }
    for (const [chain, rules] of snapshot[table])
      for (const { rest } of rules) text += `-A ${chain} ${rest}\n`;
    text += 'COMMIT\n';
  }
  return text;
}
