/**
 * The bridge driver: a Linux bridge per network holding the gateway, a veth
 * per endpoint, NAT and filtering in netctl's own iptables chains — Docker's
 * bridge networking (libnetwork drivers/bridge), on netctl's kernel layer.
 *
 * Every link it makes carries netctl's tag and its owner (`net:<id>`,
 * `ep:<id>`; src/kernel/owner.ts), every rule its owner in its comment, so
 * reconcile and `netctl gc` can find exactly what is netctl's — and it
 * changes or deletes no link that is not its own, whatever name a network's
 * options give (a foreign `br0` is a conflict, never touched).
 */
import { familyOf, parsePrefix } from '../../address.js';
import type {
  Capability,
  Driver,
  ExternalConnectivity,
  OwnedResource,
  Reconciler,
} from '../../core/driver.js';
import type { EndpointInfo, JoinInfo, NetworkInfo, SandboxInfo } from '../../core/info.js';
import type { Endpoint, Network, PortMapping } from '../../core/model.js';
import { ENABLE_ICC } from '../../core/options.js';
import { Errors } from '../../errors.js';
import {
  baseRules,
  ensureBase,
  type FirewallBackend,
  type NetworkFirewall,
  networkRules,
  type OwnedRule,
  portRules,
  removeBase,
  requiredSysctls,
} from '../../firewall/index.js';
import {
  addrReplace,
  disableIpv6,
  ensureLink,
  hasErrorCode,
  LinkNotFoundError,
  linkAdd,
  linkDelOwned,
  linkIndex,
  linkList,
  linkOwner,
  linkSetHairpin,
  linkSetMaster,
  linkSetUp,
  Netlink,
  type NetnsRef,
  type NewLink,
  NotOwnedError,
  ownedLink,
  randomMac,
  sysctlSet,
} from '../../kernel/index.js';
import { log } from '../../log.js';
import { endpointOwner, isOwnerOfKind, networkOwner } from '../../owners.js';
import { Lane } from '../../serial.js';
import { type BridgeConfig, parseBridgeOptions } from './options.js';
import { always, runSteps, type Step } from './setup.js';

/**
 * netctl's base chains come with the first network and go with the last:
 * a network's rules and their chains are added, and the last rules and the
 * chains removed, one network at a time in this process, or a create could
 * land its rules as a delete takes the chains away (across processes,
 * `missing` reports the jumps gone and repair puts them back).
 */
const baseLane = new Lane();

/** BR_MAX_PORTS - 1: port 0 is reserved. */
const BRIDGE_MAX_PORTS = 1023;

/** Host-side veth name: `vn` + 12 hex of the endpoint id (15 characters max). */
export const hostVethName = (endpointId: string) => `vn${endpointId.slice(0, 12)}`;

export interface BridgeDriverOptions {
  /** The host namespace the bridges live in; default: this process's. */
  netns?: NetnsRef;
  firewall: FirewallBackend;
}

export interface NetworkSetup {
  network: Network;
  config: BridgeConfig;
  mac: string;
  info?: NetworkInfo;
}

export class BridgeDriver implements Driver, ExternalConnectivity, Reconciler {
  readonly type: string = 'bridge';
  protected readonly host: Netlink;
  private readonly firewall: FirewallBackend;

  constructor(options: BridgeDriverOptions) {
    this.host = Netlink.open(options.netns);
    this.firewall = options.firewall;
  }

  close(): void {
    this.host.close();
  }

  capability(): Capability {
    return { dataScope: 'local', connectivityScope: 'local' };
  }

  checkOptions(network: Pick<Network, 'id' | 'options' | 'internal'>): void {
    this.config(network);
  }

  /** The network's settings from its options (the overlay driver reads its own). */
  protected config(network: Pick<Network, 'id' | 'options' | 'internal'>): BridgeConfig {
    return parseBridgeOptions(network);
  }

  private subnets(network: Network) {
    return network.ipam.config.map((c) => ({ cidr: c.subnet, family: parsePrefix(c.subnet).family }));
  }

  private firewallNetwork(network: Network, config: BridgeConfig): NetworkFirewall {
    return {
      id: network.id,
      bridge: config.bridgeName,
      subnets: this.subnets(network),
      internal: config.internal,
      icc: config.icc,
      masquerade: config.masquerade,
      ...(config.hostBindingIpv4 ? { hostBindingIpv4: config.hostBindingIpv4 } : {}),
    };
  }

