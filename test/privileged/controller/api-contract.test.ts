/**
 * The part of the NetctlApi contract (test/unit/controller/api-contract/)
 * that the real Controller needs the kernel for: sandboxes whose namespace
 * netctl makes itself (a named netns, the host's pinned). Same in-process
 * controller as the unit run (memory store, fake firewall, recording
 * driver), here in the run's private namespace; the FakeApi runs this part
 * in the unit project.
 */
import { memoryController } from '../../helpers/memory-controller.js';
import { ownNetnsContract } from '../../unit/controller/api-contract/index.js';

ownNetnsContract('Controller', async () => memoryController());
