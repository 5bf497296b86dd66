/**
 * The diff logic of the iptables backend, pure: given what iptables-save
 * showed, work out the iptables-restore lines that add, delete or remove
 * exactly what was asked, updating the model as it goes so several
 * operations can be planned into one batch.
 *
 * Facts this relies on (iptables 1.8.9, both flavours, checked here):
 * - `iptables-restore --noflush` applies a table's lines atomically: one
 *   failing line (a -D of a rule that is not there) fails the whole table,
 *   so only rules seen in the snapshot are deleted.
 * - Declaring an existing chain with `:CHAIN - [0:0]` under --noflush
 *   FLUSHES it, so chains are created with `-N`, and only when absent.
 * - `-I CHAIN N` counts rules added earlier in the same batch.
 */
import { FirewallChainMissingError, FirewallInputError } from '../errors.js';
import {
  type ChainRef,
  checkChain,
  type Family,
  jumpTarget,
  type OwnedRule,
  parseTag,
  type Rule,
  ruleArgs,
  ruleTag,
  TABLES,
  type Table,
} from '../rule.js';
import type { SavedRule, Snapshot, Snapshots } from './save.js';

/** netctl creates and removes only chains with this prefix. */
export const OWN_CHAIN_PREFIX = 'NETCTL-';

/** Lines to feed iptables-restore, per family and table. */
export type Script = Map<Family, Record<Table, string[]>>;

export class Planner {
  readonly script: Script = new Map();

  constructor(private readonly snapshots: Snapshots) {}

  private snapshot(family: Family): Snapshot {
    const snapshot = this.snapshots.get(family);
    if (!snapshot) throw new Error(`firewall planner: no IPv${family} snapshot was read`);
    return snapshot;
  }

  private emit(family: Family, table: Table, line: string): void {
    let tables = this.script.get(family);
    if (!tables) {
      tables = { filter: [], nat: [] };
      this.script.set(family, tables);
    }
    tables[table].push(line);
  }

  /** The rules of chain, creating it (in the model and the script) if it is ours and absent. */
  private chain(family: Family, table: Table, chain: string): SavedRule[] {
    const chains = this.snapshot(family)[table];
    let rules = chains.get(chain);
    if (!rules) {
      if (!chain.startsWith(OWN_CHAIN_PREFIX)) throw new FirewallChainMissingError(family, table, chain);
      rules = [];
      chains.set(chain, rules);
      this.emit(family, table, `-N ${chain}`);
    }
    return rules;
  }

  /** See FirewallBackend.add for the placement rules. */
  add(rules: readonly Rule[]): void {
    const tags = rules.map(ruleTag);
    const placedFirst = new Map<string, number>();
    rules.forEach((rule, i) => {
      const { family, table, chain } = rule;
      if (rule.ifChainExists && !this.snapshot(family)[table].has(chain)) return;
      const present = this.chain(family, table, chain);
      const target = jumpTarget(rule.spec);
      if (target?.startsWith(OWN_CHAIN_PREFIX)) this.chain(family, table, target);
      const tag = tags[i] as string;
      if (present.some((saved) => saved.tag === tag)) return;

      const args = ruleArgs(rule).join(' ');
      let position: number | undefined;
      if (rule.first) {
        const key = `${family} ${table} ${chain}`;
        const placed = placedFirst.get(key) ?? 0;
        placedFirst.set(key, placed + 1);
        position = placed + 1;
      } else {
        // Before the next rule of this list and chain that is already there.
        for (let j = i + 1; j < rules.length && position === undefined; j++) {
          const next = rules[j] as Rule;
          if (next.family !== family || next.table !== table || next.chain !== chain) continue;
          const index = present.findIndex((saved) => saved.tag === tags[j]);
          if (index >= 0) position = index + 1;
        }
      }
      const saved: SavedRule = { rest: args, tag, target };
      if (position === undefined) {
        this.emit(family, table, `-A ${chain} ${args}`);
        present.push(saved);
      } else {
        this.emit(family, table, `-I ${chain} ${position} ${args}`);
        present.splice(position - 1, 0, saved);
      }
    });
  }