  /** The steps that make a network exist; each is idempotent, so restore reuses them. */
  protected steps(): Step<NetworkSetup>[] {
    return [
      [
        always,
        async ({ network, config, mac }) => {
          // A fixed MAC: otherwise the bridge takes its lowest port's MAC, which
          // changes as containers come and go and breaks the gateway's ARP entries.
          await ensureLink(this.host, {
            kind: 'bridge',
            name: config.bridgeName,
            mac,
            owner: networkOwner(network.id),
            ...(config.mtu ? { mtu: config.mtu } : {}),
          });
          return () => this.removeLink(config.bridgeName, networkOwner(network.id));
        },
      ],
      [
        always,
        async ({ network, config }) => {
          for (const pool of network.ipam.config) {
            const { prefixLength, family } = parsePrefix(pool.subnet);
            await addrReplace(this.host, config.bridgeName, `${pool.gateway}/${prefixLength}`, {
              noDad: family === 6,
            });
          }
          await linkSetUp(this.host, config.bridgeName);
          return undefined; // the bridge's removal takes its addresses
        },
      ],
      [
        always,
        async ({ network, config }) => {
          for (const { key, value } of requiredSysctls(this.firewallNetwork(network, config))) {
            try {
              sysctlSet(key, value, this.host.netns);
            } catch (err) {
              if (hasErrorCode(err, 'ENOENT') && key.startsWith('net.bridge.')) {
                throw new Errors.InvalidOption(
                  ENABLE_ICC,
                  'icc off needs the br_netfilter module: modprobe br_netfilter',
                );
              }
              throw err;
            }
          }
          return undefined; // forwarding stays on, as dockerd leaves it
        },
      ],
      [
        always,
        async ({ network, config }) => {
          const rules = networkRules(this.firewallNetwork(network, config));
          await baseLane.run(async () => {
            await ensureBase(this.firewall);
            await this.firewall.add(rules);
          });
          return () => this.firewall.del(rules);
        },
      ],
    ];
  }

  /**
   * Delete a link of owner's. One of the same name that is someone else's
   * (it took the name after ours went) is left alone: not ours to delete.
   */
  protected async removeLink(name: string, owner: string): Promise<void> {
    try {
      await linkDelOwned(this.host, name, owner);
    } catch (err) {
      if (!(err instanceof NotOwnedError)) throw err;
      log.warn(
        { link: name, owner, holder: err.holder ?? 'not netctl' },
        'left a link that is not ours alone',
      );
    }
  }

  async createNetwork(info: NetworkInfo): Promise<void> {
    const { network } = info;
    const config = this.config(network);
    const mac = network.driverData.mac ?? randomMac();
    // Refused before anything is made: a bridge of that name that is someone else's.
    await ownedLink(this.host, config.bridgeName, networkOwner(network.id));
    info.setDriverData('bridge', config.bridgeName);
    info.setDriverData('mac', mac);
    await runSteps({ network, config, mac }, this.steps());
  }

  async deleteNetwork(network: Network): Promise<void> {
    const config = this.config(network);
    await this.removeLink(config.bridgeName, networkOwner(network.id));
    await baseLane.run(async () => {
      await this.firewall.del(networkRules(this.firewallNetwork(network, config)));
      // The last network out takes netctl's chains and jumps with it.
      if (!(await this.firewall.list()).some((r) => isOwnerOfKind(r.owner, 'net')))
        await removeBase(this.firewall);
    });
  }

  async createEndpoint(_network: Network, endpoint: EndpointInfo): Promise<void> {
    endpoint.setDriverData('hostIfname', hostVethName(endpoint.endpoint.id));
    // Chosen here rather than by the kernel, so the record knows it: a CNI
    // result lists the host-side interface with its MAC.
    endpoint.setDriverData('hostMac', randomMac());
  }

  async deleteEndpoint(_network: Network, endpoint: Endpoint): Promise<void> {
    await this.removeLink(
      endpoint.driverData.hostIfname ?? hostVethName(endpoint.id),
      endpointOwner(endpoint.id),
    );
  }

