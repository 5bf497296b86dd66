/**
 * Everything netctl can leave behind, as sorted strings (so a failed
 * comparison shows the difference line by line): in the kernel (links,
 * rules, chains, netns, sandbox run dirs) and in the store (pools,
 * addresses, records, intents, claims). A test takes one before and one
 * after, and compares them; kernel objects are named with their owner tag
 * where they have one, store entries with their owner.
 *
 * Read with the system tools (tools.ts) and straight from the store, never
 * through netctl's API: the thing under test does not check itself.
 */

import { existsSync, readdirSync } from 'node:fs';
import { listClaims } from '../../src/controller/claims.js';
import { State } from '../../src/controller/state.js';
import { Ipam } from '../../src/ipam/ipam.js';
import type { KvStore } from '../../src/kv/index.js';
import { SANDBOX_RUN_DIR } from '../../src/paths.js';
import { ipJson, type RunOptions, run } from './tools.js';

export interface KernelInventory {
  /** `<name> <alias or -> master=<master or ->` for every link but lo. */
  links: string[];
  /** `<netns> <ifname> <addresses>` for every link but lo inside each named netns. */
  netnsLinks: string[];
  /** Every rule, `<tool> <table> <line>`, both families, both iptables flavours. */
  rules: string[];
  /** Every non-builtin chain, `<tool> <table> <chain>`. */
  chains: string[];
  /** Named netns in /run/netns. */
  netns: string[];
  /** Sandbox run dirs (/run/netctl/sandboxes/<id>). */
  sandboxDirs: string[];
}

export interface StoreInventory {
  /** `<subnet> owner=<owner> allocated=<n>` per IPAM pool. */
  pools: string[];
  /** `<cidr> owner=<owner>` per IPAM reservation. */
  addresses: string[];
  /** Raw IPAM keys of addresses and the owner index (both must go together). */
  ipamKeys: string[];
  /** `<op> <kind> <owners>` of intents in the store. */
  intents: string[];
  /** `<key below netctl/v1/> <owner>` per member and claim an owner holds (src/controller/claims.ts). */
  claims: string[];
  /** `<name> net:<id>` */
  networks: string[];
  /** `ep:<id> net:<id> sb:<id or -> <ipv4 or ->` */
  endpoints: string[];
  /** `<name> sb:<id> <key> endpoints=<ids>` */
  sandboxes: string[];
}

export type Inventory = KernelInventory & StoreInventory;

export interface KernelInventoryOptions extends RunOptions {
  /**
   * Only what carries netctl's marks: links with its owner alias, rules
   * with its tag or in its chains, its NETCTL-* chains, its netctl-* netns.
   * For a host where another program (dockerd) changes its own objects
   * meanwhile; elsewhere everything counts, so an untagged leak shows too.
   */
  ownedOnly?: boolean;
}

interface IpLink {
  ifname: string;
  ifalias?: string;
  master?: string;
  addr_info?: { local: string; prefixlen: number; scope: string }[];
}

const SAVES = ['iptables-save', 'ip6tables-save', 'iptables-legacy-save', 'ip6tables-legacy-save'];
const BUILTIN = /^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) /;
const NETCTL_RULE = /netctl:|NETCTL-/;

const listDir = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

function firewallInventory(options: KernelInventoryOptions): { rules: string[]; chains: string[] } {
  const rules: string[] = [];
  const chains: string[] = [];
  for (const save of SAVES) {
    let table = '';
    for (const line of run(save, [], options).split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith('-A ')) rules.push(`${save} ${table} ${line}`);
      else if (line.startsWith(':') && !BUILTIN.test(line))
        chains.push(`${save} ${table} ${line.slice(1).split(' ')[0]}`);
    }
  }
  if (!options.ownedOnly) return { rules: rules.sort(), chains: chains.sort() };
  return {
    rules: rules.filter((r) => NETCTL_RULE.test(r)).sort(),
    chains: chains.filter((c) => c.split(' ')[2]?.startsWith('NETCTL-')).sort(),
  };
}

