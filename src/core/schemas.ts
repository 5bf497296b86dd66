/**
 * zod schemas of every external input the controller accepts, whichever way
 * it came in (CLI flags, REST API, Docker plugin, CNI config). Entry points
 * translate their protocol's spelling into these shapes; the controller
 * parses once, here.
 */
import { z } from 'zod';
import { LINK_NAME, LINK_NAME_RULE } from '../kernel/names.js';

/** Docker's name rule for networks and containers. */
export const NAME_MAX = 64;
export const nameSchema = z
  .string()
  .max(NAME_MAX)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);

export const ipSchema = z.union([z.ipv4(), z.ipv6()]);

/** An interface name the kernel takes (src/kernel/names.ts). */
export const linkNameSchema = z.string().regex(LINK_NAME, LINK_NAME_RULE);
export const cidrSchema = z.union([z.cidrv4(), z.cidrv6()]);

export const labelsSchema = z.record(z.string().min(1).max(256), z.string().max(4096));

export const ipamPoolSchema = z.strictObject({
  subnet: cidrSchema.optional(),
  ipRange: cidrSchema.optional(),
  gateway: ipSchema.optional(),
  auxAddresses: z.record(z.string().min(1).max(64), ipSchema).optional(),
});

export const createNetworkSchema = z.strictObject({
  name: nameSchema,
  driver: z
    .string()
    .regex(/^[a-z][a-z0-9_-]*$/)
    .default('bridge'),
  ipam: z
    .strictObject({
      driver: z.string().default('default'),
      config: z.array(ipamPoolSchema).max(8).default([]),
      options: labelsSchema.default({}),
    })
    .default({ driver: 'default', config: [], options: {} }),
  enableIPv6: z.boolean().default(false),
  internal: z.boolean().default(false),
  options: labelsSchema.default({}),
  labels: labelsSchema.default({}),
});
export type CreateNetworkRequest = z.input<typeof createNetworkSchema>;

export const protocolSchema = z.enum(['tcp', 'udp', 'sctp']);
const port = z.number().int().min(1).max(65535);

export const portMappingSchema = z
  .strictObject({
    proto: protocolSchema.default('tcp'),
    hostIp: ipSchema.optional(),
    hostPort: port,
    hostPortEnd: port.optional(),
    containerPort: port,
    containerPortEnd: port.optional(),
  })
  .refine((p) => (p.hostPortEnd ?? p.hostPort) >= p.hostPort, 'host port range ends before it starts')
  .refine(
    (p) =>
      (p.hostPortEnd ?? p.hostPort) - p.hostPort ===
      (p.containerPortEnd ?? p.containerPort) - p.containerPort,
    'host and container port ranges must have the same length',
  );

/** `[ip:]hostPort[-end]:containerPort[-end][/proto]`, as `docker run -p` takes it. */
export function parsePublish(spec: string): z.input<typeof portMappingSchema> {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+)(?:-(\d+))?:(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(
    spec,
  );
  if (!m)
    throw new Error(
      `invalid port mapping ${JSON.stringify(spec)}: expected [ip:]hostPort:containerPort[/proto]`,
    );
  const [, ip, hostPort, hostPortEnd, containerPort, containerPortEnd, proto] = m;
  return {
    proto: (proto as 'tcp' | 'udp' | 'sctp' | undefined) ?? 'tcp',
    ...(ip ? { hostIp: ip.replace(/^\[|\]$/g, '') } : {}),
    hostPort: Number(hostPort),
    ...(hostPortEnd ? { hostPortEnd: Number(hostPortEnd) } : {}),
    containerPort: Number(containerPort),
    ...(containerPortEnd ? { containerPortEnd: Number(containerPortEnd) } : {}),
  };
}

export const macSchema = z.string().regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/);

/** Ids that Docker gives its networks and endpoints, and netctl its own. */
export const idSchema = z.string().regex(/^[0-9a-f]{64}$/);

