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
