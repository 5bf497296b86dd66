/**
 * The NetctlApi contract against the real Controller, in-process on the
 * memory store with the fake firewall and a recording driver (no link or
 * rule is made). Sandboxes netctl makes its own netns for need the kernel:
 * that part runs in test/privileged/controller/api-contract.test.ts.
 */
import { memoryController } from '../../helpers/memory-controller.js';
import { apiContract } from './api-contract/index.js';

apiContract('Controller', async () => memoryController());
