/**
 * A bridge-like driver with nothing behind it, for unit tests of the
 * controller and the adapters: it records each call, checks options as the
 * real bridge driver does, and fails a call when asked to (failNext), so
 * the controller's undo paths can be driven without a kernel. Given a
 * firewall (the fake one, src/firewall/testing/fake.ts), it adds and
 * removes the bridge driver's rules there too, so a test can see that an
 * undo took back every rule.
 */

import { parsePrefix } from '../../address.js';
import type { Driver, ExternalConnectivity } from '../../core/driver.js';
import type { EndpointInfo, JoinInfo, NetworkInfo } from '../../core/info.js';
import type { Endpoint, Network, PortMapping } from '../../core/model.js';
import type { FirewallBackend } from '../../firewall/backend.js';
import { networkRules, portRules } from '../../firewall/bridge.js';
import { parseBridgeOptions } from '../bridge/options.js';

type Method =
  | 'createNetwork'
  | 'deleteNetwork'
  | 'createEndpoint'
  | 'deleteEndpoint'
  | 'join'
  | 'leave'
  | 'program'
  | 'revoke';

export interface RecordingDriverOptions {
  /** Where the network's and the published ports' rules go; none when absent. */
  firewall?: FirewallBackend;
}

export class RecordingDriver implements Driver, ExternalConnectivity {
  readonly type = 'bridge';
  readonly calls: Method[] = [];
  /** Make the next call of a method throw this error (then forget it), before it does anything. */
  readonly failNext = new Map<Method, Error>();
  private readonly firewall: FirewallBackend | undefined;

  constructor(options: RecordingDriverOptions = {}) {
    this.firewall = options.firewall;
  }

  private record(method: Method): void {
    this.calls.push(method);
    const err = this.failNext.get(method);
    if (err) {
      this.failNext.delete(method);
      throw err;
    }
  }

  /** The bridge driver's rules of a network (its IPv4 and IPv6 subnets). */
  private networkRules(network: Network) {
    const config = parseBridgeOptions(network);
    return networkRules({
      id: network.id,
      bridge: config.bridgeName,
      subnets: network.ipam.config.map((c) => ({ cidr: c.subnet, family: parsePrefix(c.subnet).family })),
      internal: config.internal,
      icc: config.icc,
      masquerade: config.masquerade,
    });
  }

  /** The bridge driver's rules of an endpoint's published ports (on its IPv4 address: enough for tests). */
  private portRules(network: Network, endpoint: Endpoint, ports: readonly PortMapping[]) {
    if (!endpoint.ipv4 || !ports.length) return [];
    const target = { id: network.id, bridge: parseBridgeOptions(network).bridgeName };
    return portRules(
      { id: endpoint.id, network: target, ip: parsePrefix(endpoint.ipv4).ip, family: 4 },
      ports,
    );
  }

  capability() {
    return { dataScope: 'local', connectivityScope: 'local' } as const;
  }
  checkOptions(network: Pick<Network, 'id' | 'options' | 'internal'>) {
    parseBridgeOptions(network);
  }
  async createNetwork(info: NetworkInfo) {
    this.record('createNetwork');
    if (this.firewall && info.network.ipam.config.length)
      await this.firewall.add(this.networkRules(info.network));
  }
  async deleteNetwork(network: Network) {
    this.record('deleteNetwork');
    if (this.firewall && network.ipam.config.length) await this.firewall.del(this.networkRules(network));
  }
  async createEndpoint(_network: Network, _endpoint: EndpointInfo) {
    this.record('createEndpoint');
  }
  async deleteEndpoint() {
    this.record('deleteEndpoint');
  }
  async join(network: Network, _endpoint: unknown, _sandbox: unknown, join: JoinInfo) {
    this.record('join');
    const gateway = network.ipam.config[0]?.gateway;
    if (gateway) join.setGateway(gateway);
    join.srcName = 'vtest0';
    join.dstPrefix = 'eth';
  }
  async leave() {
    this.record('leave');
  }
  async programExternalConnectivity(network: Network, endpoint: Endpoint, ports: PortMapping[]) {
    this.record('program');
    const rules = this.portRules(network, endpoint, ports);
    if (this.firewall && rules.length) await this.firewall.add(rules);
  }
  async revokeExternalConnectivity(network: Network, endpoint: Endpoint) {
    this.record('revoke');
    const rules = this.portRules(network, endpoint, endpoint.portMappings);
    if (this.firewall && rules.length) await this.firewall.del(rules);
  }
}
