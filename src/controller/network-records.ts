/**
 * The store plumbing of the controller's records, and the networks' (their
 * keys: keys.ts): a network is this host's or, with global scope, the
 * cluster's (docs/overlay.md); state.ts adds endpoints, sandboxes and
 * intents on top.
 */
import type { Network } from '../core/model.js';
import { Errors } from '../errors.js';
import { type JsonValue, type KvCompare, KvConflictError, type KvOp, type KvStore } from '../kv/index.js';
import { claimKeys, clusterKeys, recordKeys as key, networkKeys, ROOT } from './keys.js';

/**
 * An operation's intent that its last record write ends in the same commit:
 * one commit (an fsync) less per connect and disconnect. `ended` tells the
 * operation not to delete it again.
 */
export interface IntentEnd {
  id: string;
  ended: boolean;
  /**
   * Set by a delete once it has begun to tear down: a failure from there
   * on is finished by reconcile (the intent stays), never undone half-way.
   */
  started?: boolean;
}

/** Writes of a claim (or release), with the compares that make them exclusive (claims.ts), to go with a record's commit. */
export interface ClaimOps {
  compare: KvCompare[];
  ops: KvOp[];
}

export const NO_CLAIMS: ClaimOps = { compare: [], ops: [] };

export function mergeOps(...parts: ClaimOps[]): ClaimOps {
  return { compare: parts.flatMap((p) => p.compare), ops: parts.flatMap((p) => p.ops) };
}

export class NetworkRecords {
  /** Ids of global networks seen: a network's scope never changes, so its keys are known from then on. */
  private readonly globalIds = new Set<string>();

  /**
   * @param cluster this host on a shared store: an endpoint of a global
   *   network joined here gets its peer record (keys.ts) in the same
   *   commit as its own, and loses it with its leave
   */
  constructor(
    readonly kv: KvStore,
    readonly cluster?: { hostId: string; address: string },
  ) {}

  /** The scope of a network read or written here before (local when never seen). */
  protected scopeOf(networkId: string): Network['scope'] {
    return this.globalIds.has(networkId) ? 'global' : 'local';
  }

  protected seen<T extends Network | undefined>(network: T): T {
    if (network?.scope === 'global') this.globalIds.add(network.id);
    return network;
  }

  protected netKey(networkId: string): string {
    return networkKeys(this.scopeOf(networkId)).network(networkId);
  }

  /** A network's record: this host's, else the cluster's (global scope). */
  protected async networkEntry(id: string) {
    const local = this.globalIds.has(id) ? undefined : await this.kv.get(key.network(id));
    const entry = local ?? (await this.kv.get(clusterKeys.network(id)));
    if (entry) this.seen(entry.value as unknown as Network);
    return entry;
  }

  protected async all<T>(prefix: string): Promise<T[]> {
    return (await this.kv.list(prefix)).map((e) => e.value as unknown as T);
  }

  protected async value<T>(k: string): Promise<T | undefined> {
    return (await this.kv.get(k))?.value as unknown as T | undefined;
  }

  protected async write(k: string, value: object): Promise<void> {
    await this.kv.put(k, value as unknown as JsonValue);
  }

  /**
   * Write a record and claim its unique name in one transaction: a crash
   * between two writes would leave a name pointing at nothing (and the name
   * taken for good) or a record no name finds. False if the name is taken.
   */
  protected async createNamed(
    recordKey: string,
    nameKey: string,
    id: string,
    record: object,
    aliasKeys: string[] = [],
  ): Promise<boolean> {
    try {
      await this.kv.txn(
        [
          { key: nameKey, version: 0 },
          { key: recordKey, version: 0 },
          ...aliasKeys.map((key) => ({ key, version: 0 })),
        ],
        [
          { type: 'put', key: nameKey, value: id },
          { type: 'put', key: recordKey, value: record as unknown as JsonValue },
          ...aliasKeys.map((key): KvOp => ({ type: 'put', key, value: id })),
        ],
      );
      return true;
    } catch (err) {
      if (err instanceof KvConflictError) return false;
      throw err;
    }
  }

  /** Delete a record and its name (if the name is still its own) in one transaction. */
  protected async deleteNamed(
    recordKey: string,
    nameKey: string,
    id: string,
    aliasKeys: string[] = [],
    end?: IntentEnd,
    recordVersion?: number,
  ): Promise<void> {
    for (;;) {
      const name = await this.kv.get(nameKey);
      const ours = name?.value === id;
      const compare: KvCompare[] = ours && name ? [{ key: nameKey, version: name.version }] : [];
      if (recordVersion !== undefined) compare.push({ key: recordKey, version: recordVersion });
      try {
        await this.kv.txn(compare, [
          { type: 'delete', key: recordKey },
          ...(ours ? [{ type: 'delete' as const, key: nameKey }] : []),
          ...aliasKeys.map((key): KvOp => ({ type: 'delete', key })),
          ...endOps(end),
        ]);
        markEnded(end);
        return;
      } catch (err) {
        // The record changed since the caller read it: the caller's to decide again.
        if (!(err instanceof KvConflictError) || err.key === recordKey) throw err;
      }
    }
  }

