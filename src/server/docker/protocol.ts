/**
 * Docker's remote plugin protocol, as zod schemas in Docker's own spelling
 * (moby libnetwork drivers/remote/api/api.go, ipams/remote/api/api.go,
 * docs/remote.md, docs/ipam.md). These are the route schemas: a body that
 * does not parse never reaches the controller.
 *
 * Objects are not strict here, unlike the REST API's: dockerd adds fields
 * from one version to the next (ConnectivityScope, GwAllocChecker, ...), and
 * a plugin that refused them would break on the next Docker upgrade. Unknown
 * fields are dropped; known ones are checked.
 */
import { z } from 'zod';
import { cidrSchema, idSchema, ipSchema, macSchema } from '../../core/schemas.js';

/** What the plugin answers with (dockerd's plugin client accepts it, or plain JSON). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

// libnetwork's netlabel keys, as they arrive in Options.
export const GENERIC_OPTIONS = 'com.docker.network.generic';
export const ENABLE_IPV6 = 'com.docker.network.enable_ipv6';
export const INTERNAL = 'com.docker.network.internal';
export const PORT_MAP = 'com.docker.network.portmap';
export const EXPOSED_PORTS = 'com.docker.network.endpoint.exposedports';
export const MAC_ADDRESS = 'com.docker.network.endpoint.macaddress';
/** ipamapi.RequestAddressType, and the value dockerd gives it for a network's gateway. */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
export const GATEWAY_ADDRESS = 'com.docker.network.gateway';

/** netctl's own option, in `-o` (driver) and `--ipam-opt`: the netctl network's name. */
export const NETCTL_NAME = 'netctl.name';

/** Go's encoding of a nil slice or map is null; treat it as empty. */
const list = <T extends z.ZodType>(item: T) =>
  z
    .array(item)
    .nullish()
    .transform((v) => v ?? []);
const stringMap = z
  .record(z.string(), z.string())
  .nullish()
  .transform((v) => v ?? {});
/** An empty string where Go has a nil net.IP or IPNet. */
const blank = z.literal('').transform(() => undefined);

/** Go's ParseBool spelling (`-o` values are strings) or a JSON boolean. */
const flag = z
  .union([
    z.boolean(),
    z.enum(['1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False']),
  ])
  .transform((v) => (typeof v === 'boolean' ? v : ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)));

// ------------------------------------------------------------ NetworkDriver

/** driverapi.IPAMData as it marshals: addresses with their prefix length. */
export const ipamDataSchema = z.object({
  AddressSpace: z.string(),
  Pool: cidrSchema,
  Gateway: z.union([cidrSchema, blank]).optional(),
  AuxAddresses: stringMap.pipe(z.record(z.string(), cidrSchema)),
});

export const createNetworkSchema = z.object({
  NetworkID: idSchema,
  Options: z
    .object({
      [GENERIC_OPTIONS]: stringMap,
      [ENABLE_IPV6]: flag.optional(),
      [INTERNAL]: flag.optional(),
    })
    .nullish()
    .transform((v) => v ?? { [GENERIC_OPTIONS]: {} }),
  IPv4Data: list(ipamDataSchema),
  IPv6Data: list(ipamDataSchema),
});

export const networkSchema = z.object({ NetworkID: idSchema });

/** Swarm's cluster-wide allocation; a local-scope driver has nothing to allocate. */
export const allocateNetworkSchema = z.object({
  NetworkID: idSchema,
  Options: stringMap,
  IPv4Data: list(ipamDataSchema),
  IPv6Data: list(ipamDataSchema),
});

/** types.TransportPort: IANA protocol numbers. */
export const PROTOCOLS = { 6: 'tcp', 17: 'udp', 132: 'sctp' } as const;
export const PROTOCOL_NUMBERS = { tcp: 6, udp: 17, sctp: 132 } as const;
const protocolNumber = z.union([z.literal(6), z.literal(17), z.literal(132)]);
const portNumber = z.number().int().min(0).max(65535);

/** types.PortBinding: IP is the container's (often empty), HostIP the host's. */
export const portBindingSchema = z.object({
  Proto: protocolNumber,
  IP: z.union([ipSchema, blank]).optional(),
  Port: portNumber,
  HostIP: z.union([ipSchema, blank]).optional(),
  HostPort: portNumber.default(0),
  HostPortEnd: portNumber.default(0),
});
export type PortBinding = z.output<typeof portBindingSchema>;

export const transportPortSchema = z.object({ Proto: protocolNumber, Port: portNumber });

/** Endpoint options: only the ones netctl reads are checked. */
const endpointOptions = z
  .object({
    [PORT_MAP]: list(portBindingSchema),
    [EXPOSED_PORTS]: list(transportPortSchema),
  })
  .nullish()
  .transform((v) => v ?? { [PORT_MAP]: [], [EXPOSED_PORTS]: [] });

export const createEndpointSchema = z.object({
  NetworkID: idSchema,
  EndpointID: idSchema,
  Interface: z
    .object({
      Address: z.union([z.cidrv4(), blank]).optional(),
      AddressIPv6: z.union([z.cidrv6(), blank]).optional(),
      MacAddress: z.union([macSchema, blank]).optional(),
    })
    .nullish(),
  Options: endpointOptions,
});

export const endpointSchema = z.object({ NetworkID: idSchema, EndpointID: idSchema });

export const joinSchema = z.object({
  NetworkID: idSchema,
  EndpointID: idSchema,
  /** The container's netns path (/var/run/docker/netns/<id>, under --exec-root). */
  SandboxKey: z.string().startsWith('/'),
  Options: z.record(z.string(), z.unknown()).nullish(),
});

export const externalConnectivitySchema = z.object({
  NetworkID: idSchema,
  EndpointID: idSchema,
  Options: endpointOptions,
});

export const discoverySchema = z.object({
  DiscoveryType: z.number().int(),
  DiscoveryData: z.unknown(),
});

// -------------------------------------------------------------- IpamDriver

export const requestPoolSchema = z.object({
  AddressSpace: z.string().min(1),
  Pool: z.union([cidrSchema, blank]).optional(),
  SubPool: z.union([cidrSchema, blank]).optional(),
  Options: stringMap,
  V6: z.boolean().default(false),
});

export const releasePoolSchema = z.object({ PoolID: z.string().min(1) });

export const requestAddressSchema = z.object({
  PoolID: z.string().min(1),
  Address: z.union([ipSchema, blank]).optional(),
  Options: stringMap,
});

export const releaseAddressSchema = z.object({
  PoolID: z.string().min(1),
  Address: ipSchema,
});