  /** Delete every present copy of each rule, by the text iptables-save showed for it. */
  del(rules: readonly (Rule | OwnedRule)[]): void {
    for (const rule of rules) {
      const tag = 'tag' in rule ? ownedTag(rule) : ruleTag(rule);
      const present = this.snapshot(rule.family)[rule.table].get(rule.chain);
      if (!present) continue;
      for (let k = present.length - 1; k >= 0; k--) {
        const saved = present[k] as SavedRule;
        if (saved.tag !== tag) continue;
        this.emit(rule.family, rule.table, `-D ${rule.chain} ${saved.rest}`);
        present.splice(k, 1);
      }
    }
  }

  /** Remove netctl chains: jumps to them from other chains, their rules, then the chains. */
  removeChains(chains: readonly ChainRef[]): void {
    checkOwnChains(chains);
    const groups = new Map<string, { family: Family; table: Table; names: Set<string> }>();
    for (const { family, table, chain } of chains) {
      const key = `${family} ${table}`;
      const group = groups.get(key) ?? { family, table, names: new Set<string>() };
      group.names.add(chain);
      groups.set(key, group);
    }
    for (const { family, table, names } of groups.values()) {
      const model = this.snapshot(family)[table];
      const present = [...names].filter((name) => model.has(name));
      if (!present.length) continue;
      for (const [chain, rules] of model) {
        if (names.has(chain)) continue;
        for (let k = rules.length - 1; k >= 0; k--) {
          const saved = rules[k] as SavedRule;
          if (saved.target === undefined || !names.has(saved.target)) continue;
          this.emit(family, table, `-D ${chain} ${saved.rest}`);
          rules.splice(k, 1);
        }
      }
      for (const chain of present) {
        this.emit(family, table, `-F ${chain}`);
        model.set(chain, []);
      }
      for (const chain of present) {
        this.emit(family, table, `-X ${chain}`);
        model.delete(chain);
      }
    }
  }
}

/** Throw FirewallInputError unless every chain is a netctl chain in filter or nat of IPv4 or IPv6. */
export function checkOwnChains(chains: readonly ChainRef[]): void {
  for (const { family, table, chain } of chains) {
    if (family !== 4 && family !== 6) throw new FirewallInputError('family', family, 'not 4 or 6');
    if (!TABLES.includes(table)) throw new FirewallInputError('table', table, 'not filter or nat');
    checkChain('chain', chain);
    if (!chain.startsWith(OWN_CHAIN_PREFIX)) {
      throw new FirewallInputError('chain', chain, `netctl removes only its own ${OWN_CHAIN_PREFIX}* chains`);
    }
  }
}

/**
 * The rules missing from snapshots (rules flagged ifChainExists whose chain
 * is absent are not missing).
 */
export function missingRules(snapshots: Snapshots, rules: readonly Rule[]): Rule[] {
  return rules.filter((rule) => {
    const chain = snapshots.get(rule.family)?.[rule.table].get(rule.chain);
    if (!chain) return !rule.ifChainExists;
    const tag = ruleTag(rule);
    return !chain.some((saved) => saved.tag === tag);
  });
}

function ownedTag(rule: OwnedRule): string {
  // A listed rule may come back from anywhere (gc input): re-check it.
  checkChain('chain', rule.chain);
  if (!parseTag(rule.tag)) throw new FirewallInputError('tag', rule.tag, 'not a netctl rule comment');
  return rule.tag;
}

/** The iptables-restore input for one family, or '' when there is nothing to do. */
export function renderRestore(tables: Record<Table, string[]> | undefined): string {
  if (!tables) return '';
  let text = '';
  for (const table of TABLES) {
    if (tables[table].length) text += `*${table}\n${tables[table].join('\n')}\nCOMMIT\n`;
  }
  return text;
}
