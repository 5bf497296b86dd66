/**
 * An in-memory FirewallBackend for unit tests of callers (the bridge
 * driver, reconcile, gc). It runs the same planner as the iptables backend
 * over an in-memory model, so placement, idempotence and chain creation
 * behave the same; dump() shows the tables as iptables-save would.
 */
import type { FirewallBackend } from '../backend.js';
import { FirewallChainMissingError } from '../errors.js';
import { checkOwnChains, missingRules, Planner } from '../iptables/plan.js';
import { emptySnapshot, renderSnapshot, type Snapshots } from '../iptables/save.js';
import {
  type ChainRef,
  type Family,
  type OwnedRule,
  parseTag,
  type Rule,
  TABLES,
  type Table,
  validateRule,
} from '../rule.js';

export type FakeOperation = 'add' | 'del' | 'check' | 'list' | 'chains' | 'removeChains';

export function fakeFirewall() {
  const snapshots: Snapshots = new Map([
    [4, emptySnapshot()],
    [6, emptySnapshot()],
  ]);
  const failures: { op: FakeOperation; error: Error }[] = [];
  /** Every call, in order, for assertions on batching. */
  const calls: { op: FakeOperation; count: number }[] = [];

  function enter(op: FakeOperation, count: number): void {
    calls.push({ op, count });
    const index = failures.findIndex((f) => f.op === op);
    if (index >= 0) {
      const [failure] = failures.splice(index, 1);
      throw failure?.error;
    }
  }

  // Plan on a copy, commit only if planning succeeded: a failed call changes nothing.
  function transact(fn: (planner: Planner) => void): void {
    const copy: Snapshots = new Map();
    for (const [family, snapshot] of snapshots) {
      const tables = emptySnapshot();
      for (const table of TABLES) {
        tables[table] = new Map(
          [...snapshot[table]].map(([chain, rules]) => [chain, rules.map((r) => ({ ...r }))]),
        );
      }
      copy.set(family, tables);
    }
    fn(new Planner(copy));
    for (const [family, snapshot] of copy) snapshots.set(family, snapshot);
  }

  const backend = {
    async add(rules: readonly Rule[]): Promise<void> {
      for (const rule of rules) validateRule(rule);
      enter('add', rules.length);
      transact((planner) => planner.add(rules));
    },

    async del(rules: readonly (Rule | OwnedRule)[]): Promise<void> {
      for (const rule of rules) if (!('tag' in rule)) validateRule(rule);
      enter('del', rules.length);
      transact((planner) => planner.del(rules));
    },

    async check(rules: readonly Rule[]): Promise<Rule[]> {
      for (const rule of rules) validateRule(rule);
      enter('check', rules.length);
      return missingRules(snapshots, rules);
    },

    async list(): Promise<OwnedRule[]> {
      enter('list', 0);
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
    },

    async chains(): Promise<ChainRef[]> {
      enter('chains', 0);
      const out: ChainRef[] = [];
      for (const [family, snapshot] of snapshots) {
        for (const table of TABLES)
          for (const chain of snapshot[table].keys()) out.push({ family, table, chain });
      }
      return out;
    },

    async removeChains(chains: readonly ChainRef[]): Promise<void> {
      checkOwnChains(chains);
      enter('removeChains', chains.length);
      transact((planner) => planner.removeChains(chains));
    },

    // ---- test controls ----

    /** The tables of one family in iptables-save form (golden dumps). */
    dump(family: Family = 4): string {
      return renderSnapshot(snapshots.get(family) ?? emptySnapshot());
    },

    /** Pretend another program (dockerd) created a chain, e.g. DOCKER-USER. */
    createChain(family: Family, table: Table, chain: string): void {
      const model = snapshots.get(family)?.[table];
      if (model && !model.has(chain)) model.set(chain, []);
    },

    /** Pretend someone deleted a rule by hand (by its tag). */
    deleteByHand(family: Family, table: Table, chain: string, tag: string): void {
      const rules = snapshots.get(family)?.[table].get(chain);
      if (!rules) throw new FirewallChainMissingError(family, table, chain);
      const index = rules.findIndex((rule) => rule.tag === tag);
      if (index >= 0) rules.splice(index, 1);
    },

    /** Make the next call of op fail with error (for undo paths). */
    failNext(op: FakeOperation, error: Error = new Error(`fake firewall: ${op} failed`)): void {
      failures.push({ op, error });
    },

    calls,
  } satisfies FirewallBackend & Record<string, unknown>;
  return backend;
}

export type FakeFirewall = ReturnType<typeof fakeFirewall>;
