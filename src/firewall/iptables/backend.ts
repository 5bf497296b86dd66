/**
 * The iptables backend: one iptables-save read and one
 * `iptables-restore --noflush --wait` write per address family per batch,
 * over either flavour Debian ships — 'nft' (iptables-nft-*, Debian's default
 * `iptables`) or 'legacy' (iptables-legacy-*), whose tables are separate.
 *
 * All iptables work of the process runs one step at a time, through one
 * queue: every iptables call on the host queues on one lock
 * (/run/xtables.lock) shared by all namespaces anyway, so running two
 * restores at once from here would only make them wait for each other.
 * Writes queued while a step runs are merged into the next step (group
 * commit): N concurrent add() calls cost one read and one write per family,
 * not N. If a merged batch fails, its operations are retried one by one so
 * each caller gets its own error. Across processes, `--wait` takes the
 * xtables lock; a write that fails because another process changed the
 * tables between our read and write is re-planned from a fresh read once.
 */

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { NetnsRef } from '../../kernel/netns.js';
import type { FirewallBackend } from '../backend.js';
import { FirewallCommandError } from '../errors.js';
import { type ChainRef, type Family, type OwnedRule, type Rule, validateRule } from '../rule.js';
import { type Exec, spawnExec } from './exec.js';
import { checkOwnChains, missingRules, Planner, renderRestore } from './plan.js';
import { chainsOf, ownedRulesOf, parseSave, type Snapshots } from './save.js';

export type Flavour = 'nft' | 'legacy';

export interface IptablesOptions {
  /** Default: what `iptables --version` reports, as dockerd does ("(nf_tables)" or "(legacy)"). */
  flavour?: Flavour;
  /** Work in this network namespace; default: the namespace the process is in. */
  netns?: NetnsRef;
  /** Families list() and chains() look at; default [4, 6]. Leave out 6 on hosts without IPv6. */
  families?: readonly Family[];
  /** How to run the tools; default: spawn (in netns). Tests inject a fake. */
  exec?: Exec;
}

type WriteOp =
  | { kind: 'add'; rules: readonly Rule[] }
  | { kind: 'del'; rules: readonly (Rule | OwnedRule)[] }
  | { kind: 'removeChains'; chains: readonly ChainRef[] };

interface Job {
  op: WriteOp;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** The longest run of queued writes merged into one batch. */
const MAX_BATCH = 512;

// One lane for all iptables work of this process (see the file comment).
let lane: Promise<unknown> = Promise.resolve();
function serialize<T>(fn: () => Promise<T>): Promise<T> {
  const run = lane.then(fn, fn);
  lane = run.catch(() => undefined);
  return run;
}

function onPath(file: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, file), constants.X_OK);
      return true;
    } catch {
      // not in this directory; try the next
    }
  }
  return false;
}

interface Tools {
  flavour: Flavour;
  save: Record<Family, string>;
  restore: Record<Family, string>;
}

/** Which flavour `iptables --version` names: "iptables v1.8.9 (nf_tables)". Before 1.8 there was only legacy. */
export function flavourOf(versionText: string): Flavour {
  return /\(nf_tables\)/.test(versionText) ? 'nft' : 'legacy';
}

export class IptablesBackend implements FirewallBackend {
  private readonly exec: Exec;
  private readonly families: readonly Family[];
  private tools: Promise<Tools> | undefined;
  private readonly jobs: Job[] = [];
  private draining = false;

  constructor(private readonly options: IptablesOptions = {}) {
    this.exec = options.exec ?? spawnExec(options.netns);
    this.families = options.families ?? [4, 6];
  }

  /** The flavour in use (detected on first call unless configured). */
  async flavour(): Promise<Flavour> {
    return (await this.resolveTools()).flavour;
  }

  add(rules: readonly Rule[]): Promise<void> {
    for (const rule of rules) validateRule(rule);
    return rules.length ? this.write({ kind: 'add', rules: [...rules] }) : Promise.resolve();
  }

  del(rules: readonly (Rule | OwnedRule)[]): Promise<void> {
    for (const rule of rules) if (!('tag' in rule)) validateRule(rule);
    return rules.length ? this.write({ kind: 'del', rules: [...rules] }) : Promise.resolve();
  }

  removeChains(chains: readonly ChainRef[]): Promise<void> {
    checkOwnChains(chains);
    return chains.length ? this.write({ kind: 'removeChains', chains: [...chains] }) : Promise.resolve();
  }

