/**
 * The NetctlApi contract against FakeApi, the CLI's and the servers' fake:
 * it must answer as the real Controller does (api-contract-controller.test.ts).
 */
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { netnsStandIns } from '../../helpers/netns-stand-ins.js';
import { apiContract, ownNetnsContract } from './api-contract/index.js';

const fake = async () => {
  const standIns = netnsStandIns();
  return {
    api: new FakeApi({ checkKey: standIns.checkKey }),
    netns: (name: string) => standIns.path(name),
    close: async () => standIns.remove(),
  };
};

apiContract('FakeApi', fake);
ownNetnsContract('FakeApi', fake);
