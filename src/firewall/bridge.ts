/**
 * The bridge driver's rules, built as data (no I/O): a network's rules
 * (owner `net:<id>`) and an endpoint's published ports (owner `ep:<id>`).
 *
 * Chain layout. Rules of different owners are appended to shared chains in
 * whatever order networks and endpoints come and go, so the layout makes
 * order between owners irrelevant: everything that must come before
 * something else lives in an earlier chain, and NETCTL-FORWARD jumps to the
 * chains in a fixed order (base rules, chains.ts). B is the bridge, S a
 * subnet, IP the endpoint's address:
 *
 *   NETCTL-FORWARD
 *     1. NETCTL-CT           -o B ctstate RELATED,ESTABLISHED ACCEPT  (net: replies, before any DROP)
 *     2. NETCTL-ISOLATION-1  -i B ! -o B ! ctstate DNAT -j NETCTL-ISOLATION-2   (net)
 *                            internal: -i B ! -o B DROP, ! -i B -o B DROP
 *        NETCTL-ISOLATION-2  -o B DROP                                (net)
 *     3. NETCTL-PUBLISH      -d IP ! -i B -o B -p P --dport C ACCEPT  (ep, per published port)
 *     4. NETCTL-BRIDGE       -i B ! -o B ACCEPT                       (net: way out, not internal)
 *                            icc:  -i B -o B ACCEPT
 *                            !icc: -i B -o B ctstate DNAT ACCEPT, -i B -o B DROP
 *                            ! -i B -o B ctstate DNAT ACCEPT (ports another publisher DNATs here)
 *                            -o B DROP              (nothing else gets in: only published ports)
 *   NETCTL-PREROUTING (nat)  [-d HOSTIP] -p P --dport H[:He] DNAT IP:C[-Ce/H]   (ep)
 *   NETCTL-POSTROUTING (nat) -s S ! -o B MASQUERADE                   (net, masquerade on)
 *                            -s S -o B ctstate DNAT MASQUERADE         (net, hairpin)
 *                            -o B src-type LOCAL MASQUERADE           (net, IPv4 host-local)
 *
 * Within one owner, order matters only in NETCTL-BRIDGE (the DNAT accept
 * before the ICC drop, the accepts before the final drop); the backend keeps
 * a list's order even when it re-adds one missing rule.
 *
 * Costs: a network is a constant number of rules (isolation is Docker's
 * two-stage pattern, so N networks cost O(N) rules, not O(N²)); an
 * endpoint costs no rule at all unless it publishes ports, and then two
 * rules per mapping, a port range being one mapping.
 *
 * Where this differs from dockerd (libnetwork drivers/bridge, userland
 * proxy off) and why:
 * - Isolation skips connections that were DNATed (`! --ctstate DNAT`), and
 *   replies are accepted before isolation, so a container reaches another
 *   network's published port through the host address, as it does through
 *   dockerd's userland proxy; reaching it directly by container address is
 *   still dropped. (dockerd without the proxy drops both.)
 * - Hairpin is one rule per network (`-s S -o B --ctstate DNAT MASQUERADE`)
 *   instead of one per published port; it also covers a container reaching
 *   a neighbour's published port through the host address, which without
 *   br_netfilter would otherwise get replies from the wrong source.
 * - With ICC off, connections that were DNATed (published ports reached
 *   through the host address) are still allowed between containers of the
 *   network, as dockerd's userland proxy allows them.
 * - Connections DNATed to the bridge by a rule not ours get in too (one
 *   rule per network): the CNI portmap plugin chained after netctl-cni
 *   publishes ports that way (containernetworking/plugins portmap), and a
 *   DNAT rule is as deliberate a publication as ours. Anything not DNATed
 *   still stops at the final DROP.
 * - A port range is one DNAT rule (iptables' shifted ranges) where dockerd
 *   writes one per port.
 */
import { endpointOwner, networkOwner } from '../owners.js';
import { CHAIN } from './chains.js';
import { FirewallInputError } from './errors.js';
import { type Family, type Rule, ruleTag, type Table } from './rule.js';
import { cidr, hexId, interfaceName, ipAddress, port } from './validate.js';

