/**
 * What a network namespace holds that netctl could harm, as sorted lines:
 * its links (with ifindex and every attribute `ip -d` shows), addresses,
 * routes of every table (IPv4 and IPv6), policy rules (both families) and
 * iptables/ip6tables rules (nft and legacy). Two snapshots of a namespace
 * are equal when nothing in it changed, so a test takes one before a
 * hostile request and one after, and compares them; a failed comparison
 * shows the changed line.
 *
 * Read with the tools themselves (`ip -j`, `iptables-save`), never with
 * netctl's kernel layer: the thing under test does not check itself. What
 * changes on its own is left out: bridge timers, address lifetimes and DAD
 * flags, a route's expiry, rule counters — and a table iptables-nft made
 * and left empty, which filters nothing.
 */
import { ipJson, run } from './tools.js';

export interface HostSnapshot {
  /** One JSON object per link (`ip -d -j link show`), volatile fields removed. */
  links: string[];
  /** `<ifname> <json>` per address (`ip -j addr show`). */
  addresses: string[];
  /** `<family> <json>` per route of every table. */
  routes: string[];
  /** `<family> <json>` per policy rule. */
  rules: string[];
  /** `<tool> <table> <line>`: chains with their policy, and rules, of tables that filter anything. */
  firewall: string[];
}

/** Keys whose values change by themselves (bridge timers count down, lifetimes run out, DAD finishes). */
const VOLATILE = /_timer$|^(valid_life_time|preferred_life_time|tentative|expires)$/;

/** value without volatile keys, with its keys sorted (so equal objects print equal). */
export function stable(value: unknown, volatile: RegExp = VOLATILE): unknown {
  if (Array.isArray(value)) return value.map((v) => stable(v, volatile));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k]) => !volatile.test(k))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => [k, stable(v, volatile)]),
  );
}

const line = (value: unknown) => JSON.stringify(stable(value));

/** Every link of the namespace, or the one named, as one line each. */
function links(netns?: string, name?: string): string[] {
  return ipJson(['-d', 'link', 'show', ...(name ? ['dev', name] : [])], netns)
    .map(line)
    .sort();
}

const SAVES = ['iptables-save', 'ip6tables-save', 'iptables-legacy-save', 'ip6tables-legacy-save'];
const BUILTIN = /^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ACCEPT$/;

function firewall(netns?: string): string[] {
  const out: string[] = [];
  for (const save of SAVES) {
    let text: string;
    try {
      text = run(save, [], { netns });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') continue; // this flavour is not installed
      throw err;
    }
    let table = '';
    let lines: string[] = [];
    const flush = () => {
      // A table of built-in chains that accept everything, without rules, is no table.
      if (table && !lines.every((l) => BUILTIN.test(l)))
        out.push(...lines.map((l) => `${save} ${table} ${l}`));
      lines = [];
    };
    for (const raw of text.split('\n')) {
      if (raw.startsWith('*')) {
        flush();
        table = raw.slice(1);
      } else if (raw.startsWith(':')) lines.push(raw.replace(/ \[\d+:\d+\]$/, ''));
      else if (raw.startsWith('-')) lines.push(raw);
    }
    flush();
  }
  return out.sort();
}

/**
 * Wait (up to timeoutMs) until no link that has a carrier holds an IPv6
 * address still in duplicate address detection: when DAD ends the kernel
 * adds the address's local route, which would differ between two
 * snapshots taken a second apart. A link without carrier never starts DAD.
 */
export async function settle(netns?: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = ipJson(['-6', 'addr', 'show'], netns).some(
      (l) =>
        (l.flags as string[] | undefined)?.includes('LOWER_UP') &&
        ((l.addr_info as { tentative?: boolean }[] | undefined) ?? []).some((a) => a.tentative),
    );
    if (!pending || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Wait until each named link has its carrier (a veth's comes a moment
 * after both ends are up, and DAD only starts then), then settle.
 */
export async function waitForCarrier(names: string[], netns?: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const up = ipJson(['link', 'show'], netns).filter(
      (l) => names.includes(l.ifname as string) && (l.flags as string[]).includes('LOWER_UP'),
    );
    if (up.length === names.length) break;
    if (Date.now() > deadline) throw new Error(`no carrier on ${names.join(', ')} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await settle(netns, timeoutMs);
}

/** A snapshot of netns (a path), or of the namespace this process is in, once DAD has settled. */
export async function hostSnapshot(netns?: string): Promise<HostSnapshot> {
  await settle(netns);
  const addresses = ipJson(['addr', 'show'], netns).flatMap((l) =>
    ((l.addr_info as unknown[] | undefined) ?? []).map((a) => `${l.ifname as string} ${line(a)}`),
  );
  const perFamily = (args: string[]) =>
    (['-4', '-6'] as const).flatMap((family) =>
      ipJson([family, ...args], netns).map((r) => `${family} ${line(r)}`),
    );
  return {
    links: links(netns),
    addresses: addresses.sort(),
    routes: perFamily(['route', 'show', 'table', 'all']).sort(),
    rules: perFamily(['rule', 'show']).sort(),
    firewall: firewall(netns),
  };
}

/** One link with its addresses, as hostSnapshot shows them; [] when there is no link of that name. */
export async function linkSnapshot(name: string, netns?: string): Promise<string[]> {
  await settle(netns);
  try {
    const addresses = ipJson(['addr', 'show', 'dev', name], netns).flatMap((l) =>
      ((l.addr_info as unknown[] | undefined) ?? []).map((a) => `${name} ${line(a)}`),
    );
    return [...links(netns, name), ...addresses.sort()];
  } catch (err) {
    if (/does not exist/.test(String((err as { stderr?: string }).stderr))) return [];
    throw err;
  }
}
