/**
 * kill -9 of the real daemon at every step of every multi-step operation
 * (NETCTL_CRASH_AT names the step, intents.ts crashPoint), then a restart
 * without the switch: its start-up reconcile must leave exactly what was
 * there before an interrupted create, or exactly what a completed delete
 * leaves — in the kernel and in the store — and the operation must work
 * when tried again.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { NetctlApi } from '../../../src/controller/api.js';
import { EMPTY, type Inventory } from '../../helpers/inventory.js';
import { ping } from '../../helpers/ping.js';
import {
  actionKeys,
  assertBuilt,
  Daemon,
  daemonInventory,
  expectMatchesRecords,
  gcCli,
  leftoverKeys,
  testDir,
  withLocal,
} from './daemon-fixture.js';

beforeAll(assertBuilt);

const WEB = { name: 'web', ipam: { config: [{ subnet: '10.88.0.0/24' }] } };
const KEEP = { name: 'keep', ipam: { config: [{ subnet: '10.77.0.0/24' }] } };
const PUBLISH = [{ proto: 'tcp' as const, hostPort: 8080, containerPort: 80 }];
const CONNECT = {
  network: 'web',
  sandbox: 's1',
  ipv4: '10.88.0.10',
  portMappings: [{ proto: 'tcp' as const, hostPort: 8081, containerPort: 80 }],
};

/**
 * Bystanders: a network with two sandboxes on it (one publishing a port)
 * that no crash or reconcile may touch, and that must still carry traffic.
 */
async function bystanders(api: NetctlApi): Promise<void> {
  await api.createNetwork(KEEP);
  await api.createSandbox({ name: 'k1' });
  await api.createSandbox({ name: 'k2' });
  await api.connect({ network: 'keep', sandbox: 'k1', ipv4: '10.77.0.11', portMappings: PUBLISH });
  await api.connect({ network: 'keep', sandbox: 'k2', ipv4: '10.77.0.12' });
}

async function expectBystandersWork(): Promise<void> {
  expect(await ping('/run/netns/netctl-k1', '10.77.0.12')).toBe(true);
}

async function removeAll(api: NetctlApi): Promise<void> {
  for (const s of await api.listSandboxes()) await api.deleteSandbox(s.id);
  for (const n of await api.listNetworks()) await api.deleteNetwork(n.id);
}

interface Case {
  step: string;
  /** The operation that reaches the step, when it is not the one the step is named after. */
  via?: string;
  /** Intents the crash leaves (default: 2 when via names another operation, else 1). */
  intents?: number;
  /** Make what the operation needs. */
  setup(api: NetctlApi): Promise<void>;
  /** The request that reaches the step. */
  request(api: NetctlApi): Promise<unknown>;
  /**
   * For deletes: the preconditions are made in two parts; the inventory
   * after `setup` but before `made` is what a completed delete returns to.
   */
  made?(api: NetctlApi): Promise<void>;
  /** Try again (and more) after the restart; must succeed. */
  retry(api: NetctlApi): Promise<void>;
}

const connectRetry = async (api: NetctlApi) => {
  const ep = await api.connect(CONNECT);
  expect(ep.ipv4).toBe('10.88.0.10/24');
  await api.createSandbox({ name: 's2' });
  await api.connect({ network: 'web', sandbox: 's2', ipv4: '10.88.0.20' });
  expect(await ping('/run/netns/netctl-s1', '10.88.0.20')).toBe(true);
};

