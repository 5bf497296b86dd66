/**
 * netctl's own chains and the jumps into them from the built-in chains
 * ("base" rules, owner `base`). Applied once at daemon start and re-checked
 * by reconcile: ensureBase() is idempotent and cheap when nothing is
 * missing (one iptables-save read per family, no write).
 *
 * The layout (see bridge.ts for what each chain holds):
 *
 *   filter FORWARD ─┬─► NETCTL-FORWARD ─► NETCTL-CT           replies into netctl bridges
 *   (DOCKER-USER) ──┘                   ├► NETCTL-ISOLATION-1 ─► NETCTL-ISOLATION-2
 *                                       ├► NETCTL-PUBLISH      published ports
 *                                       └► NETCTL-BRIDGE       way out, ICC, default drop
 *   nat PREROUTING (dst LOCAL) ─┬─► NETCTL-PREROUTING          DNAT of published ports
 *   nat OUTPUT     (dst LOCAL) ─┘
 *   nat POSTROUTING ──────────────► NETCTL-POSTROUTING         MASQUERADE
 *
 * Living beside Docker: dockerd sets the FORWARD policy to DROP and puts
 * its own chains first. Its chains never DROP traffic of bridges it does not
 * know, so netctl's jump in FORWARD still sees it; the jump from DOCKER-USER
 * (when that chain exists) makes netctl's verdict come before all of
 * dockerd's chains, which dockerd re-orders on every start. ensureBase()
 * adds that jump as soon as it sees DOCKER-USER, so calling it again after
 * dockerd started is enough.
 */
import type { FirewallBackend } from './backend.js';
import type { ChainRef, Family, Rule, Table } from './rule.js';

export const CHAIN = {
  /** filter: entry from FORWARD (and DOCKER-USER); jumps to the next four in order. */
  forward: 'NETCTL-FORWARD',
  /** filter: replies into a netctl bridge (RELATED,ESTABLISHED), before any DROP. */
  ct: 'NETCTL-CT',
  /** filter: stage 1 of isolation between netctl networks, and internal networks' drops. */
  isolation1: 'NETCTL-ISOLATION-1',
  /** filter: stage 2 of isolation: DROP into any netctl bridge. */
  isolation2: 'NETCTL-ISOLATION-2',
  /** filter: ACCEPT of each published port, before the bridges' drops. */
  publish: 'NETCTL-PUBLISH',
  /** filter: per bridge: way out, inter-container (ICC) accept or drop, default drop. */
  bridge: 'NETCTL-BRIDGE',
  /** nat: DNAT of published ports; entered for local destinations from PREROUTING and OUTPUT. */
  prerouting: 'NETCTL-PREROUTING',
  /** nat: MASQUERADE of traffic leaving a subnet, hairpin and host-local access. */
  postrouting: 'NETCTL-POSTROUTING',
} as const;

export const BASE_OWNER = 'base';

const DOCKER_USER = 'DOCKER-USER';

const OWN_CHAINS: readonly { table: Table; chain: string }[] = [
  { table: 'filter', chain: CHAIN.forward },
  { table: 'filter', chain: CHAIN.ct },
  { table: 'filter', chain: CHAIN.isolation1 },
  { table: 'filter', chain: CHAIN.isolation2 },
  { table: 'filter', chain: CHAIN.publish },
  { table: 'filter', chain: CHAIN.bridge },
  { table: 'nat', chain: CHAIN.prerouting },
  { table: 'nat', chain: CHAIN.postrouting },
];

/** Every netctl chain of these families. */
export function baseChains(families: readonly Family[] = [4, 6]): ChainRef[] {
  return families.flatMap((family) => OWN_CHAINS.map((c) => ({ family, ...c })));
}

/**
 * The base rules of one family. The jump from DOCKER-USER is flagged
 * ifChainExists: it is added as soon as dockerd has made that chain, and
 * netctl never creates Docker's chains itself.
 */
export function baseRules(family: Family): Rule[] {
  const rule = (table: Table, chain: string, spec: string[], extra: Partial<Rule> = {}): Rule => ({
    family,
    table,
    chain,
    spec,
    owner: BASE_OWNER,
    ...extra,
  });
  const first = { first: true };
  const local = ['-m', 'addrtype', '--dst-type', 'LOCAL'];
  return [
    rule('filter', 'FORWARD', ['-j', CHAIN.forward], first),
    rule('filter', DOCKER_USER, ['-j', CHAIN.forward], { first: true, ifChainExists: true }),
    rule('filter', CHAIN.forward, ['-j', CHAIN.ct]),
    rule('filter', CHAIN.forward, ['-j', CHAIN.isolation1]),
    rule('filter', CHAIN.forward, ['-j', CHAIN.publish]),
    rule('filter', CHAIN.forward, ['-j', CHAIN.bridge]),
    rule('nat', 'PREROUTING', [...local, '-j', CHAIN.prerouting], first),
    // Host-local access to published ports. IPv4 includes 127.0.0.1 (which
    // needs route_localnet on the bridge, see requiredSysctls); ::1 can
    // never leave the host, so IPv6 leaves it out as dockerd does.
    rule(
      'nat',
      'OUTPUT',
      [...(family === 6 ? ['!', '-d', '::1/128'] : []), ...local, '-j', CHAIN.prerouting],
      first,
    ),
    rule('nat', 'POSTROUTING', ['-j', CHAIN.postrouting], first),
  ];
}

/**
 * Create netctl's chains and jumps where missing. Cheap to call again (no
 * write when all is there); call it at start-up, before adding a network's
 * rules, and from reconcile, so a DOCKER-USER chain that appeared since
 * (dockerd started later) gets its jump.
 */
export async function ensureBase(
  backend: FirewallBackend,
  families: readonly Family[] = [4, 6],
): Promise<void> {
  await backend.add(families.flatMap((family) => baseRules(family)));
}

/**
 * Remove all of netctl's chains, the jumps into them and every rule in them
 * — when no network is left, or for `netctl gc`. Absent chains are success.
 */
export async function removeBase(
  backend: FirewallBackend,
  families: readonly Family[] = [4, 6],
): Promise<void> {
  await backend.removeChains(baseChains(families));
}
