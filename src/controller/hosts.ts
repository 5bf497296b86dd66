/**
 * /etc/hosts of netctl's own sandboxes: each lists its peers on every
 * network it is on, by address and name, as the records have them. One
 * reading for the refresh after a change (controller.ts) and for
 * reconcile's check of a file that a failed refresh left behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Endpoint, Sandbox } from '../core/model.js';
import { parsePrefix } from '../kernel/index.js';
import { type HostEntry, hostsFile, sandboxEtcDir } from '../sandbox/etc.js';

/** Each sandbox's peers: the other endpoints on the networks its endpoints are on. */
export function hostsPeers(
  sandboxes: readonly Sandbox[],
  endpoints: readonly Endpoint[],
): Map<string, HostEntry[]> {
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
  const peers = new Map<string, HostEntry[]>();
  for (const sandbox of sandboxes) {
    const list: HostEntry[] = [];
    for (const own of ofSandbox.get(sandbox.id) ?? []) {
      for (const e of onNetwork.get(own.networkId) ?? []) {
        const entry = entries.get(e.id);
        if (entry && e.sandboxId !== sandbox.id) list.push(entry);
      }
    }
    peers.set(sandbox.id, list);
  }
  return peers;
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
