/**
 * The controller's records in the KV store (their keys: keys.ts):
 * networks, endpoints, sandboxes, name indexes, intents, and the claims
 * written with them — each read and write, every multi-key change one
 * transaction.
 */
import type { Endpoint, Network, Peer, Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';
import { type JsonValue, type KvCompare, KvConflictError, type KvOp, type KvStore } from '../kv/index.js';
import type { Intent } from './intents.js';
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

export class State {
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

  /** The peer record that goes with an endpoint's write: put while joined here, else deleted. */
  private peerOps(endpoint: Pick<Endpoint, 'id' | 'networkId'> & Partial<Endpoint>, joined: boolean): KvOp[] {
    if (this.scopeOf(endpoint.networkId) !== 'global') return [];
    const key = clusterKeys.peer(endpoint.networkId, endpoint.id);
    if (!joined || !this.cluster || !endpoint.sandboxId || !endpoint.mac) return [{ type: 'delete', key }];
    const peer: Peer = {
      networkId: endpoint.networkId,
      endpointId: endpoint.id,
      host: this.cluster.hostId,
      vtep: this.cluster.address,
      mac: endpoint.mac,
      ...(endpoint.ipv4 ? { ipv4: endpoint.ipv4.split('/')[0]! } : {}),
      ...(endpoint.ipv6 ? { ipv6: endpoint.ipv6.split('/')[0]! } : {}),
    };
    return [{ type: 'put', key, value: peer as unknown as JsonValue }];
  }

  /** The scope of a network read or written here before (local when never seen). */
  private scopeOf(networkId: string): Network['scope'] {
    return this.globalIds.has(networkId) ? 'global' : 'local';
  }

  private seen<T extends Network | undefined>(network: T): T {
    if (network?.scope === 'global') this.globalIds.add(network.id);
    return network;
  }

  private netKey(networkId: string): string {
    return networkKeys(this.scopeOf(networkId)).network(networkId);
  }

  /** A network's record: this host's, else the cluster's (global scope). */
  private async networkEntry(id: string) {
    const local = this.globalIds.has(id) ? undefined : await this.kv.get(key.network(id));
    const entry = local ?? (await this.kv.get(clusterKeys.network(id)));
    if (entry) this.seen(entry.value as unknown as Network);
    return entry;
  }

  private async all<T>(prefix: string): Promise<T[]> {
    return (await this.kv.list(prefix)).map((e) => e.value as unknown as T);
  }

  private async value<T>(k: string): Promise<T | undefined> {
    return (await this.kv.get(k))?.value as unknown as T | undefined;
  }

  private async write(k: string, value: object): Promise<void> {
    await this.kv.put(k, value as unknown as JsonValue);
  }

  /**
   * Write a record and claim its unique name in one transaction: a crash
   * between two writes would leave a name pointing at nothing (and the name
   * taken for good) or a record no name finds. False if the name is taken.
   */
  private async createNamed(
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
  private async deleteNamed(
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
    return [...local, ...global];
  }

  async network(id: string): Promise<Network | undefined> {
    return (await this.networkEntry(id))?.value as unknown as Network | undefined;
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
          { type: 'put', key: keys.network(network.id), value: network as unknown as JsonValue },
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
    await this.write(networkKeys(this.seen(network).scope).network(network.id), network);
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

  /** Writes that set or clear a network's or sandbox's `deleting` mark, on the version read. */
  markDeleting(record: Network | Sandbox, version: number, deleting: boolean): ClaimOps {
    const recordKey = 'driver' in record ? this.netKey(record.id) : key.sandbox(record.id);
    const { deleting: _, ...rest } = record;
    const value = deleting ? { ...rest, deleting: true } : rest;
    return {
      compare: [{ key: recordKey, version }],
      ops: [{ type: 'put', key: recordKey, value: value as unknown as JsonValue }],
    };
  }

  /** A sandbox with the version of its record (what claims compare). */
  async sandboxVersioned(id: string): Promise<{ sandbox: Sandbox; version: number } | undefined> {
    const entry = await this.kv.get(key.sandbox(id));
    return entry ? { sandbox: entry.value as unknown as Sandbox, version: entry.version } : undefined;
  }

  /** Compare: the sandbox's record is still at version (no delete has marked it since). */
  sandboxGuard(id: string, version: number): ClaimOps {
    return { compare: [{ key: key.sandbox(id), version }], ops: [] };
  }

  /** Owners of a sandbox's attachments, made or in flight (its attach claims). */
  async attachments(sandboxId: string): Promise<string[]> {
    return (await this.kv.list(claimKeys.attachOf(sandboxId))).map((e) => e.value as string);
  }

  /** Ids of the endpoints on a network, made or in flight (their member claims). */
  async members(networkId: string): Promise<string[]> {
    const prefix =
      this.scopeOf(networkId) === 'global'
        ? clusterKeys.membersOf(networkId)
        : claimKeys.membersOf(networkId);
    return (await this.kv.list(prefix)).map((e) => e.key.slice(prefix.length));
  }

  /** Apply claim writes (with their compares) alone. */
  async applyClaims(claim: ClaimOps): Promise<void> {
    if (claim.ops.length) await this.kv.txn(claim.compare, claim.ops);
  }

  /** Delete a network's record and name, and `alsoKeys` (its VNI) in the same commit. */
  async deleteNetwork(network: Network, alsoKeys: string[] = []): Promise<void> {
    const aliases = network.dockerId ? [key.dockerNetwork(network.dockerId)] : [];
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
   * is, with its index entry, in one transaction on the version read.
   * Conflict if another network is that Docker network already.
   */
  async setDockerId(networkId: string, dockerId: string | undefined): Promise<Network | undefined> {
    for (;;) {
      const entry = await this.networkEntry(networkId);
      if (!entry) return undefined;
      const network = entry.value as unknown as Network;
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

  // Endpoints
  endpoints(): Promise<Endpoint[]> {
    return this.all<Endpoint>(`${ROOT}/endpoints/`);
  }

  endpoint(id: string): Promise<Endpoint | undefined> {
    return this.value<Endpoint>(key.endpoint(id));
  }

  /**
   * Record a new endpoint and, in the same transaction, add it to its
   * sandbox's endpointIds: the sandbox record then always lists exactly its
   * endpoints, so they are found without listing every endpoint. A sandbox
   * netctl made is also entered in the network's hostsfiles index. Throws
   * SandboxNotFound if the sandbox is gone.
   */
  async addEndpoint(endpoint: Endpoint, end?: IntentEnd, extra: ClaimOps = NO_CLAIMS): Promise<void> {
    const { sandboxId } = endpoint;
    const record: KvOp[] = [
      { type: 'put', key: key.endpoint(endpoint.id), value: endpoint as unknown as JsonValue },
      ...this.peerOps(endpoint, true),
      ...endOps(end),
      ...extra.ops,
    ];
    if (!sandboxId) {
      await this.kv.txn(extra.compare, record);
      markEnded(end);
      return;
    }
    await this.withSandbox(sandboxId, extra.compare, (sandbox) => {
      // Gone, or being removed (its delete marked it): this endpoint must not outlive it.
      if (!sandbox || sandbox.deleting) throw new Errors.SandboxNotFound(sandboxId);
      const ops: KvOp[] = [...record];
      if (sandbox.ownsNetns)
        ops.push({ type: 'put', key: key.hostsFile(endpoint.networkId, sandboxId), value: endpoint.id });
      // A record written again (an endpoint made first and joined later, a join repeated) is listed once.
      const endpointIds = sandbox.endpointIds.includes(endpoint.id)
        ? sandbox.endpointIds
        : [...sandbox.endpointIds, endpoint.id];
      return { sandbox: { ...sandbox, endpointIds }, ops };
    });
    markEnded(end);
  }

  /** An endpoint with the version of its record. */
  async endpointVersioned(id: string): Promise<{ endpoint: Endpoint; version: number } | undefined> {
    const entry = await this.kv.get(key.endpoint(id));
    return entry ? { endpoint: entry.value as unknown as Endpoint, version: entry.version } : undefined;
  }

  /** Compare: the endpoint's record is still at version (what its writer read). */
  endpointGuard(id: string, version: number): ClaimOps {
    return { compare: [{ key: key.endpoint(id), version }], ops: [] };
  }

  /** Rewrite an endpoint's record (its sandbox unchanged), with claim writes in the same transaction. */
  async putEndpoint(endpoint: Endpoint, extra: ClaimOps = NO_CLAIMS): Promise<void> {
    await this.kv.txn(extra.compare, [
      { type: 'put', key: key.endpoint(endpoint.id), value: endpoint as unknown as JsonValue },
      ...extra.ops,
    ]);
  }

  /**
   * An endpoint leaves its sandbox but stays: its record without the
   * sandbox, and the sandbox's endpointIds (and hostsfiles index) without
   * it, in one transaction.
   */
  async detachEndpoint(endpoint: Endpoint, extra: ClaimOps = NO_CLAIMS): Promise<Endpoint> {
    const { sandboxId, ifname: _, ...detached } = endpoint;
    const ops: KvOp[] = [
      { type: 'put', key: key.endpoint(endpoint.id), value: detached as unknown as JsonValue },
      ...this.peerOps(endpoint, false),
      ...extra.ops,
    ];
    if (!sandboxId) {
      await this.kv.txn(extra.compare, ops);
      return detached;
    }
    ops.push({ type: 'delete', key: key.hostsFile(endpoint.networkId, sandboxId) });
    await this.withSandbox(sandboxId, extra.compare, (sandbox) => ({
      sandbox: sandbox?.endpointIds.includes(endpoint.id)
        ? { ...sandbox, endpointIds: sandbox.endpointIds.filter((id) => id !== endpoint.id) }
        : undefined,
      ops,
    }));
    return detached;
  }

  /** Delete an endpoint's record and drop it from its sandbox's endpointIds, in one transaction. */
  async deleteEndpoint(
    endpoint: Pick<Endpoint, 'id' | 'networkId' | 'sandboxId'>,
    end?: IntentEnd,
    extra: ClaimOps = NO_CLAIMS,
  ): Promise<void> {
    const ops: KvOp[] = [
      { type: 'delete', key: key.endpoint(endpoint.id) },
      ...this.peerOps(endpoint, false),
      ...endOps(end),
      ...extra.ops,
    ];
    if (!endpoint.sandboxId) {
      await this.kv.txn(extra.compare, ops);
      markEnded(end);
      return;
    }
    // A sandbox joins a network once: its index entry goes with this endpoint.
    ops.push({ type: 'delete', key: key.hostsFile(endpoint.networkId, endpoint.sandboxId) });
    await this.withSandbox(endpoint.sandboxId, extra.compare, (sandbox) => ({
      sandbox: sandbox?.endpointIds.includes(endpoint.id)
        ? { ...sandbox, endpointIds: sandbox.endpointIds.filter((id) => id !== endpoint.id) }
        : undefined,
      ops,
    }));
    markEnded(end);
  }

  /** Ids of netctl's own sandboxes on a network (the hostsfiles index): whose /etc/hosts lists its endpoints. */
  async hostsFileSandboxes(networkId: string): Promise<string[]> {
    const prefix = key.hostsFiles(networkId);
    return (await this.kv.list(prefix)).map((e) => e.key.slice(prefix.length));
  }

  /** The endpoints joined to a sandbox (from its record: one read per endpoint). */
  async sandboxEndpoints(sandbox: Pick<Sandbox, 'endpointIds'>): Promise<Endpoint[]> {
    const endpoints = await Promise.all(sandbox.endpointIds.map((id) => this.endpoint(id)));
    return endpoints.filter((e): e is Endpoint => e !== undefined);
  }

  /**
   * Apply ops together with a change of a sandbox record (none when change
   * returns no sandbox), on the version read: retried on a concurrent write
   * of the sandbox. A failed compare of the caller's own is the caller's to
   * retry (its ops were computed from what it read).
   */
  private async withSandbox(
    id: string,
    compares: KvCompare[],
    change: (sandbox: Sandbox | undefined) => { sandbox: Sandbox | undefined; ops: KvOp[] },
  ): Promise<void> {
    for (;;) {
      const entry = await this.kv.get(key.sandbox(id));
      const { sandbox, ops } = change(entry?.value as unknown as Sandbox | undefined);
      const compare: KvCompare[] = [{ key: key.sandbox(id), version: entry?.version ?? 0 }, ...compares];
      const writes: KvOp[] = sandbox
        ? [...ops, { type: 'put', key: key.sandbox(id), value: sandbox as unknown as JsonValue }]
        : ops;
      try {
        await this.kv.txn(compare, writes);
        return;
      } catch (err) {
        if (!(err instanceof KvConflictError) || err.key !== key.sandbox(id)) throw err;
      }
    }
  }

  // Sandboxes
  sandboxes(): Promise<Sandbox[]> {
    return this.all<Sandbox>(`${ROOT}/sandboxes/`);
  }

  sandbox(id: string): Promise<Sandbox | undefined> {
    return this.value<Sandbox>(key.sandbox(id));
  }

  async sandboxIdByName(name: string): Promise<string | undefined> {
    return this.value<string>(key.sandboxName(name));
  }

  async createSandbox(sandbox: Sandbox): Promise<void> {
    if (
      !(await this.createNamed(key.sandbox(sandbox.id), key.sandboxName(sandbox.name), sandbox.id, sandbox))
    ) {
      throw new Errors.SandboxExists(sandbox.name);
    }
  }

  /** Read-modify-write of a sandbox record, retried on concurrent change; undefined if it is gone. */
  async updateSandbox(id: string, change: (sandbox: Sandbox) => Sandbox): Promise<Sandbox | undefined> {
    for (;;) {
      const entry = await this.kv.get(key.sandbox(id));
      if (!entry) return undefined;
      const updated = change(entry.value as unknown as Sandbox);
      try {
        await this.kv.cas(key.sandbox(id), entry.version, updated as unknown as JsonValue);
        return updated;
      } catch (err) {
        if (!(err instanceof KvConflictError)) throw err;
      }
    }
  }

  /** Delete a sandbox record and its name; with end, its delete's intent in the same commit. */
  async deleteSandbox(sandbox: Sandbox, end?: IntentEnd): Promise<void> {
    await this.deleteNamed(key.sandbox(sandbox.id), key.sandboxName(sandbox.name), sandbox.id, [], end);
  }

  /** Delete a sandbox record and its name iff the record is still at version (else KvConflictError). */
  async deleteSandboxAt(sandbox: Sandbox, version: number): Promise<void> {
    await this.deleteNamed(
      key.sandbox(sandbox.id),
      key.sandboxName(sandbox.name),
      sandbox.id,
      [],
      undefined,
      version,
    );
  }

  // Intents
  intents(): Promise<Intent[]> {
    return this.all<Intent>(`${ROOT}/intents/`);
  }

  /** Record an intent, with the claims its operation takes, in one transaction. */
  async putIntent(intent: Intent, claim: ClaimOps = NO_CLAIMS): Promise<void> {
    await this.kv.txn(claim.compare, [
      { type: 'put', key: key.intent(intent.id), value: intent as unknown as JsonValue },
      ...claim.ops,
    ]);
  }

  /** Drop an intent, with the claims its undone operation releases, in one transaction. */
  async deleteIntent(id: string, release: ClaimOps = NO_CLAIMS): Promise<void> {
    await this.kv.txn(release.compare, [{ type: 'delete', key: key.intent(id) }, ...release.ops]);
  }
}

const endOps = (end: IntentEnd | undefined): KvOp[] =>
  end ? [{ type: 'delete', key: key.intent(end.id) }] : [];

function markEnded(end: IntentEnd | undefined): void {
  if (end) end.ended = true;
}
