/**
 * /etc/hosts of netctl's own sandboxes: each lists its peers on every
 * network it is on, by address and name, as the records have them. One
 * reading for the refresh after a change (HostsFiles) and for
 * reconcile's check of a file that a failed refresh left behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrefix } from '../address.js';
import type { Endpoint, Sandbox } from '../core/model.js';
import { log } from '../log.js';
import { sandboxEtcDir } from '../paths.js';
import { type HostEntry, hostsFile, writeSandboxHosts } from '../sandbox/etc.js';
import { Lane } from '../serial.js';
import type { State } from './state.js';

/**
 * A sandbox's peers: the other endpoints on the networks its endpoints are
 * on, listed when asked: one list at a time. The n lists of a refresh of n
 * files, all held until the last was written (10 MiB at 1,000), outlived
 * the daemon's 1 MiB young generation; every refresh promoted them to old
 * space, and its RSS peaked ~10 MiB higher between full GCs (bench/endpoints).
 */
export function hostsPeers(endpoints: readonly Endpoint[]): (sandboxId: string) => HostEntry[] {
  const onNetwork = new Map<string, Endpoint[]>();
  const ofSandbox = new Map<string, Endpoint[]>();
  const entries = new Map<string, HostEntry>();
  const add = (map: Map<string, Endpoint[]>, k: string, e: Endpoint) => {
    const list = map.get(k);
    if (list) list.push(e);
    else map.set(k, [e]);
  };
  for (const e of endpoints) {
    add(onNetwork, e.networkId, e);
    if (e.sandboxId) add(ofSandbox, e.sandboxId, e);
    // An endpoint is named after its sandbox when it joins (connect).
    if (e.ipv4) entries.set(e.id, { ip: parsePrefix(e.ipv4).ip, names: [e.name, ...e.aliases] });
  }
  return (sandboxId) => {
    const list: HostEntry[] = [];
    for (const own of ofSandbox.get(sandboxId) ?? []) {
      for (const e of onNetwork.get(own.networkId) ?? []) {
        const entry = entries.get(e.id);
        if (entry && e.sandboxId !== sandboxId) list.push(entry);
      }
    }
    return list;
  };
}

/**
 * Whether a sandbox's /etc/hosts differs from what the records say (a
 * refresh that failed after its commit, the store down). A sandbox with
 * no /etc files (a reboot emptied /run) has nothing to differ.
 */
export function hostsAreStale(sandbox: Sandbox, peers: HostEntry[]): boolean {
  let text: string;
  try {
    text = readFileSync(join(sandboxEtcDir(sandbox.id), 'hosts'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  return text !== hostsFile(sandbox.hostname, peers);
}

/** How soon a failed /etc/hosts refresh is tried again. */
const HOSTS_RETRY_MS = 1000;

/** Keeps the /etc/hosts of netctl's own sandboxes following their networks' records. */
export class HostsFiles {
  /** Refreshes, one at a time (see refresh). */
  private readonly lane = new Lane();
  /** Refreshes that failed (networkId/leaving), tried again by one timer. */
  private readonly retries = new Map<string, { networkId: string; leaving: string | undefined }>();
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly state: State) {}

  /**
   * Rewrite /etc/hosts of netctl's own sandboxes on the network, so names
   * resolve both ways; one refresh at a time, each from one reading of the
   * records. The sandboxes are found through the hostsfiles index: a network
   * without any (CNI and Docker sandboxes keep their runtime's /etc) costs
   * one empty listing, whatever its size. With n of them, a change rewrites
   * n files of n lines: /etc/hosts as service discovery cannot be flat
   * (Docker replaced it with its embedded DNS in 1.10 for this reason,
   * moby/libnetwork#767). A sandbox that just left the network is no longer
   * in the index: pass it as leaving, its own file loses the network's peers.
   */
  refresh(networkId: string, leaving?: string): Promise<void> {
    // After a commit: a failed rewrite must not undo what is committed. It is
    // tried again (the store may be back), and gc rewrites what is left stale.
    return this.lane
      .run(() => this.rewrite(networkId, leaving))
      .catch((err: unknown) => {
        log.warn({ err, networkId }, 'rewriting /etc/hosts failed: trying again in 1 s');
        this.retries.set(`${networkId}/${leaving ?? ''}`, { networkId, leaving });
        if (!this.closed) this.retryTimer ??= setTimeout(() => this.retry(), HOSTS_RETRY_MS).unref();
      });
  }

  private retry(): void {
    this.retryTimer = undefined;
    const retries = [...this.retries.values()];
    this.retries.clear();
    for (const { networkId, leaving } of retries) void this.refresh(networkId, leaving);
  }

  private async rewrite(networkId: string, leaving?: string): Promise<void> {
    const ids = await this.state.hostsFileSandboxes(networkId);
    if (leaving && !ids.includes(leaving)) ids.push(leaving);
    const members: Sandbox[] = [];
    for (const id of ids) {
      const sandbox = await this.state.sandbox(id);
      if (sandbox?.ownsNetns) members.push(sandbox);
    }
    if (!members.length) return;
    const peers = hostsPeers(await this.state.endpoints());
    for (const sandbox of members) writeSandboxHosts(sandbox.id, sandbox.hostname, peers(sandbox.id));
  }

  /** No more retries: the process is closing its store. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
  }
}