  // Networks
  /** This host's networks and the cluster's (on the embedded store the latter are none). */
  async networks(): Promise<Network[]> {
    const [local, global] = await Promise.all([
      this.all<Network>(`${ROOT}/networks/`),
      this.all<Network>(clusterKeys.networks),
    ]);
    for (const n of global) this.seen(n);
    const adopted = global.length ? await this.dockerIdsHere() : new Map<string, string>();
    return [...local, ...global.map((n) => withDockerId(n, adopted.get(n.id)))];
  }

  /** A network as this host sees it: a global one with this host's Docker id (dockerIdsHere). */
  async network(id: string): Promise<Network | undefined> {
    const network = (await this.networkEntry(id))?.value as unknown as Network | undefined;
    if (network?.scope !== 'global' || !this.cluster) return network;
    const adopted = await this.kv.get(clusterKeys.dockerNetwork(id, this.cluster.hostId));
    return withDockerId(network, adopted?.value as string | undefined);
  }

  /**
   * Global networks' ids → this host's Docker network id for each. A global
   * network's record is every host's, but each host's dockerd has a
   * NetworkID of its own for it: the record never holds one (setDockerId);
   * this host's view of it has this host's.
   */
  private async dockerIdsHere(): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    if (!this.cluster) return ids;
    const suffix = `/${this.cluster.hostId}`;
    for (const e of await this.kv.list(clusterKeys.dockerNetworks)) {
      if (!e.key.endsWith(suffix)) continue;
      const networkId = e.key.slice(clusterKeys.dockerNetworks.length, -suffix.length);
      ids.set(networkId, e.value as string);
    }
    return ids;
  }

  /** The hosts whose dockerd adopted global network networkId, and under which Docker id. */
  async dockerAdoptions(networkId: string): Promise<{ hostId: string; dockerId: string }[]> {
    const prefix = clusterKeys.dockerNetworksOf(networkId);
    return (await this.kv.list(prefix)).map((e) => ({
      hostId: e.key.slice(prefix.length),
      dockerId: e.value as string,
    }));
  }

  /** A name is this host's network first, else the cluster's. */
  async networkIdByName(name: string): Promise<string | undefined> {
    return (
      (await this.value<string>(key.networkName(name))) ??
      (await this.value<string>(clusterKeys.networkName(name)))
    );
  }

  /**
   * Record a network with its name, which must be free here and in the
   * cluster (one transaction on a shared store), with `extra` (a VNI) in
   * the same commit.
   */
  async createNetwork(network: Network, extra: ClaimOps = NO_CLAIMS): Promise<void> {
    this.seen(network);
    const keys = networkKeys(network.scope);
    const nameKey = keys.networkName(network.name);
    const otherName =
      network.scope === 'global' ? key.networkName(network.name) : clusterKeys.networkName(network.name);
    const names = [nameKey, otherName, keys.network(network.id)];
    const aliases = network.dockerId ? [key.dockerNetwork(network.dockerId)] : [];
    try {
      await this.kv.txn(
        [...[...names, ...aliases].map((k) => ({ key: k, version: 0 })), ...extra.compare],
        [
          { type: 'put', key: nameKey, value: network.id },
          {
            type: 'put',
            key: keys.network(network.id),
            value: sharedRecord(network) as unknown as JsonValue,
          },
          ...aliases.map((k): KvOp => ({ type: 'put', key: k, value: network.id })),
          ...extra.ops,
        ],
      );
    } catch (err) {
      // A conflict on the caller's own keys (a VNI) is the caller's to answer.
      if (err instanceof KvConflictError && !extra.compare.some((c) => c.key === err.key))
        throw new Errors.NetworkExists(network.name);
      throw err;
    }
  }

  async putNetwork(network: Network): Promise<void> {
    await this.write(networkKeys(this.seen(network).scope).network(network.id), sharedRecord(network));
  }

  /** A network with the version of its record (what claims compare). */
  async networkVersioned(id: string): Promise<{ network: Network; version: number } | undefined> {
    const entry = await this.networkEntry(id);
    return entry ? { network: entry.value as unknown as Network, version: entry.version } : undefined;
  }

  /** Compare: the network's record is still at version (no delete has marked it since). */
  networkGuard(id: string, version: number): ClaimOps {
    return { compare: [{ key: this.netKey(id), version }], ops: [] };
  }

  /** Ids of the endpoints on a network, made or in flight (their member claims). */
  async members(networkId: string): Promise<string[]> {
    const prefix =
      this.scopeOf(networkId) === 'global'
        ? clusterKeys.membersOf(networkId)
        : claimKeys.membersOf(networkId);
    return (await this.kv.list(prefix)).map((e) => e.key.slice(prefix.length));
  }

  /** Delete a network's record and name, and `alsoKeys` (its VNI) in the same commit. */
  async deleteNetwork(network: Network, alsoKeys: string[] = []): Promise<void> {
    const aliases = network.dockerId ? [key.dockerNetwork(network.dockerId)] : [];
    if (network.dockerId && network.scope === 'global' && this.cluster)
      aliases.push(clusterKeys.dockerNetwork(network.id, this.cluster.hostId));
    const keys = networkKeys(this.seen(network).scope);
    await this.deleteNamed(keys.network(network.id), keys.networkName(network.name), network.id, [
      ...aliases,
      ...alsoKeys,
    ]);
  }

  /** The id of the netctl network that Docker network dockerId is, if any. */
  async networkIdByDockerId(dockerId: string): Promise<string | undefined> {
    return this.value<string>(key.dockerNetwork(dockerId));
  }

  /**
   * Record (or, with undefined, forget) the Docker network a netctl network
   * is, with its index entry, in one transaction on the version read (for a
   * global network: this host's, setDockerIdHere).
   * Conflict if another network is that Docker network already.
   */
  async setDockerId(networkId: string, dockerId: string | undefined): Promise<Network | undefined> {
    for (;;) {
      const entry = await this.networkEntry(networkId);
      if (!entry) return undefined;
      const network = entry.value as unknown as Network;
      if (network.scope === 'global') return this.setDockerIdHere(network, entry.version, dockerId);
      const { dockerId: old, ...rest } = network;
      const updated: Network = dockerId ? { ...rest, dockerId } : rest;
      const compare: KvCompare[] = [{ key: this.netKey(networkId), version: entry.version }];
      const ops: KvOp[] = [
        { type: 'put', key: this.netKey(networkId), value: updated as unknown as JsonValue },
      ];
      if (old && old !== dockerId) ops.push({ type: 'delete', key: key.dockerNetwork(old) });
      if (dockerId && old !== dockerId) {
        compare.push({ key: key.dockerNetwork(dockerId), version: 0 });
        ops.push({ type: 'put', key: key.dockerNetwork(dockerId), value: networkId });
      }
      try {
        await this.kv.txn(compare, ops);
        return updated;
      } catch (err) {
        if (!(err instanceof KvConflictError)) throw err;
        const holder = dockerId ? await this.networkIdByDockerId(dockerId) : undefined;
        if (holder && holder !== networkId)
          throw new Errors.NotAdoptable(network.name, dockerId, `netctl network ${holder} is that already`);
      }
    }
  }

  /**
   * setDockerId for a global network: this host's adoption (its cluster key
   * and the host's index entry), never the shared record, so another host's
   * dockerd adopts the same network under its own id. On the record's
   * version read: a delete that marked it since wins.
   */
  private async setDockerIdHere(
    network: Network,
    version: number,
    dockerId: string | undefined,
  ): Promise<Network | undefined> {
    if (!this.cluster)
      throw new Errors.NotAdoptable(
        network.name,
        dockerId ?? '-',
        'this daemon is in no cluster (no --advertise-addr)',
      );
    const adoptKey = clusterKeys.dockerNetwork(network.id, this.cluster.hostId);
    const adopted = await this.kv.get(adoptKey);
    const old = adopted?.value as string | undefined;
    const compare: KvCompare[] = [
      { key: this.netKey(network.id), version },
      { key: adoptKey, version: adopted?.version ?? 0 },
    ];
    const ops: KvOp[] = dockerId
      ? [{ type: 'put', key: adoptKey, value: dockerId }]
      : [{ type: 'delete', key: adoptKey }];
    if (old && old !== dockerId) ops.push({ type: 'delete', key: key.dockerNetwork(old) });
    if (dockerId && old !== dockerId) {
      compare.push({ key: key.dockerNetwork(dockerId), version: 0 });
      ops.push({ type: 'put', key: key.dockerNetwork(dockerId), value: network.id });
    }
    try {
      await this.kv.txn(compare, ops);
    } catch (err) {
      if (!(err instanceof KvConflictError)) throw err;
      const holder = dockerId ? await this.networkIdByDockerId(dockerId) : undefined;
      if (holder && holder !== network.id)
        throw new Errors.NotAdoptable(network.name, dockerId, `netctl network ${holder} is that already`);
      return this.setDockerId(network.id, dockerId); // changed meanwhile: read again
    }
    return withDockerId(network, dockerId);
  }
}

/** A network with dockerId (none with undefined). */
function withDockerId(network: Network, dockerId: string | undefined): Network {
  const { dockerId: _, ...rest } = network;
  return dockerId ? { ...rest, dockerId } : rest;
}

/** What a network's record holds: a global one's no host's Docker id (dockerIdsHere). */
const sharedRecord = (network: Network): Network =>
  network.scope === 'global' ? withDockerId(network, undefined) : network;

export const endOps = (end: IntentEnd | undefined): KvOp[] =>
  end ? [{ type: 'delete', key: key.intent(end.id) }] : [];

export function markEnded(end: IntentEnd | undefined): void {
  if (end) end.ended = true;
}
