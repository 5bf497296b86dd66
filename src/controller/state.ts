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
import { type JsonValue, KvConflictError, type KvStore } from '../kv/index.js';
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

  /** Claim a unique name (a create-only write); false if it is taken. */
  private async claimName(k: string, id: string): Promise<boolean> {
    try {
      await this.kv.cas(k, 0, id);
      return true;
    } catch (err) {
      if (err instanceof KvConflictError) return false;
      throw err;
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
    if (!(await this.claimName(key.networkName(network.name), network.id))) {
      throw new Errors.NetworkExists(network.name);
    }
    await this.write(key.network(network.id), network);
  }

  async putNetwork(network: Network): Promise<void> {
    await this.write(key.network(network.id), network);
  }

  async deleteNetwork(network: Network): Promise<void> {
    await this.kv.delete(key.network(network.id));
    if ((await this.networkIdByName(network.name)) === network.id)
      await this.kv.delete(key.networkName(network.name));
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
    if (!(await this.claimName(key.sandboxName(sandbox.name), sandbox.id))) {
      throw new Errors.SandboxExists(sandbox.name);
    }
    await this.write(key.sandbox(sandbox.id), sandbox);
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
    await this.kv.delete(key.sandbox(sandbox.id));
    if ((await this.sandboxIdByName(sandbox.name)) === sandbox.id)
      await this.kv.delete(key.sandboxName(sandbox.name));
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
