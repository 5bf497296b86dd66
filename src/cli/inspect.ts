/**
 * `netctl network inspect` prints what `docker network inspect` prints, in
 * Docker's spelling, so tools written for one read the other. One addition:
 * each container's published ports (as `docker inspect` spells
 * NetworkSettings.Ports), because dockerd 20.10 drops a remote driver's
 * mappings from `docker port` and this is where to find them.
 */
import type { NetworkDetails } from '../controller/api.js';
import type { PortMapping } from '../core/model.js';

export type DockerPorts = Record<string, { HostIp: string; HostPort: string }[]>;

/** {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}; ranges one entry per port, as Docker does. */
export function dockerPorts(mappings: PortMapping[]): DockerPorts {
  const ports: DockerPorts = {};
  for (const m of mappings) {
    const count = (m.hostPortEnd ?? m.hostPort) - m.hostPort;
    for (let i = 0; i <= count; i++) {
      const key = `${m.containerPort + i}/${m.proto}`;
      ports[key] ??= [];
      ports[key].push({ HostIp: m.hostIp ?? '0.0.0.0', HostPort: String(m.hostPort + i) });
    }
  }
  return ports;
}

export function dockerNetworkInspect({ network, endpoints, peers }: NetworkDetails) {
  return {
    Name: network.name,
    Id: network.id,
    Created: network.created,
    Scope: network.scope,
    Driver: network.driver,
    EnableIPv6: network.enableIPv6,
    IPAM: {
      Driver: network.ipam.driver,
      Options: network.ipam.options,
      Config: network.ipam.config.map((c) => ({
        Subnet: c.subnet,
        ...(c.ipRange ? { IPRange: c.ipRange } : {}),
        Gateway: c.gateway,
        ...(c.auxAddresses && Object.keys(c.auxAddresses).length
          ? { AuxiliaryAddresses: c.auxAddresses }
          : {}),
      })),
    },
    Internal: network.internal,
    Attachable: true,
    Ingress: false,
    ConfigOnly: false,
    // Docker keys these by container id, and an endpoint without one by "ep-<endpoint id>".
    Containers: Object.fromEntries(
      endpoints.map((e) => [
        e.sandboxId ?? `ep-${e.id}`,
        {
          Name: e.sandboxName ?? e.name,
          EndpointID: e.id,
          MacAddress: e.mac,
          IPv4Address: e.ipv4 ?? '',
          IPv6Address: e.ipv6 ?? '',
          Ports: dockerPorts(e.portMappings),
        },
      ]),
    ),
    Options: network.options,
    Labels: network.labels,
    // Docker's overlay lists the hosts of the network; netctl says how many endpoints each has.
    ...(peers ? { Peers: peers.map((p) => ({ Name: p.name, IP: p.ip, Endpoints: p.endpoints })) } : {}),
  };
}