export interface NetworkFirewall {
  /** Network id (hex); the owner of the rules is `net:<id>`. */
  id: string;
  /** The Linux bridge. */
  bridge: string;
  /** At least one subnet; IPv4 and/or IPv6. */
  subnets: readonly { cidr: string; family: Family }[];
  /** No way in or out: only traffic between the network's own containers. */
  internal: boolean;
  /** Inter-container communication on this bridge (Docker's enable_icc). */
  icc: boolean;
  /** MASQUERADE traffic leaving the subnet (Docker's enable_ip_masquerade). */
  masquerade: boolean;
  /** Default host address of published IPv4 ports (Docker's host_binding_ipv4). */
  hostBindingIpv4?: string;
}

export interface EndpointFirewall {
  /** Endpoint id (hex); the owner of the rules is `ep:<id>`. */
  id: string;
  network: Pick<NetworkFirewall, 'id' | 'bridge'> &
    Partial<Pick<NetworkFirewall, 'internal' | 'hostBindingIpv4'>>;
  /** The endpoint's address (without prefix length) in this family. */
  ip: string;
  family: Family;
}

export interface PortMapping {
  proto: 'tcp' | 'udp' | 'sctp';
  /** Host address to publish on; default: every local address (or the network's hostBindingIpv4). */
  hostIp?: string;
  hostPort: number;
  /** Last host port of a range (inclusive). */
  hostPortEnd?: number;
  containerPort: number;
  /** Last container port of a range; the two ranges must be equally long. */
  containerPortEnd?: number;
}

/** A sysctl a network needs; the caller applies it with src/kernel sysctlSet in the host's namespace. */
export interface RequiredSysctl {
  key: string;
  value: string;
  why: string;
}

const PROTOCOLS = new Set(['tcp', 'udp', 'sctp']);

function checkNetwork(net: NetworkFirewall): {
  id: string;
  bridge: string;
  subnets: { cidr: string; family: Family }[];
} {
  const id = hexId('network id', net.id);
  const bridge = interfaceName('bridge', net.bridge);
  if (!Array.isArray(net.subnets) || net.subnets.length === 0) {
    throw new FirewallInputError('subnets', net.subnets, 'a network needs at least one subnet');
  }
  const subnets = net.subnets.map((s, i) => {
    if (s.family !== 4 && s.family !== 6)
      throw new FirewallInputError(`subnets[${i}].family`, s.family, 'not 4 or 6');
    return cidr(`subnets[${i}].cidr`, s.cidr, s.family);
  });
  for (const flag of ['internal', 'icc', 'masquerade'] as const) {
    if (typeof net[flag] !== 'boolean') throw new FirewallInputError(flag, net[flag], 'not a boolean');
  }
  if (net.hostBindingIpv4 !== undefined) ipAddress('hostBindingIpv4', net.hostBindingIpv4, 4);
  return { id, bridge, subnets };
}

function dedupe(rules: Rule[]): Rule[] {
  const seen = new Set<string>();
  return rules.filter((rule) => {
    const tag = `${rule.family} ${rule.table} ${rule.chain} ${ruleTag(rule)}`;
    if (seen.has(tag)) return false;
    seen.add(tag);
    return true;
  });
}