  async join(network: Network, endpoint: Endpoint, sandbox: SandboxInfo, join: JoinInfo): Promise<void> {
    const config = this.config(network);
    const hostIfname = endpoint.driverData.hostIfname ?? hostVethName(endpoint.id);
    const bridge = await ownedLink(this.host, config.bridgeName, networkOwner(network.id));
    if (!bridge) throw new LinkNotFoundError(config.bridgeName);
    const master = bridge.index;
    const inPlace = sandbox.placement === 'in-place';
    const peerName = inPlace ? sandbox.ifname : `${hostIfname}c`.slice(0, 15);
    // In place, the peer is born in the sandbox with its final name: no
    // ~19 ms namespace move. Docker moves it itself ('host-side').
    // Made down: its IPv6 goes off before it is up (disableIpv6).
    const veth: NewLink = {
      kind: 'veth',
      name: hostIfname,
      ...(endpoint.driverData.hostMac ? { mac: endpoint.driverData.hostMac } : {}),
      master,
      owner: endpointOwner(endpoint.id),
      ...(config.mtu ? { mtu: config.mtu } : {}),
      peer: {
        name: peerName,
        mac: endpoint.mac,
        ...(inPlace ? { netns: sandbox.key } : {}),
        ...(config.mtu ? { mtu: config.mtu } : {}),
      },
    };
    try {
      await this.addVeth(veth, endpointOwner(endpoint.id));
    } catch (err) {
      // The kernel numbers bridge ports 1-1023 and answers EXFULL after that
      // (having removed the new veth again).
      if (hasErrorCode(err, 'EXFULL')) throw new Errors.NetworkFull(network.name, BRIDGE_MAX_PORTS);
      if (!hasErrorCode(err, 'EEXIST')) throw err;
      // The host side is free (addVeth saw to it): the peer's name is taken.
      throw new NotOwnedError(
        `link ${peerName} in ${inPlace ? `netns ${sandbox.key}` : 'the host'}`,
        endpointOwner(endpoint.id),
        undefined,
      );
    }
    // A bridge port needs no address of its own, and IPv6 autoconfiguration
    // on hundreds of ports floods the bridge (see disableIpv6).
    disableIpv6(hostIfname, this.host.netns);
    // A container reaching its own published port through the host comes
    // back in on its own port (a neighbour's port needs no hairpin): only an
    // endpoint that publishes ports needs it, and each request costs a join
    // more on a bridge with many ports.
    if (endpoint.portMappings.length) await linkSetHairpin(this.host, hostIfname, true);
    await linkSetUp(this.host, hostIfname);
    join.setPlugged();
    if (!inPlace) join.setInterfaceName(peerName, 'eth');
    if (!config.internal) {
      for (const pool of network.ipam.config) {
        if (parsePrefix(pool.subnet).family === 4) join.setGateway(pool.gateway);
        else join.setGatewayIPv6(pool.gateway);
      }
    } else {
      join.disableGatewayService = true;
    }
  }

  /**
   * Make the veth; a host side of that name left by a join that crashed
   * half-way is replaced if it is this endpoint's (NotOwnedError if not).
   */
  private async addVeth(veth: NewLink, owner: string): Promise<void> {
    try {
      await linkAdd(this.host, veth);
    } catch (err) {
      if (!hasErrorCode(err, 'EEXIST') || !(await ownedLink(this.host, veth.name, owner))) throw err;
      await linkDelOwned(this.host, veth.name, owner);
      await linkAdd(this.host, veth);
    }
  }

  async leave(_network: Network, endpoint: Endpoint): Promise<void> {
    await this.removeLink(
      endpoint.driverData.hostIfname ?? hostVethName(endpoint.id),
      endpointOwner(endpoint.id),
    );
  }

  /** The endpoint's published-port rules, one set per address family it has. */
  private endpointPortRules(network: Network, endpoint: Endpoint, ports: PortMapping[]) {
    const config = this.config(network);
    const target = {
      id: network.id,
      bridge: config.bridgeName,
      internal: config.internal,
      ...(config.hostBindingIpv4 ? { hostBindingIpv4: config.hostBindingIpv4 } : {}),
    };
    return [endpoint.ipv4, endpoint.ipv6].flatMap((cidr) => {
      if (!cidr) return [];
      const { ip, family } = parsePrefix(cidr);
      const mappings = ports.filter((p) => !p.hostIp || familyOf(p.hostIp) === family);
      return mappings.length ? portRules({ id: endpoint.id, network: target, ip, family }, mappings) : [];
    });
  }

