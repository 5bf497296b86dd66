/**
 * src/firewall: NAT/filter rules as data, applied in batches
 * (iptables-restore --noflush) into netctl's own chains. See docs/firewall.md.
 */
export { type FirewallBackend, removeOwners, syncOwner } from './backend.js';
export {
  type EndpointFirewall,
  type NetworkFirewall,
  networkRules,
  type PortMapping,
  portRules,
  type RequiredSysctl,
  requiredSysctls,
} from './bridge.js';
export { BASE_OWNER, baseChains, baseRules, CHAIN, ensureBase, removeBase } from './chains.js';
export { FirewallChainMissingError, FirewallCommandError, FirewallInputError } from './errors.js';
export * from './iptables/index.js';
export {
  type ChainRef,
  type Family,
  type OwnedRule,
  parseOwner,
  parseTag,
  type Rule,
  ruleHash,
  ruleTag,
  type Table,
  validateRule,
} from './rule.js';
