/**
 * The controller's records in the KV store: networks, endpoints, sandboxes,
 * name indexes and intents. The only file that knows the key layout.
 *
 *   netctl/v1/networks/<id>            Network
 *   netctl/v1/names/networks/<name>    network id (created once: names are unique)
 *   netctl/v1/endpoints/<id>           Endpoint
 *   netctl/v1/sandboxes/<id>           Sandbox
 *   netctl/v1/names/sandboxes/<name>   sandbox id
 *   netctl/v1/intents/<id>             Intent (an operation in flight)
 */
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import { Errors } from '../errors.js';
import { type JsonValue, KvConflictError, type KvOp, type KvStore } from '../kv/index.js';
import type { Intent } from './intents.js';

const ROOT = 'netctl/v1';
const key = {
  network: (id: string) => `${ROOT}/networks/${id}`,
  networkName: (name: string) => `${ROOT}/names/networks/${name}`,
  endpoint: (id: string) => `${ROOT}/endpoints/${id}`,
  sandbox: (id: string) => `${ROOT}/sandboxes/${id}`,
  sandboxName: (name: string) => `${ROOT}/names/sandboxes/${name}`,
  intent: (id: string) => `${ROOT}/intents/${id}`,
};

export class State {
  constructor(readonly kv: KvStore) {}

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
  ): Promise<boolean> {
    try {
      await this.kv.txn(
        [
          { key: nameKey, version: 0 },
          { key: recordKey, version: 0 },
        ],
        [
          { type: 'put', key: nameKey, value: id },
          { type: 'put', key: recordKey, value: record as unknown as JsonValue },
        ],
      );
      return true;
    } catch (err) {
      if (err instanceof KvConflictError) return false;
      throw err;
    }
  }

  /** Delete a record and its name (if the name is still its own) in one transaction. */
  private async deleteNamed(recordKey: string, nameKey: string, id: string): Promise<void> {
    for (;;) {
      const name = await this.kv.get(nameKey);
      const ours = name?.value === id;
      try {
        await this.kv.txn(ours && name ? [{ key: nameKey, version: name.version }] : [], [
          { type: 'delete', key: recordKey },
          ...(ours ? [{ type: 'delete' as const, key: nameKey }] : []),
        ]);
        return;
      } catch (err) {
        if (!(err instanceof KvConflictError)) throw err;
      }
    }
  }

  // Networks
  networks(): Promise<Network[]> {
    return this.all<Network>(`${ROOT}/networks/`);
  }

  network(id: string): Promise<Network | undefined> {
    return this.value<Network>(key.network(id));
  }

  async networkIdByName(name: string): Promise<string | undefined> {
    return this.value<string>(key.networkName(name));
  }

  async createNetwork(network: Network): Promise<void> {
    if (
      !(await this.createNamed(key.network(network.id), key.networkName(network.name), network.id, network))
    ) {
      throw new Errors.NetworkExists(network.name);
    }
  }

  async putNetwork(network: Network): Promise<void> {
    await this.write(key.network(network.id), network);
  }

  async deleteNetwork(network: Network): Promise<void> {
    await this.deleteNamed(key.network(network.id), key.networkName(network.name), network.id);
  }

  // Endpoints
  endpoints(): Promise<Endpoint[]> {
    return this.all<Endpoint>(`${ROOT}/endpoints/`);
  }

  endpoint(id: string): Promise<Endpoint | undefined> {
    return this.value<Endpoint>(key.endpoint(id));
  }

  async putEndpoint(endpoint: Endpoint): Promise<void> {
    await this.write(key.endpoint(endpoint.id), endpoint);
  }

  async deleteEndpoint(id: string): Promise<void> {
    await this.kv.delete(key.endpoint(id));
  }

  /**
   * Write an endpoint record and add it to its sandbox's list in one
   * transaction (retried on a concurrent change of the sandbox), so a crash
   * never leaves the two disagreeing. Without a sandbox record, only the endpoint.
   */
  async addEndpoint(endpoint: Endpoint): Promise<void> {
    await this.withSandbox(
      endpoint,
      { type: 'put', key: key.endpoint(endpoint.id), value: endpoint as unknown as JsonValue },
      (ids) => [...ids.filter((id) => id !== endpoint.id), endpoint.id],
    );
  }

  /** Delete an endpoint record and drop it from its sandbox's list in one transaction. */
  async removeEndpoint(endpoint: Endpoint): Promise<void> {
    await this.withSandbox(endpoint, { type: 'delete', key: key.endpoint(endpoint.id) }, (ids) =>
      ids.filter((id) => id !== endpoint.id),
    );
  }

  private async withSandbox(
    endpoint: Endpoint,
    op: KvOp,
    endpointIds: (ids: string[]) => string[],
  ): Promise<void> {
    for (;;) {
      const entry = endpoint.sandboxId ? await this.kv.get(key.sandbox(endpoint.sandboxId)) : undefined;
      if (!entry) {
        await this.kv.txn([], [op]);
        return;
      }
      const sandbox = entry.value as unknown as Sandbox;
      const updated = { ...sandbox, endpointIds: endpointIds(sandbox.endpointIds) };
      try {
        await this.kv.txn(
          [{ key: entry.key, version: entry.version }],
          [op, { type: 'put', key: entry.key, value: updated as unknown as JsonValue }],
        );
        return;
      } catch (err) {
        if (!(err instanceof KvConflictError)) throw err;
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

  async deleteSandbox(sandbox: Sandbox): Promise<void> {
    await this.deleteNamed(key.sandbox(sandbox.id), key.sandboxName(sandbox.name), sandbox.id);
  }

  // Intents
  intents(): Promise<Intent[]> {
    return this.all<Intent>(`${ROOT}/intents/`);
  }

  async putIntent(intent: Intent): Promise<void> {
    await this.write(key.intent(intent.id), intent);
  }

  async deleteIntent(id: string): Promise<void> {
    await this.kv.delete(key.intent(id));
  }
}
