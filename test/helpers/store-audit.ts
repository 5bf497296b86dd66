/**
 * What the records, the IPAM and the kernel say, compared — for tests that
 * inject faults and then ask "did netctl do harm?". Read straight from the
 * store (any backend, by URL) and from the kernel of this namespace (the
 * test run's "host"), never through netctl's API.
 *
 * Findings, each one line naming the thing:
 * - doubleGrants: an address two records hold, an address a record holds
 *   that the IPAM gives to another owner, or one it shows free (the next
 *   request gets it: a double grant in waiting);
 * - leaks: what no record owns — reservations, pools, claims, intents left
 *   once settled, links and netns;
 * - missing: what a record says exists and does not (a veth, a bridge, an
 *   address inside the sandbox, a netns), IPAM counters that disagree
 *   with the reservations, a network still marked for deletion with no
 *   operation on it;
 * - staleHosts: a netctl sandbox's /etc/hosts that does not list exactly
 *   its peers on its networks (what the records say it should).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listClaims } from '../../src/controller/claims.js';
import { State } from '../../src/controller/state.js';
import type { Endpoint, Network, Sandbox } from '../../src/core/model.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { HostScopedStore, type KvEntry, type KvStore, openStore } from '../../src/kv/index.js';
import { sandboxEtcDir } from '../../src/paths.js';
import { ipJson } from './tools.js';

export interface Audit {
  networks: Network[];
  endpoints: Endpoint[];
  sandboxes: Sandbox[];
  /** `<cidr> <owner>` per IPAM reservation. */
  allocations: string[];
  doubleGrants: string[];
  leaks: string[];
  missing: string[];
  staleHosts: string[];
}

interface IpLink {
  ifname: string;
  ifalias?: string;
  master?: string;
  addr_info?: { local: string; prefixlen: number; scope: string }[];
}

/** Every key below netctl/v1/ with its value (to tell "nothing changed" exactly). */
export async function dumpStore(kv: KvStore): Promise<KvEntry[]> {
  return (await kv.list('netctl/v1/')).map(({ key, value }) => ({ key, value, version: 0 }));
}

/**
 * Open the store at url for fn (the embedded one of stateDir when url is an
 * lmdb:// URL). A shared store is seen as its one host sees it (the tests
 * here run one daemon on it): its own keys under its root (src/kv/scoped.ts).
 */
export async function withStore<T>(url: string, fn: (kv: KvStore) => Promise<T>): Promise<T> {
  const kv = await openStore(url);
  try {
    if (kv.backend === 'lmdb') return await fn(kv);
    const [first] = await kv.list('netctl/v1/local/', { limit: 1 });
    const host = first?.key.split('/')[3];
    return await fn(host ? new HostScopedStore(kv, host) : kv);
  } finally {
    await kv.close();
  }
}

/**
 * Audit the store at url against itself and against this namespace's
 * kernel. `others` are links and netns the test made itself.
 */
