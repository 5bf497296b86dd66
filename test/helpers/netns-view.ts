/**
 * What a network namespace holds, read from outside netctl's code with the
 * system tools (`ip -j`, `iptables-save`) run through `nsenter --net=PATH`:
 * its links, their addresses, and the iptables rules and chains netctl
 * tagged (`--comment netctl:<owner>/<hash>`, chains `NETCTL-*`). Async, so
 * the reads of several namespaces run side by side.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Run cmd in netns and return its stdout. */
export async function inNetns(netns: string, cmd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('nsenter', [`--net=${netns}`, '--', cmd, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

export interface LinkView {
  ifname: string;
  flags: string[];
  /** `ip -d` only. */
  group?: string;
  ifalias?: string;
  master?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** Every link of netns with its details (`ip -j -d link show`). */
export async function linksOf(netns: string): Promise<LinkView[]> {
  return JSON.parse((await inNetns(netns, 'ip', ['-j', '-d', 'link', 'show'])) || '[]') as LinkView[];
}

/** Every link of netns with its addresses (`ip -j addr show`). */
export async function addressesOf(netns: string): Promise<LinkView[]> {
  return JSON.parse((await inNetns(netns, 'ip', ['-j', 'addr', 'show'])) || '[]') as LinkView[];
}

export interface SavedRule {
  table: string;
  chain: string;
  /** The line as iptables-save prints it (`-A CHAIN ...`). */
  line: string;
  /** The owner in netctl's comment tag (`net:<id>`, `ep:<id>`, `base`), if tagged. */
  owner?: string;
}

export interface SavedTables {
  /** `NETCTL-*` chains, as `table/chain`. */
  chains: string[];
  /** Rules in a NETCTL chain or with netctl's tag. */
  rules: SavedRule[];
}

const TAG = /--comment "?netctl:([a-z]+(?::[0-9a-f]+)?)\//;

/** netctl's chains and rules in netns, as one iptables-save tool (e.g. `ip6tables-legacy-save`) shows them. */
export async function netctlTables(netns: string, save: string): Promise<SavedTables> {
  const out: SavedTables = { chains: [], rules: [] };
  let table = '';
  for (const line of (await inNetns(netns, save, [])).split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith(':NETCTL-')) out.chains.push(`${table}/${line.slice(1).split(' ')[0]}`);
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1] ?? '';
      const owner = TAG.exec(line)?.[1];
      if (owner || chain.startsWith('NETCTL-') || line.includes('NETCTL-'))
        out.rules.push({ table, chain, line, ...(owner ? { owner } : {}) });
    }
  }
  return out;
}