  async check(rules: readonly Rule[]): Promise<Rule[]> {
    for (const rule of rules) validateRule(rule);
    const snapshots = await serialize(() => this.read(familiesOf(rules)));
    return missingRules(snapshots, rules);
  }

  async list(): Promise<OwnedRule[]> {
    return ownedRulesOf(await serialize(() => this.read(this.families)));
  }

  async chains(): Promise<ChainRef[]> {
    return chainsOf(await serialize(() => this.read(this.families)));
  }

  private resolveTools(): Promise<Tools> {
    this.tools ??= (async () => {
      let detected: Flavour | undefined;
      try {
        detected = flavourOf(await this.exec('iptables', ['--version']));
      } catch (err) {
        // No plain `iptables` is fine when the flavour is configured.
        if (!this.options.flavour) throw err;
      }
      const flavour = this.options.flavour ?? (detected as Flavour);
      // Debian and most distributions ship iptables-<flavour>-save etc.; where
      // only the plain names exist they are the detected flavour. (An injected
      // exec is a test double: no PATH lookup.)
      const lookUp = !this.options.exec;
      const tool = (base: string): string => {
        const named = base.replace('tables-', `tables-${flavour}-`);
        return !lookUp || onPath(named) || detected !== flavour ? named : base;
      };
      return {
        flavour,
        save: { 4: tool('iptables-save'), 6: tool('ip6tables-save') },
        restore: { 4: tool('iptables-restore'), 6: tool('ip6tables-restore') },
      };
    })();
    this.tools.catch(() => {
      this.tools = undefined; // try again next time
    });
    return this.tools;
  }

  private async read(families: Iterable<Family>): Promise<Snapshots> {
    const tools = await this.resolveTools();
    const list = [...new Set(families)].sort();
    const texts = await Promise.all(list.map((family) => this.exec(tools.save[family], [])));
    return new Map(list.map((family, i) => [family, parseSave(texts[i] as string)]));
  }

  private write(op: WriteOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.jobs.push({ op, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.jobs.length) {
        const batch = this.jobs.splice(0, MAX_BATCH);
        try {
          await serialize(() => this.apply(batch.map((job) => job.op)));
          for (const job of batch) job.resolve();
        } catch (err) {
          if (batch.length === 1) {
            batch[0]?.reject(err);
            continue;
          }
          for (const job of batch) {
            try {
              await serialize(() => this.apply([job.op]));
              job.resolve();
            } catch (jobErr) {
              job.reject(jobErr);
            }
          }
        }
      }
    } finally {
      this.draining = false;
    }
  }

  /** Read, plan and write ops as one batch; re-plan once from a fresh read if a write fails. */
  private async apply(ops: readonly WriteOp[]): Promise<void> {
    const tools = await this.resolveTools();
    const families = new Set<Family>();
    for (const op of ops)
      for (const item of op.kind === 'removeChains' ? op.chains : op.rules) families.add(item.family);
    for (let attempt = 1; ; attempt++) {
      const planner = new Planner(await this.read(families));
      for (const op of ops) {
        if (op.kind === 'add') planner.add(op.rules);
        else if (op.kind === 'del') planner.del(op.rules);
        else planner.removeChains(op.chains);
      }
      try {
        for (const family of [...families].sort()) {
          const input = renderRestore(planner.script.get(family));
          if (input) await this.restore(tools.restore[family], input);
        }
        return;
      } catch (err) {
        if (attempt >= 2 || !(err instanceof FirewallCommandError)) throw err;
      }
    }
  }

  private async restore(command: string, input: string): Promise<void> {
    const args = ['--noflush', '--wait'];
    try {
      await this.exec(command, args, input);
    } catch (err) {
      if (!(err instanceof FirewallCommandError)) throw err;
      // "iptables-restore: line 3 failed": point at the rule, not just the number.
      const match = /line (\d+) failed/.exec(err.stderr);
      const line = match ? input.split('\n')[Number(match[1]) - 1] : undefined;
      throw new FirewallCommandError(command, args, err.exitCode, err.stderr, line);
    }
  }
}

function familiesOf(rules: readonly { family: Family }[]): Family[] {
  return [...new Set(rules.map((rule) => rule.family))];
}

/** An iptables backend; see IptablesOptions. */
export function iptablesBackend(options: IptablesOptions = {}): IptablesBackend {
  return new IptablesBackend(options);
}