export async function audit(
  url: string,
  others: { links?: string[]; netns?: string[] } = {},
): Promise<Audit> {
  return withStore(url, async (kv) => {
    const state = new State(kv);
    const ipam = new Ipam(kv);
    // The kernel first, then the store (as gc does): a record written in between is seen.
    const links = ipJson<IpLink[]>(['link', 'show']).filter(
      (l) => l.ifname !== 'lo' && !others.links?.includes(l.ifname),
    );
    const netns = (existsSync('/run/netns') ? readdirSync('/run/netns') : []).filter(
      (n) => !others.netns?.includes(n),
    );
    const intents = await state.intents();
    const networks = await state.networks();
    const endpoints = await state.endpoints();
    const sandboxes = await state.sandboxes();
    const pools = await ipam.listPools();
    const allocations = await ipam.listAllocations();
    const claims = await listClaims(state.kv);

    const doubleGrants: string[] = [];
    const leaks: string[] = [];
    const missing: string[] = [];
    const networkIds = new Set(networks.map((n) => n.id));
    const endpointIds = new Set(endpoints.map((e) => e.id));
    const sandboxIds = new Set(sandboxes.map((s) => s.id));
    const hasRecord = (owner: string) => {
      const [kind, id = ''] = owner.split(':');
      if (kind === 'net') return networkIds.has(id);
      if (kind === 'ep') return endpointIds.has(id);
      if (kind === 'sb') return sandboxIds.has(id);
      return false;
    };

    // Addresses: who the IPAM gives each to, and who the records say holds it.
    const ipamOwner = new Map<string, string>();
    for (const a of allocations) {
      const before = ipamOwner.get(a.cidr);
      if (before !== undefined)
        doubleGrants.push(`address ${a.cidr} reserved twice: ${before} and ${a.owner}`);
      ipamOwner.set(a.cidr, a.owner);
      if (!hasRecord(a.owner)) leaks.push(`address ${a.cidr} reserved for ${a.owner}, which has no record`);
    }
    const held = new Map<string, string>();
    const hold = (cidr: string, owner: string) => {
      const before = held.get(cidr);
      if (before !== undefined) doubleGrants.push(`address ${cidr} held by ${before} and ${owner}`);
      held.set(cidr, owner);
      const reserved = ipamOwner.get(cidr);
      if (reserved === undefined) doubleGrants.push(`address ${cidr} held by ${owner} is free in the IPAM`);
      else if (reserved !== owner)
        doubleGrants.push(`address ${cidr} held by ${owner} is reserved for ${reserved} in the IPAM`);
    };
    for (const n of networks) {
      for (const c of n.ipam.config) {
        if (!n.ipam.external) hold(`${c.gateway}${c.subnet.slice(c.subnet.indexOf('/'))}`, `net:${n.id}`);
      }
    }
    for (const e of endpoints) {
      if (e.externalAddresses) continue;
      if (e.ipv4) hold(e.ipv4, `ep:${e.id}`);
      if (e.ipv6) hold(e.ipv6, `ep:${e.id}`);
      if (!networkIds.has(e.networkId))
        leaks.push(`endpoint ${e.name} ep:${e.id} on a network with no record`);
      if (e.sandboxId && !sandboxIds.has(e.sandboxId))
        leaks.push(`endpoint ${e.name} ep:${e.id} in a sandbox with no record`);
    }
    for (const [cidr, owner] of ipamOwner) {
      if (!held.has(cidr) && hasRecord(owner))
        leaks.push(`address ${cidr} reserved for ${owner}, whose record does not hold it`);
    }
    for (const p of pools) {
      const count = allocations.filter((a) => a.poolId === p.poolId).length;
      if (p.allocated !== count)
        missing.push(`pool ${p.subnet} counts ${p.allocated} addresses, holds ${count} reservations`);
      if (!p.owner || !hasRecord(p.owner)) leaks.push(`pool ${p.subnet} of ${p.owner ?? '-'}, no record`);
    }
    for (const c of claims)
      for (const owner of c.owners)
        if (!hasRecord(owner)) leaks.push(`claim ${c.key} of ${owner}, no record`);
    for (const i of intents) leaks.push(`intent ${i.op} ${i.owners.join(',')} (pid ${i.pid})`);
    for (const n of networks) {
      if (n.deleting && !intents.some((i) => i.owners.includes(`net:${n.id}`)))
        missing.push(`network ${n.name} is marked deleting, and no operation is on it`);
    }
    for (const s of sandboxes) {
      const listed = [...s.endpointIds].sort().join(',');
      const actual = endpoints
        .filter((e) => e.sandboxId === s.id)
        .map((e) => e.id)
        .sort()
        .join(',');
      if (listed !== actual) missing.push(`sandbox ${s.name} lists endpoints [${listed}], has [${actual}]`);
    }

    // The kernel: a bridge per bridge network, a veth on it per joined endpoint.
    const expected = new Map<string, string>();
    const bridges = new Map<string, string>();
    for (const n of networks) {
      if (n.driver !== 'bridge') continue;
      const bridge = n.driverData.bridge as string;
      bridges.set(n.id, bridge);
      expected.set(bridge, `netctl:net:${n.id} master=-`);
    }
    for (const e of endpoints) {
      const bridge = bridges.get(e.networkId);
      if (bridge && e.sandboxId)
        expected.set(e.driverData.hostIfname as string, `netctl:ep:${e.id} master=${bridge}`);
    }
    const seen = new Map(links.map((l) => [l.ifname, `${l.ifalias ?? '-'} master=${l.master ?? '-'}`]));
    for (const [name, what] of expected) {
      const there = seen.get(name);
      if (there === undefined) missing.push(`link ${name} (${what}) is not there`);
      else if (there !== what) missing.push(`link ${name} is ${there}, not ${what}`);
    }
    for (const [name, what] of seen) if (!expected.has(name)) leaks.push(`link ${name} ${what}, no record`);

    // Sandboxes: their netns, and inside it an interface per endpoint with its addresses.
    const ownNetns = new Set(
      sandboxes.filter((s) => s.ownsNetns).map((s) => s.key.replace('/run/netns/', '')),
    );
    for (const n of netns) if (!ownNetns.has(n)) leaks.push(`netns ${n}, no record`);
    for (const s of sandboxes) {
      if (!existsSync(s.key)) {
        missing.push(`netns ${s.key} of sandbox ${s.name} is not there`);
        continue;
      }
      const inside = new Map(
        ipJson<IpLink[]>(['addr', 'show'], s.key)
          .filter((l) => l.ifname !== 'lo')
          .map((l) => [
            l.ifname,
            (l.addr_info ?? [])
              .filter((a) => a.scope === 'global')
              .map((a) => `${a.local}/${a.prefixlen}`)
              .sort()
              .join(','),
          ]),
      );
      const mine = endpoints.filter((e) => e.sandboxId === s.id && bridges.has(e.networkId));
      for (const e of mine) {
        const want = [e.ipv4, e.ipv6]
          .filter((a): a is string => a !== undefined)
          .sort()
          .join(',');
        const have = e.ifname ? inside.get(e.ifname) : undefined;
        if (have === undefined) missing.push(`${e.ifname} of ep:${e.id} is not in sandbox ${s.name}`);
        else if (have !== want) missing.push(`${e.ifname} in sandbox ${s.name} has ${have}, not ${want}`);
        if (e.ifname) inside.delete(e.ifname);
      }
      for (const [ifname, addrs] of inside)
        leaks.push(`${ifname} (${addrs}) in sandbox ${s.name}, no record`);
    }
    return {
      networks,
      endpoints,
      sandboxes,
      allocations: allocations.map((a) => `${a.cidr} ${a.owner}`).sort(),
      doubleGrants,
      leaks,
      missing,
      staleHosts: staleHosts(sandboxes, endpoints),
    };
  });
}

/**
 * netctl's own sandboxes' /etc/hosts against the records: besides its three
 * fixed lines, one line per endpoint with an IPv4 address on a network the
 * sandbox is on, other than its own (src/controller/controller.ts rewriteHosts).
 */
function staleHosts(sandboxes: Sandbox[], endpoints: Endpoint[]): string[] {
  const out: string[] = [];
  for (const s of sandboxes) {
    if (!s.ownsNetns) continue;
    const file = join(sandboxEtcDir(s.id), 'hosts');
    if (!existsSync(file)) continue;
    const nets = new Set(endpoints.filter((e) => e.sandboxId === s.id).map((e) => e.networkId));
    const want = endpoints
      .filter((e) => nets.has(e.networkId) && e.sandboxId !== s.id && e.ipv4)
      .map((e) => `${(e.ipv4 as string).split('/')[0]}\t${[e.name, ...e.aliases].join(' ')}`)
      .sort();
    const have = readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(3).sort();
    if (want.join('|') !== have.join('|'))
      out.push(`hosts of sandbox ${s.name} lists [${have.join(', ')}], the records say [${want.join(', ')}]`);
  }
  return out;
}