export const connectSchema = z.strictObject({
  network: z.string().min(1),
  sandbox: z.string().min(1),
  ipv4: z.ipv4().optional(),
  ipv6: z.ipv6().optional(),
  mac: macSchema.optional(),
  aliases: z.array(nameSchema).max(32).default([]),
  portMappings: z.array(portMappingSchema).max(256).default([]),
  ifname: linkNameSchema.optional(),
});
export type ConnectRequest = z.input<typeof connectSchema>;

/**
 * An endpoint made apart from its join, as Docker's CreateEndpoint asks
 * (connect() does both at once). With `addresses: 'given'` the addresses
 * (with their prefix length) are the caller's, held by its IPAM (Docker's);
 * with 'reserve' netctl's IPAM reserves them, the ones named if any.
 */
export const createEndpointSchema = z.strictObject({
  network: z.string().min(1),
  /** The caller's id for it (Docker's EndpointID); a new one when absent. */
  id: idSchema.optional(),
  name: nameSchema.optional(),
  addresses: z.enum(['given', 'reserve']).default('reserve'),
  ipv4: z.union([z.ipv4(), z.cidrv4()]).optional(),
  ipv6: z.union([z.ipv6(), z.cidrv6()]).optional(),
  mac: macSchema.optional(),
  aliases: z.array(nameSchema).max(32).default([]),
});
export type CreateEndpointRequest = z.input<typeof createEndpointSchema>;

/** Where and how an endpoint made by createEndpoint joins a sandbox. */
export const joinSchema = z.strictObject({
  sandbox: z.string().min(1),
  ifname: linkNameSchema.optional(),
  /** 'host-side': the caller moves the interface into the sandbox and configures it (Docker). */
  placement: z.enum(['in-place', 'host-side']).default('in-place'),
});
export type JoinRequest = z.input<typeof joinSchema>;

/**
 * A port to publish, as Docker's port bindings ask for it: a host port of
 * 0 is any free one (`docker run -p 80`, `-P`); a host range with one
 * container port is any free one in that range (`-p 8000-8010:80`);
 * otherwise exactly a PortMapping.
 */
export const portRequestSchema = z
  .strictObject({
    proto: protocolSchema.default('tcp'),
    hostIp: ipSchema.optional(),
    hostPort: z.number().int().min(0).max(65535),
    hostPortEnd: port.optional(),
    containerPort: port,
    containerPortEnd: port.optional(),
  })
  .refine((p) => (p.hostPortEnd ?? p.hostPort) >= p.hostPort, 'host port range ends before it starts');
export type PortRequest = z.input<typeof portRequestSchema>;

export const createSandboxSchema = z.strictObject({
  name: nameSchema,
  hostname: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/)
    .optional(),
  /**
   * Attach to an existing netns (CNI, Docker) instead of making one. Checked
   * by the controller (sandbox-key.ts): a network namespace, and neither
   * netctl's own nor the host's, however the path spells it.
   */
  key: z.string().startsWith('/').max(4096).optional(),
  /** Share a namespace instead: the host's ('host') or another sandbox's ('container:NAME'), as `docker run --network`. */
  netnsOf: z
    .union([z.literal('host'), z.string().regex(/^container:[a-zA-Z0-9][a-zA-Z0-9_.-]*$/)])
    .optional(),
  labels: labelsSchema.default({}),
  /**
   * The id of the sandbox that holds the name now, to be removed first (a
   * restarted container's leftover, as podman's --replace): only once the
   * new one's key has been checked, so a refused key changes nothing.
   */
  replaces: idSchema.optional(),
});
export type CreateSandboxRequest = z.input<typeof createSandboxSchema>;

/**
 * The process a sandbox runs (setSandboxPid): a pid the kernel can have
 * (pid_max is at most 2^22). Never 0 or negative: deleteSandbox kills it,
 * and kill(0) or kill(-1) would signal a process group or every process.
 */
export const sandboxPidSchema = z.strictObject({
  pid: z
    .number()
    .int()
    .min(1)
    .max(2 ** 22),
});
