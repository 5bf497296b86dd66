/**
 * The controller's records in the KV store (their keys: keys.ts):
 * networks (network-records.ts), endpoints, sandboxes, name indexes,
 * intents, and the claims written with them — each read and write, every
 * multi-key change one transaction.
 */
import type { Endpoint, Network, Peer, Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';
import { type JsonValue, type KvCompare, KvConflictError, type KvOp } from '../kv/index.js';
import type { Intent } from './intents.js';
import { claimKeys, clusterKeys, recordKeys as key, ROOT } from './keys.js';
import {
  type ClaimOps,
  endOps,
  type IntentEnd,
  markEnded,
  NetworkRecords,
  NO_CLAIMS,
} from './network-records.js';

export { type ClaimOps, type IntentEnd, mergeOps, NO_CLAIMS } from './network-records.js';

export class State extends NetworkRecords {
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

  /** Apply claim writes (with their compares) alone. */
  async applyClaims(claim: ClaimOps): Promise<void> {
    if (claim.ops.length) await this.kv.txn(claim.compare, claim.ops);
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