/** The rules of one network (owner `net:<id>`), both families as its subnets have them. */
export function networkRules(net: NetworkFirewall): Rule[] {
  const { id, bridge: b, subnets } = checkNetwork(net);
  const owner = networkOwner(id);
  const rules: Rule[] = [];
  const families = ([4, 6] as const).filter((f) => subnets.some((s) => s.family === f));
  for (const family of families) {
    const add = (table: Table, chain: string, spec: string[]) =>
      rules.push({ family, table, chain, spec, owner });
    const conntrack = (...state: string[]) => ['-m', 'conntrack', ...state];

    if (net.internal) {
      add('filter', CHAIN.isolation1, ['-i', b, '!', '-o', b, '-j', 'DROP']);
      add('filter', CHAIN.isolation1, ['!', '-i', b, '-o', b, '-j', 'DROP']);
      add('filter', CHAIN.isolation2, ['-o', b, '-j', 'DROP']);
      add('filter', CHAIN.bridge, ['-i', b, '-o', b, '-j', net.icc ? 'ACCEPT' : 'DROP']);
      continue;
    }

    add('filter', CHAIN.ct, ['-o', b, ...conntrack('--ctstate', 'RELATED,ESTABLISHED'), '-j', 'ACCEPT']);
    const notDnat = conntrack('!', '--ctstate', 'DNAT');
    add('filter', CHAIN.isolation1, ['-i', b, '!', '-o', b, ...notDnat, '-j', CHAIN.isolation2]);
    add('filter', CHAIN.isolation2, ['-o', b, '-j', 'DROP']);
    add('filter', CHAIN.bridge, ['-i', b, '!', '-o', b, '-j', 'ACCEPT']);
    if (net.icc) {
      add('filter', CHAIN.bridge, ['-i', b, '-o', b, '-j', 'ACCEPT']);
    } else {
      add('filter', CHAIN.bridge, ['-i', b, '-o', b, ...conntrack('--ctstate', 'DNAT'), '-j', 'ACCEPT']);
      add('filter', CHAIN.bridge, ['-i', b, '-o', b, '-j', 'DROP']);
    }
    // Ports published by someone else on this host (the CNI portmap plugin
    // chained after netctl-cni, a hand-written DNAT): as deliberate as ours.
    add('filter', CHAIN.bridge, ['!', '-i', b, '-o', b, ...conntrack('--ctstate', 'DNAT'), '-j', 'ACCEPT']);
    add('filter', CHAIN.bridge, ['-o', b, '-j', 'DROP']);

    for (const { cidr: subnet } of subnets.filter((s) => s.family === family)) {
      if (net.masquerade) add('nat', CHAIN.postrouting, ['-s', subnet, '!', '-o', b, '-j', 'MASQUERADE']);
      const dnat = conntrack('--ctstate', 'DNAT');
      add('nat', CHAIN.postrouting, ['-s', subnet, '-o', b, ...dnat, '-j', 'MASQUERADE']);
    }
    if (family === 4) {
      add('nat', CHAIN.postrouting, ['-o', b, '-m', 'addrtype', '--src-type', 'LOCAL', '-j', 'MASQUERADE']);
    }
  }
  return rules;
}

/**
 * The sysctls a network needs in the namespace of its bridge; the caller
 * applies them (src/kernel sysctlSet). One more setting is not a sysctl:
 * with br_netfilter on (bridge-nf-call-iptables=1, the kernel default once
 * loaded), a container reaching its own published port through the host
 * address needs hairpin mode on its bridge port (IFLA_BRPORT_MODE, `bridge
 * link set dev VETH hairpin on`), as dockerd and CNI's bridge plugin set
 * it; the bridge driver sets it on each endpoint that publishes ports.
 */
export function requiredSysctls(net: NetworkFirewall): RequiredSysctl[] {
  const { bridge, subnets } = checkNetwork(net);
  const has = (family: Family) => subnets.some((s) => s.family === family);
  const out: RequiredSysctl[] = [];
  if (!net.internal && has(4)) {
    out.push({ key: 'net.ipv4.ip_forward', value: '1', why: 'route IPv4 traffic in and out of the network' });
    // Slash form: an interface name may contain dots.
    out.push({
      key: `net/ipv4/conf/${bridge}/route_localnet`,
      value: '1',
      why: 'published ports reachable at 127.0.0.1 (DNAT to the bridge from a loopback source)',
    });
  }
  if (!net.internal && has(6)) {
    out.push({
      key: 'net.ipv6.conf.all.forwarding',
      value: '1',
      why: 'route IPv6 traffic in and out of the network',
    });
  }
  if (!net.icc) {
    // Bridged (layer 2) traffic between two containers only meets iptables
    // through br_netfilter; without it the ICC drop never applies.
    if (has(4))
      out.push({
        key: 'net.bridge.bridge-nf-call-iptables',
        value: '1',
        why: 'ICC off: filter bridged IPv4 traffic',
      });
    if (has(6))
      out.push({
        key: 'net.bridge.bridge-nf-call-ip6tables',
        value: '1',
        why: 'ICC off: filter bridged IPv6 traffic',
      });
  }
  return out;
}

