/**
 * Looking at an overlay from outside netctl: what each simulated host's
 * kernel holds for a network's remote peers (`bridge fdb` and `ip neigh`
 * on its VXLAN device, read in the host's netns), a don't-fragment ping
 * (iputils: busybox's ping cannot set DF) and the IP fragmentation
 * counters of a namespace. The hosts are bench/lib/cluster.ts's.
 */
import { execFile } from 'node:child_process';
import type { ClusterHost } from '../../../bench/lib/cluster.js';
import { clusterKeys } from '../../../src/controller/keys.js';
import type { Endpoint, Peer } from '../../../src/core/model.js';
import { vxlanName } from '../../../src/drivers/overlay/overlay.js';
import { CLUSTER_ROOT, openStore } from '../../../src/kv/index.js';
import { run } from '../../helpers/tools.js';

/** An endpoint of a test sandbox: where it runs, its netns, address and MAC. */
export interface Placed {
  host: ClusterHost;
  network: string;
  sandbox: string;
  /** The sandbox's netns path. */
  netns: string;
  /** Its address on the network, without the prefix length. */
  ip: string;
  mac: string;
}

export function placed(
  host: ClusterHost,
  network: string,
  sandbox: { name: string; key: string },
  endpoint: Endpoint,
): Placed {
  if (!endpoint.ipv4) throw new Error(`${sandbox.name} got no IPv4 address on ${network}`);
  return {
    host,
    network,
    sandbox: sandbox.name,
    netns: sandbox.key,
    ip: endpoint.ipv4.slice(0, endpoint.ipv4.indexOf('/')),
    mac: endpoint.mac,
  };
}

interface FdbJson {
  mac: string;
  dst?: string;
  master?: string;
  flags?: string[];
  state?: string;
}

interface NeighJson {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/**
 * The entries of a network's VXLAN device on a host for these endpoints,
 * one line each, sorted: `MAC dst VTEP` (the device's own table), `MAC
 * master` (the bridge's entry sending the MAC to the tunnel), `IP lladdr
 * MAC` (a permanent neighbour; another state is appended). FDB entries are
 * matched by MAC, neighbours by MAC or IP. None when the device is gone.
 */
export async function peerEntries(
  host: ClusterHost,
  networkId: string,
  peers: Pick<Placed, 'mac' | 'ip'>[],
): Promise<string[]> {
  const dev = vxlanName(networkId);
  const links = JSON.parse(await host.exec('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  if (!links.some((l) => l.ifname === dev)) return [];
  const macs = new Set(peers.map((p) => p.mac));
  const ips = new Set(peers.map((p) => p.ip));
  const fdb = JSON.parse(await host.exec('bridge', ['-j', 'fdb', 'show', 'dev', dev])) as FdbJson[];
  const neigh = JSON.parse(await host.exec('ip', ['-j', 'neigh', 'show', 'dev', dev])) as NeighJson[];
  const lines: string[] = [];
  for (const e of fdb) {
    if (!macs.has(e.mac)) continue;
    if (e.dst) lines.push(`${e.mac} dst ${e.dst}`);
    else if (e.master) lines.push(`${e.mac} master`);
    else lines.push(`${e.mac} ${e.state ?? ''} ${(e.flags ?? []).join(',')}`);
  }
  for (const n of neigh) {
    if (!ips.has(n.dst) && !(n.lladdr && macs.has(n.lladdr))) continue;
    const state = n.state?.join(',') ?? '';
    lines.push(`${n.dst} lladdr ${n.lladdr ?? '-'}${state === 'PERMANENT' ? '' : ` ${state}`}`);
  }
  return lines.sort();
}

/** What every other host should hold for these endpoints (see peerEntries). */
export function expectedEntries(peers: Placed[]): string[] {
  return peers
    .flatMap((p) => [`${p.mac} dst ${p.host.address}`, `${p.mac} master`, `${p.ip} lladdr ${p.mac}`])
    .sort();
}

export interface PingOutcome {
  ok: boolean;
  /** stdout and stderr together: iputils prints some errors on each. */
  output: string;
}

/**
 * One iputils ping from a netns with don't-fragment set (`-M do`) and a
 * payload of `size` bytes: the IP packet is size + 28.
 */
export function pingDf(netns: string, target: string, size: number): Promise<PingOutcome> {
  const args = [`--net=${netns}`, '--', 'ping', '-M', 'do', '-s', String(size), '-c1', '-W1', target];
  return new Promise((resolve) => {
    execFile('nsenter', args, { encoding: 'utf8', timeout: 5000 }, (error, stdout, stderr) =>
      resolve({ ok: !error, output: `${stdout}${stderr}` }),
    );
  });
}

/** Throws unless `ping` is iputils' (which can set DF), saying what to install. */
export function assertIputilsPing(): void {
  let version = '';
  try {
    version = run('ping', ['-V']);
  } catch (err) {
    version = String(err);
  }
  if (!version.includes('iputils'))
    throw new Error(
      `the DF pings need iputils' ping (Debian: iputils-ping); ping -V says: ${version.trim()}`,
    );
}

/** The IP fragmentation counters of a netns (/proc/net/snmp is the reader's netns's). */
export function fragmentCounters(netns: string): { fragCreates: number; reasmReqds: number } {
  const snmp = run('cat', ['/proc/net/snmp'], { netns }).split('\n');
  const [names, values] = snmp.filter((line) => line.startsWith('Ip:')).map((line) => line.split(/\s+/));
  if (!names || !values) throw new Error(`no Ip: lines in /proc/net/snmp of ${netns}`);
  const field = (name: string) => Number(values[names.indexOf(name)]);
  return { fragCreates: field('FragCreates'), reasmReqds: field('ReasmReqds') };
}

/**
 * A global network's records in the shared store itself, not through a
 * daemon: its peers' addresses (one per endpoint on any host) and the
 * addresses its pool holds for someone (the cluster IPAM's address records).
 */
export async function clusterRecords(
  url: string,
  networkId: string,
  subnet: string,
): Promise<{ peers: string[]; held: string[] }> {
  const kv = await openStore(url);
  try {
    const peers = (await kv.list(clusterKeys.peersOf(networkId))).map(
      (e) => (e.value as unknown as Peer).ipv4 ?? '',
    );
    // netctl/v1/cluster/ipam/addrs/global/<subnet with _ for />/<address> (src/ipam/store.ts).
    const held = (await kv.list(`${CLUSTER_ROOT}/ipam/addrs/global/${subnet.replace('/', '_')}/`)).map((e) =>
      e.key.slice(e.key.lastIndexOf('/') + 1),
    );
    return { peers, held };
  } finally {
    await kv.close();
  }
}
