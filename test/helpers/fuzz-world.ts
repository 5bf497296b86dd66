/**
 * The small worlds fuzz runs start from, and the way back to them after an
 * accepted call (see fuzz-harness.ts, runGuarded): what the call made goes,
 * and if it changed the world itself (deleted a network, recorded a pid)
 * the world is made again.
 */
import type { NetctlApi } from '../../src/controller/api.js';
import { idRef, storeSnapshot } from './fuzz-harness.js';

/**
 * The store as the world left it: `intact()` when every entry it had is
 * still there with its value (new entries, such as a pool a CNI IPAM call
 * keeps for good, do not count: the fuzz only compares a world with itself).
 */
export class StoreBaseline {
  private lines = new Set<string>();

  constructor(private readonly stateDir: string) {}

  async take(): Promise<void> {
    this.lines = new Set(await storeSnapshot(this.stateDir));
  }

  async intact(): Promise<boolean> {
    const now = new Set(await storeSnapshot(this.stateDir));
    return [...this.lines].every((line) => now.has(line));
  }
}

/** The world of the REST and CLI fuzz: two networks, a sandbox alone and one connected with a published port. */
export interface ApiWorld {
  networks: string[];
  sandboxes: string[];
  /** Their ids now, by name: what idRef placeholders resolve to (a world made again has new ones). */
  ids: Map<string, string>;
  /** The sandboxes' netns paths (named after the sandbox, so the same in a world made again). */
  netnsPaths: string[];
  /** Ways to name them: names, whole ids, id prefixes (placeholders), and two that name nothing. */
  refs: string[];
  /** Remove what is not the world's; make it again if it changed. */
  restore(): Promise<void>;
}

export async function apiWorld(api: NetctlApi, stateDir: string): Promise<ApiWorld> {
  const networks = ['fzbase', 'fzother'];
  const sandboxes = ['fzsb', 'fzsb2'];
  const build = async () => {
    await api.createNetwork({ name: 'fzbase', ipam: { config: [{ subnet: '10.77.0.0/24' }] } });
    await api.createNetwork({
      name: 'fzother',
      internal: true,
      ipam: { config: [{ subnet: '10.78.0.0/24' }] },
    });
    await api.createSandbox({ name: 'fzsb', labels: { role: 'alone' } });
    await api.createSandbox({ name: 'fzsb2', hostname: 'fzsb2' });
    await api.connect({
      network: 'fzbase',
      sandbox: 'fzsb2',
      portMappings: [{ hostPort: 18080, containerPort: 80 }],
    });
  };
  const teardown = async () => {
    for (const s of await api.listSandboxes()) await api.deleteSandbox(s.id);
    for (const n of await api.listNetworks()) await api.deleteNetwork(n.id);
  };
  const ids = new Map<string, string>();
  const readIds = async () => {
    ids.clear();
    for (const o of [...(await api.listNetworks()), ...(await api.listSandboxes())]) ids.set(o.name, o.id);
  };
  const baseline = new StoreBaseline(stateDir);
  await build();
  await baseline.take();
  await readIds();
  const named = [...networks, ...sandboxes];
  return {
    networks,
    sandboxes,
    ids,
    netnsPaths: (await api.listSandboxes()).map((s) => s.key),
    refs: [...named, ...named.flatMap((n) => [idRef(n, 64), idRef(n, 12), idRef(n, 2)]), 'prune', 'missing'],
    async restore() {
      for (const s of await api.listSandboxes()) {
        if (!sandboxes.includes(s.name)) await api.deleteSandbox(s.id);
        else
          for (const e of (await api.inspectSandbox(s.id)).endpoints)
            if (!(s.name === 'fzsb2' && e.networkName === 'fzbase')) await api.disconnect(e.networkId, s.id);
      }
      for (const n of await api.listNetworks()) if (!networks.includes(n.name)) await api.deleteNetwork(n.id);
      if (await baseline.intact()) return;
      await teardown();
      await build();
      await baseline.take();
      await readIds();
    },
  };
}
