import { HostScopedStore } from '../../../src/kv/scoped.js';
import { MemoryState, MemoryStore } from '../../../src/kv/testing/memory.js';
import { kvContract } from './contract.js';

const state = new MemoryState();

kvContract('memory', {
  multiProcess: false,
  outage: false,
  async setup() {
    return { open: async () => new MemoryStore(state) };
  },
});

// A host's view of a shared store (src/kv/scoped.ts) keeps every promise of the store it wraps.
const shared = new MemoryState();

kvContract('memory, seen by one host of a shared store', {
  multiProcess: false,
  outage: false,
  async setup() {
    return { open: async () => new HostScopedStore(new MemoryStore(shared), 'h1') };
  },
});