/**
 * The kernel's side, in this namespace or where options say. Named netns
 * are listed from this process's /run/netns (a Docker host's shares it)
 * and entered by name (`ip -n`) where options say, so a netns that only
 * that mount namespace holds is entered there.
 */
export function kernelInventory(options: KernelInventoryOptions = {}): KernelInventory {
  const owned = options.ownedOnly === true;
  const links = ipJson<IpLink[]>(['link', 'show'], options)
    .filter((l) => l.ifname !== 'lo' && (!owned || l.ifalias?.startsWith('netctl:')))
    .map((l) => `${l.ifname} ${l.ifalias ?? '-'} master=${l.master ?? '-'}`)
    .sort();
  const netns = listDir('/run/netns').filter((n) => !owned || n.startsWith('netctl-'));
  const netnsLinks = netns
    .flatMap((ns) =>
      ipJson<IpLink[]>(['-n', ns, 'addr', 'show'], options)
        .filter((l) => l.ifname !== 'lo')
        .map(
          (l) =>
            `${ns} ${l.ifname} ${(l.addr_info ?? [])
              .filter((a) => a.scope === 'global')
              .map((a) => `${a.local}/${a.prefixlen}`)
              .join(',')}`,
        ),
    )
    .sort();
  return { links, netnsLinks, ...firewallInventory(options), netns, sandboxDirs: listDir(SANDBOX_RUN_DIR) };
}

/** The store's side: IPAM pools and reservations, intents, claims and records. */
export async function storeInventory(kv: KvStore): Promise<StoreInventory> {
  const state = new State(kv);
  const ipam = new Ipam(kv);
  const pools = (await ipam.listPools())
    .map((p) => `${p.subnet} owner=${p.owner ?? '-'} allocated=${p.allocated}`)
    .sort();
  const addresses = (await ipam.listAllocations()).map((a) => `${a.cidr} owner=${a.owner}`).sort();
  const ipamKeys = [...(await kv.list('netctl/v1/ipam/addrs/')), ...(await kv.list('netctl/v1/ipam/owners/'))]
    .map((e) => e.key)
    .sort();
  const intents = (await state.intents()).map((i) => `${i.op} ${i.kind} ${i.owners.join(',')}`).sort();
  const claims = (await listClaims(kv))
    .flatMap((c) => c.owners.map((owner) => `${c.key.slice('netctl/v1/'.length)} ${owner}`))
    .sort();
  const networks = (await state.networks()).map((n) => `${n.name} net:${n.id}`).sort();
  const endpoints = (await state.endpoints())
    .map((e) => `ep:${e.id} net:${e.networkId} sb:${e.sandboxId ?? '-'} ${e.ipv4 ?? '-'}`)
    .sort();
  const sandboxes = (await state.sandboxes())
    .map((s) => `${s.name} sb:${s.id} ${s.key} endpoints=${[...s.endpointIds].sort().join(',')}`)
    .sort();
  return { pools, addresses, ipamKeys, intents, claims, networks, endpoints, sandboxes };
}

/** The kernel first, then the store (as gc reads them): a record written in between is seen. */
export async function inventory(kv: KvStore, options: KernelInventoryOptions = {}): Promise<Inventory> {
  const kernel = kernelInventory(options);
  return { ...kernel, ...(await storeInventory(kv)) };
}

/** An inventory with nothing in it: what every test must end with. */
export const EMPTY: Inventory = {
  links: [],
  netnsLinks: [],
  rules: [],
  chains: [],
  netns: [],
  sandboxDirs: [],
  pools: [],
  addresses: [],
  ipamKeys: [],
  intents: [],
  claims: [],
  networks: [],
  endpoints: [],
  sandboxes: [],
};

/** The inventory lines that are in `after` but not in `before`, per field. */
export function added<T extends Partial<Inventory>>(before: T, after: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k of Object.keys(before) as (keyof T)[]) {
    const extra = (after[k] as string[]).filter((line) => !(before[k] as string[]).includes(line));
    if (extra.length) out[k] = extra as T[keyof T];
  }
  return out;
}