  async programExternalConnectivity(
    network: Network,
    endpoint: Endpoint,
    ports: PortMapping[],
  ): Promise<void> {
    const rules = this.endpointPortRules(network, endpoint, ports);
    if (rules.length) await this.firewall.add(rules);
    // Ports published after the join (Docker publishes them after it) need
    // the hairpin the join gives an endpoint that has them already.
    if (ports.length) {
      try {
        await linkSetHairpin(this.host, endpoint.driverData.hostIfname ?? hostVethName(endpoint.id), true);
      } catch (err) {
        if (!(err instanceof LinkNotFoundError)) throw err; // not joined: the join sets it
      }
    }
  }

  async revokeExternalConnectivity(network: Network, endpoint: Endpoint): Promise<void> {
    const rules = this.endpointPortRules(network, endpoint, endpoint.portMappings);
    if (rules.length) await this.firewall.del(rules);
  }

  async listOwned(): Promise<OwnedResource[]> {
    const links = (await linkList(this.host)).flatMap((l) => {
      const owner = linkOwner(l);
      return owner ? [{ kind: 'link', name: l.name, owner }] : [];
    });
    const rules = (await this.firewall.list())
      .filter((r) => isOwnerOfKind(r.owner, 'net') || isOwnerOfKind(r.owner, 'ep'))
      .map((r) => ({ kind: 'rule', name: r.line, owner: r.owner, handle: r }));
    return [...links, ...rules];
  }

  async removeOwned(resource: OwnedResource): Promise<void> {
    if (resource.kind === 'link') await linkDelOwned(this.host, resource.name, resource.owner);
    else if (resource.kind === 'rule') await this.firewall.del([resource.handle as OwnedRule]);
    else if (resource.kind === 'chains') await removeBase(this.firewall);
  }

  async sharedResources(): Promise<OwnedResource[]> {
    const chains = (await this.firewall.chains()).filter((c) => c.chain.startsWith('NETCTL-'));
    if (!chains.length) return [];
    const names = [...new Set(chains.map((c) => c.chain))].join(' ');
    return [{ kind: 'chains', name: names, owner: 'base' }];
  }

  async missing(network: Network, endpoints: Endpoint[]): Promise<string[]> {
    const config = this.config(network);
    const found: string[] = [];
    let bridge: Awaited<ReturnType<typeof ownedLink>>;
    try {
      bridge = await ownedLink(this.host, config.bridgeName, networkOwner(network.id));
    } catch (err) {
      if (!(err instanceof NotOwnedError)) throw err;
      // Not put back by repair either: the name is someone else's now.
      return [`bridge ${config.bridgeName}: ${err.message}`];
    }
    if (!bridge) found.push(`bridge ${config.bridgeName}`);
    else if (!bridge.up) found.push(`bridge ${config.bridgeName} is down`);
    const rules = await this.firewall.check([
      ...baseRules(4),
      ...baseRules(6),
      ...networkRules(this.firewallNetwork(network, config)),
      ...endpoints.flatMap((e) => this.endpointPortRules(network, e, e.portMappings)),
    ]);
    if (rules.length) found.push(`${rules.length} firewall rule(s)`);
    // A bridge deleted and made again has no ports: its endpoints' veths
    // outlive it, detached. (A veth that is gone is the sandbox's loss: its
    // netns went, and the sandbox is swept as stale.)
    const links = new Map((await linkList(this.host)).map((l) => [l.name, l]));
    for (const endpoint of endpoints) {
      const veth = links.get(endpoint.driverData.hostIfname ?? hostVethName(endpoint.id));
      if (veth && (!bridge || veth.masterIndex !== bridge.index || !veth.up))
        found.push(`${veth.name} not up on the bridge`);
    }
    return found;
  }

  async restoreNetwork(network: Network, endpoints: Endpoint[]): Promise<void> {
    const config = this.config(network);
    const mac = network.driverData.mac ?? randomMac();
    await runSteps({ network, config, mac }, this.steps());
    const master = await linkIndex(this.host, config.bridgeName);
    for (const endpoint of endpoints) {
      const hostIfname = endpoint.driverData.hostIfname ?? hostVethName(endpoint.id);
      try {
        // Only the endpoint's own veth goes back on the bridge.
        const veth = await ownedLink(this.host, hostIfname, endpointOwner(endpoint.id));
        if (veth) {
          await linkSetMaster(this.host, veth, master);
          await linkSetUp(this.host, veth);
          await linkSetHairpin(this.host, veth, true);
        }
      } catch (err) {
        if (!(err instanceof LinkNotFoundError) && !(err instanceof NotOwnedError)) throw err;
      }
      if (endpoint.portMappings.length)
        await this.programExternalConnectivity(network, endpoint, endpoint.portMappings);
    }
  }
}
