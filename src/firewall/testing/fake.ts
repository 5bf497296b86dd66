/**
 * An in-memory FirewallBackend for unit tests of callers (the bridge
 * driver, reconcile, gc). It runs the same planner as the iptables backend
 * over an in-memory model, so placement, idempotence and chain creation
 * behave the same; dump() shows the tables as iptables-save would.
 */
import type { FirewallBackend } from '../backend.js';
import { FirewallChainMissingError } from '../errors.js';
import { checkOwnChains, missingRules, Planner } from '../iptables/plan.js';
import { chainsOf, emptySnapshot, ownedRulesOf, renderSnapshot, type Snapshots } from '../iptables/save.js';
import {
  type ChainRef,
  type Family,
  type OwnedRule,
  type Rule,
  TABLES,
  type Table,
  validateRule,
} from '../rule.js';

export type FakeOperation = 'add' | 'del' | 'check' | 'list' | 'chains' | 'removeChains';

/** A copy of the tables, each rule its own object, for a call to plan on. */
function copyOf(snapshots: Snapshots): Snapshots {
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
  return copy;
}

/** The fake's state: both families' tables, the failures to inject, every call made. */
interface FakeState {
  snapshots: Snapshots;
  failures: { op: FakeOperation; error: Error }[];
  /** Every call, in order, for assertions on batching. */
  calls: { op: FakeOperation; count: number }[];
}

/** Record a call of op, and fail it if a failure is waiting for op. */
function enter(state: FakeState, op: FakeOperation, count: number): void {
  state.calls.push({ op, count });
  const index = state.failures.findIndex((f) => f.op === op);
  if (index >= 0) {
    const [failure] = state.failures.splice(index, 1);
    throw failure?.error;
  }
}

/** Plan on a copy, commit only if planning succeeded: a failed call changes nothing. */
function transact(state: FakeState, fn: (planner: Planner) => void): void {
  const copy = copyOf(state.snapshots);
  fn(new Planner(copy));
  for (const [family, snapshot] of copy) state.snapshots.set(family, snapshot);
}

/** FirewallBackend over the state, with the iptables backend's planner. */
function fakeBackend(state: FakeState): FirewallBackend {
  return {
    async add(rules: readonly Rule[]): Promise<void> {
      for (const rule of rules) validateRule(rule);
      enter(state, 'add', rules.length);
      transact(state, (planner) => planner.add(rules));
    },

    async del(rules: readonly (Rule | OwnedRule)[]): Promise<void> {
      for (const rule of rules) if (!('tag' in rule)) validateRule(rule);
      enter(state, 'del', rules.length);
      transact(state, (planner) => planner.del(rules));
    },

    async check(rules: readonly Rule[]): Promise<Rule[]> {
      for (const rule of rules) validateRule(rule);
      enter(state, 'check', rules.length);
      return missingRules(state.snapshots, rules);
    },

    async list(): Promise<OwnedRule[]> {
      enter(state, 'list', 0);
      return ownedRulesOf(state.snapshots);
    },

    async chains(): Promise<ChainRef[]> {
      enter(state, 'chains', 0);
      return chainsOf(state.snapshots);
    },

    async removeChains(chains: readonly ChainRef[]): Promise<void> {
      checkOwnChains(chains);
      enter(state, 'removeChains', chains.length);
      transact(state, (planner) => planner.removeChains(chains));
    },
  };
}

/** What tests do to the fake besides calling it: read it, change it by hand, make it fail. */
function testControls({ snapshots, failures, calls }: FakeState) {
  return {
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
  };
}

export function fakeFirewall() {
  const state: FakeState = {
    snapshots: new Map([
      [4, emptySnapshot()],
      [6, emptySnapshot()],
    ]),
    failures: [],
    calls: [],
  };
  return { ...fakeBackend(state), ...testControls(state) } satisfies FirewallBackend;
}

export type FakeFirewall = ReturnType<typeof fakeFirewall>;
