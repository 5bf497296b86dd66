/**
 * The firewall backend contract: a handful of methods over rules as data.
 * netctl ships an iptables backend (nft and legacy flavours, iptables/) and
 * an in-memory fake for callers' unit tests (testing/fake.ts); an nftables
 * backend with its own table may follow behind the same interface.
 *
 * Every method is idempotent and works on whole batches: implementations
 * read the current rules once and write all changes in one atomic step per
 * address family, never one command per rule.
 */
import { type ChainRef, type OwnedRule, type Rule, ruleHash } from './rule.js';

export interface FirewallBackend {
  /**
   * Add the rules that are missing; present ones (same identity comment)
   * are left alone. A missing rule goes before the next rule of the same
   * list and chain that is present, so an owner's rules keep the order
   * given even when one of them is re-added later; `first` rules go to the
   * head of their chain; the rest are appended. netctl's own chains
   * (NETCTL-*) that the rules live in or jump to are created; any other
   * chain must exist (FirewallChainMissingError).
   */
  add(rules: readonly Rule[]): Promise<void>;
  /**
   * Delete the rules that are present (every copy); absent ones are
   * success. Accepts rules as built or as listed by list(), so rules whose
   * building inputs are lost (gc, upgrades) can still be removed.
   */
  del(rules: readonly (Rule | OwnedRule)[]): Promise<void>;
  /** The rules of the list that are missing from the kernel (empty: all there). */
  check(rules: readonly Rule[]): Promise<Rule[]>;
  /** Every netctl rule present (any owner), in chain order, with its saved line. */
  list(): Promise<OwnedRule[]>;
  /** Every chain present in the filter and nat tables, built-in and user-defined. */
  chains(): Promise<ChainRef[]>;
  /**
   * Remove whole netctl chains (NETCTL-*): first every rule elsewhere that
   * jumps to one of them, then their contents, then the chains. Absent
   * chains are success.
   */
  removeChains(chains: readonly ChainRef[]): Promise<void>;
}

/** Remove every rule carrying one of these owners; returns what was removed. */
export async function removeOwners(backend: FirewallBackend, owners: Iterable<string>): Promise<OwnedRule[]> {
  const wanted = new Set(owners);
  const doomed = (await backend.list()).filter((rule) => wanted.has(rule.owner));
  if (doomed.length) await backend.del(doomed);
  return doomed;
}

/**
 * Make owner's rules exactly `rules` (which must all carry owner): add the
 * missing ones, then delete rules tagged with owner that are not in the
 * list — left by an older netctl whose rules differed, or by a crash.
 * Returns what was removed.
 */
export async function syncOwner(
  backend: FirewallBackend,
  owner: string,
  rules: readonly Rule[],
): Promise<OwnedRule[]> {
  for (const rule of rules) {
    if (rule.owner !== owner) throw new TypeError(`syncOwner(${owner}): rule owned by ${rule.owner}`);
  }
  await backend.add(rules);
  const wanted = new Set(rules.map((rule) => `${rule.family} ${rule.table} ${rule.chain} ${ruleHash(rule)}`));
  const stale = (await backend.list()).filter(
    (rule) => rule.owner === owner && !wanted.has(`${rule.family} ${rule.table} ${rule.chain} ${rule.hash}`),
  );
  if (stale.length) await backend.del(stale);
  return stale;
}
