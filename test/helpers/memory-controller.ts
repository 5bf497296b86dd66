/**
 * The real Controller, built in-process with nothing behind it: the memory
 * store, the IPAM over it, the fake firewall, and a recording driver for
 * bridge networks that puts the bridge driver's rules into that firewall
 * (src/drivers/testing/recording.ts), with the host and none drivers. No
 * link, rule or store file is made; sandboxes take anonymous network
 * namespaces as keys (made by this process, gone with their handle), so
 * only a sandbox netctl makes its own netns for needs the privileged project.
 */
import { Controller } from '../../src/controller/controller.js';
import { State } from '../../src/controller/state.js';
import { HostDriver } from '../../src/drivers/host/host.js';
import { NoneDriver } from '../../src/drivers/none/none.js';
import { RecordingDriver } from '../../src/drivers/testing/recording.js';
import { type FakeFirewall, fakeFirewall } from '../../src/firewall/testing/fake.js';
import { KvIpamDriver } from '../../src/ipam/driver.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { createAnonymousNetns, type Netns } from '../../src/kernel/index.js';
import { MemoryState, MemoryStore } from '../../src/kv/testing/memory.js';

export interface MemoryController {
  api: Controller;
  /** The store's "server": its fault injection (refuseTxn, loseReplyAfter, down). */
  memory: MemoryState;
  kv: MemoryStore;
  ipam: Ipam;
  firewall: FakeFirewall;
  driver: RecordingDriver;
  /** The path of an anonymous netns for a sandbox key, one per name, made on first use. */
  netns(name: string): string;
  /** Make the store refuse the next transaction that writes a key below netctl/v1/<prefix> (then write again). */
  refuseNextWrite(prefix: string): void;
  /** Close the controller, then the namespaces. */
  close(): Promise<void>;
}

export function memoryController(): MemoryController {
  const memory = new MemoryState();
  const kv = new MemoryStore(memory);
  const ipam = new Ipam(kv);
  const firewall = fakeFirewall();
  const driver = new RecordingDriver({ firewall });
  // The drivers in local.ts's order, so "available: ..." reads the same.
  const api = new Controller({
    state: new State(kv),
    ipam: new KvIpamDriver(ipam),
    drivers: [driver, new HostDriver(), new NoneDriver()],
    storeName: 'memory',
  });
  const namespaces = new Map<string, Netns>();
  return {
    api,
    memory,
    kv,
    ipam,
    firewall,
    driver,
    netns(name) {
      let ns = namespaces.get(name);
      if (!ns) {
        ns = createAnonymousNetns();
        namespaces.set(name, ns);
      }
      return ns.path;
    },
    refuseNextWrite(prefix) {
      memory.refuseTxn = (ops) => {
        if (!ops.some((op) => op.type === 'put' && op.key.startsWith(`netctl/v1/${prefix}`))) return false;
        memory.refuseTxn = undefined;
        return true;
      };
    },
    async close() {
      await api.close();
      for (const ns of namespaces.values()) ns.close();
    },
  };
}

/** A memoryController() with network web (10.1.0.0/24) and sandbox s1 on it: where the undo and outcome tests start. */
export async function memoryControllerWithWeb(): Promise<MemoryController> {
  const m = memoryController();
  await m.api.createNetwork({ name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } });
  await m.api.createSandbox({ name: 's1', key: m.netns('s1') });
  return m;
}