/** "80" or "80:90", as iptables' --dport takes them. */
function range(first: number, last: number): string {
  return last === first ? `${first}` : `${first}:${last}`;
}

/**
 * The rules that publish an endpoint's ports (owner `ep:<id>`): per
 * mapping, one DNAT (a port range is one rule: iptables' shifted range
 * `--to-destination IP:80-90/8080`, xt_nat revision 2, Linux ≥ 4.19) and
 * one ACCEPT for exactly that port to the container. No mapping, no rule.
 */
export function portRules(ep: EndpointFirewall, mappings: readonly PortMapping[]): Rule[] {
  const id = hexId('endpoint id', ep.id);
  if (typeof ep.network !== 'object' || ep.network === null) {
    throw new FirewallInputError('network', ep.network, 'missing');
  }
  hexId('network id', ep.network.id);
  const b = interfaceName('bridge', ep.network.bridge);
  if (ep.family !== 4 && ep.family !== 6) throw new FirewallInputError('family', ep.family, 'not 4 or 6');
  const { ip, family } = ipAddress('ip', ep.ip, ep.family);
  if (ep.network.internal && mappings.length) {
    throw new FirewallInputError('mappings', mappings.length, 'an internal network cannot publish ports');
  }
  const defaultHostIp =
    family === 4 && ep.network.hostBindingIpv4 !== undefined
      ? ipAddress('hostBindingIpv4', ep.network.hostBindingIpv4, 4).ip
      : undefined;
  const owner = endpointOwner(id);
  const host = family === 4 ? `${ip}/32` : `${ip}/128`;
  const destination = family === 4 ? ip : `[${ip}]`;

  const rules: Rule[] = [];
  mappings.forEach((m, i) => {
    const field = `mappings[${i}]`;
    if (!PROTOCOLS.has(m.proto))
      throw new FirewallInputError(`${field}.proto`, m.proto, 'not tcp, udp or sctp');
    const hostPort = port(`${field}.hostPort`, m.hostPort);
    const containerPort = port(`${field}.containerPort`, m.containerPort);
    const hostEnd = m.hostPortEnd === undefined ? hostPort : port(`${field}.hostPortEnd`, m.hostPortEnd);
    const containerEnd =
      m.containerPortEnd === undefined
        ? containerPort
        : port(`${field}.containerPortEnd`, m.containerPortEnd);
    if (hostEnd < hostPort) throw new FirewallInputError(`${field}.hostPortEnd`, hostEnd, 'below hostPort');
    if (containerEnd < containerPort) {
      throw new FirewallInputError(`${field}.containerPortEnd`, containerEnd, 'below containerPort');
    }
    if (hostEnd - hostPort !== containerEnd - containerPort) {
      throw new FirewallInputError(
        field,
        `${hostPort}-${hostEnd}:${containerPort}-${containerEnd}`,
        'host and container port ranges must be equally long',
      );
    }
    let hostIp = m.hostIp === undefined ? defaultHostIp : ipAddress(`${field}.hostIp`, m.hostIp, family).ip;
    if (hostIp === '0.0.0.0' || hostIp === '::') hostIp = undefined;

    const to =
      hostEnd !== hostPort
        ? `${destination}:${containerPort}-${containerEnd}/${hostPort}`
        : `${destination}:${containerPort}`;
    const proto = ['-p', m.proto, '-m', m.proto, '--dport'];
    const onHost = hostIp ? ['-d', `${hostIp}/${family === 4 ? 32 : 128}`] : [];
    const dnat = [...onHost, ...proto, range(hostPort, hostEnd), '-j', 'DNAT', '--to-destination', to];
    const toContainer = ['-d', host, '!', '-i', b, '-o', b];
    const accept = [...toContainer, ...proto, range(containerPort, containerEnd), '-j', 'ACCEPT'];
    rules.push({ family, table: 'nat', chain: CHAIN.prerouting, spec: dnat, owner });
    rules.push({ family, table: 'filter', chain: CHAIN.publish, spec: accept, owner });
  });
  return dedupe(rules);
}
