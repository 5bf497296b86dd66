export {
  type Flavour,
  flavourOf,
  IptablesBackend,
  type IptablesOptions,
  iptablesBackend,
} from './backend.js';
export { type Exec, spawnExec } from './exec.js';
