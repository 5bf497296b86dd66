/**
 * Published ports between Docker's spelling (types.PortBinding, IANA
 * protocol numbers) and netctl's (PortRequest, PortMapping).
 */
import { parsePrefix } from '../../address.js';
import type { Endpoint, PortMapping } from '../../core/model.js';
import type { PortRequest } from '../../core/schemas.js';
import { type PortBinding, PROTOCOL_NUMBERS, PROTOCOLS } from './protocol.js';

/** Docker's bindings as port requests: a host IP of ""/0.0.0.0/:: is any address. */
export function portRequests(bindings: PortBinding[]): PortRequest[] {
  return bindings.map((b) => {
    const anyHost = !b.HostIP || b.HostIP === '0.0.0.0' || b.HostIP === '::';
    return {
      proto: PROTOCOLS[b.Proto],
      ...(anyHost ? {} : { hostIp: b.HostIP }),
      hostPort: b.HostPort,
      ...(b.HostPortEnd > b.HostPort ? { hostPortEnd: b.HostPortEnd } : {}),
      containerPort: b.Port,
    };
  });
}

/** An endpoint's mappings as Docker's PortBindings (for EndpointOperInfo), one per port. */
export function portBindings(endpoint: Endpoint): Record<string, unknown>[] {
  const ip = endpoint.ipv4 ? parsePrefix(endpoint.ipv4).ip : '';
  return endpoint.portMappings.flatMap((m: PortMapping) =>
    Array.from({ length: (m.hostPortEnd ?? m.hostPort) - m.hostPort + 1 }, (_, i) => ({
      Proto: PROTOCOL_NUMBERS[m.proto],
      IP: ip,
      Port: m.containerPort + i,
      HostIP: m.hostIp ?? '0.0.0.0',
      HostPort: m.hostPort + i,
      HostPortEnd: m.hostPort + i,
    })),
  );
}