const cases: Case[] = [
  ...['createNetwork.pool', 'createNetwork.driver', 'createNetwork.record'].map(
    (step): Case => ({
      step,
      setup: async () => {},
      request: (api) => api.createNetwork(WEB),
      retry: async (api) => {
        const n = await api.createNetwork(WEB);
        expect(n.ipam.config[0]?.subnet).toBe('10.88.0.0/24');
        expect(n.ipam.config[0]?.gateway).toBe('10.88.0.1');
      },
    }),
  ),
  // Between a link's creation and its owner tag (src/kernel/owner.ts): the
  // link is in netctl's group, unclaimed, and reconcile removes it.
  {
    step: 'link.tag',
    via: 'createNetwork',
    intents: 1,
    setup: async () => {},
    request: (api) => api.createNetwork(WEB),
    retry: async (api) => {
      await api.createNetwork(WEB);
      await api.createSandbox({ name: 's1' });
      await connectRetry(api);
    },
  },
  {
    step: 'link.tag',
    via: 'connect',
    intents: 1,
    setup: async (api) => {
      await api.createNetwork(WEB);
      await api.createSandbox({ name: 's1' });
    },
    request: (api) => api.connect(CONNECT),
    retry: connectRetry,
  },
  {
    step: 'createSandbox.record',
    setup: async () => {},
    request: (api) => api.createSandbox({ name: 's1' }),
    retry: async (api) => {
      await api.createSandbox({ name: 's1' });
      await api.createNetwork(WEB);
      await connectRetry(api);
    },
  },
  ...['connect.address', 'connect.join', 'connect.record'].map(
    (step): Case => ({
      step,
      setup: async (api) => {
        await api.createNetwork(WEB);
        await api.createSandbox({ name: 's1' });
      },
      request: (api) => api.connect(CONNECT),
      retry: connectRetry,
    }),
  ),
  ...['disconnect.unplug', 'disconnect.release'].map(
    (step): Case => ({
      step,
      setup: async (api) => {
        await api.createNetwork(WEB);
        await api.createSandbox({ name: 's1' });
      },
      made: async (api) => {
        await api.connect(CONNECT);
      },
      request: (api) => api.disconnect('web', 's1'),
      retry: connectRetry,
    }),
  ),
  // deleteSandbox removes its endpoints first, each under its own intent:
  // a crash there leaves two dead intents, both finished.
  ...['disconnect.unplug', 'disconnect.release', 'deleteSandbox.netns'].map(
    (step): Case => ({
      step,
      ...(step.startsWith('disconnect.') ? { via: 'deleteSandbox' } : {}),
      setup: async (api) => {
        await api.createNetwork(WEB);
      },
      made: async (api) => {
        await api.createSandbox({ name: 's1' });
        await api.connect(CONNECT);
      },
      request: (api) => api.deleteSandbox('s1'),
      retry: async (api) => {
        await api.createSandbox({ name: 's1' });
        await connectRetry(api);
      },
    }),
  ),
  {
    step: 'deleteNetwork.driver',
    setup: async () => {},
    made: async (api) => {
      await api.createNetwork(WEB);
    },
    request: (api) => api.deleteNetwork('web'),
    retry: async (api) => {
      await api.createNetwork(WEB);
      await api.createSandbox({ name: 's1' });
      await connectRetry(api);
    },
  },
];

describe('kill -9 at every intent step, then restart', () => {
  it.each(cases.map((c) => ({ ...c, name: c.via ? `${c.step} (in ${c.via})` : c.step })))(
    '$name: reconcile leaves no trace and the operation works again',
    async (c) => {
      const dir = testDir();
      // Preconditions in this process (same code, no daemon start to wait for).
      const expected: Inventory = await withLocal(dir, async (api) => {
        await bystanders(api);
        await c.setup(api);
        // What the interrupted operation must come back to: before it for a
        // create, before what it deletes for a delete.
        const before = await daemonInventory(dir);
        await c.made?.(api);
        return before;
      });

      let daemon = await Daemon.start(dir, { crashAt: c.step });
      await expect(c.request(daemon.api)).rejects.toThrow(/is not answering: socket hang up/);
      expect(await daemon.exited).toEqual({ code: null, signal: 'SIGKILL' });

      // Before the restart: the dry run lists exactly what is left, each with
      // a reason, and changes nothing.
      const crashed = await daemonInventory(dir);
      expect(crashed.intents).toHaveLength(c.intents ?? (c.via ? 2 : 1));
      const leftovers = leftoverKeys(expected, crashed);
      expect(leftovers.length).toBeGreaterThan(crashed.intents.length); // the crash left work behind
      const dryRun = await gcCli(dir, true);
      expect(actionKeys(dryRun)).toEqual(leftovers);
      for (const a of dryRun) expect(a.reason).not.toBe('');
      expect(await daemonInventory(dir)).toEqual(crashed);

      // The restart's reconcile does what the dry run said, and nothing else.
      daemon = await Daemon.start(dir);
      expect(daemon.reconcileActions()).toEqual(dryRun);
      expect(await daemonInventory(dir)).toEqual(expected);
      await expectMatchesRecords(dir);
      await expectBystandersWork();

      await c.retry(daemon.api);
      await removeAll(daemon.api);
      expect(await daemonInventory(dir)).toEqual(EMPTY);
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    },
  );
});
