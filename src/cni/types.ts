/**
 * CNI types (containernetworking/cni SPEC.md, pkg/types/100 and 040): the
 * versions we speak, the network configuration, runtimeConfig and CNI_ARGS,
 * and results. Plugins build the newest result (1.1.0) and the dispatcher
 * converts it down to the version the configuration asked for, as
 * pkg/types/100's converters do; a prevResult in any supported version is
 * read up into 1.1.0.
 */
import { z } from 'zod';
import { familyOf, parsePrefix } from '../address.js';
import { ipSchema } from '../core/schemas.js';

/** Spec versions netctl's plugins speak (VERSION), oldest first. 0.1.0/0.2.0 results had no interfaces. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const CURRENT_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Semver comparison of x.y.z versions (what pkg/version.GreaterThanOrEqualTo does). */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

// ------------------------------------------------------------------ results

/** SPEC.md "ADD Success" (1.1.0). */
export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  /** The netns path for interfaces inside the container; absent on the host. */
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  /** CIDR, e.g. 10.1.0.5/24. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

const dnsSchema = z.looseObject({
  nameservers: z.array(z.string()).optional(),
  domain: z.string().optional(),
  search: z.array(z.string()).optional(),
  options: z.array(z.string()).optional(),
});

const cidrText = z.string().refine((s) => {
  try {
    parsePrefix(s);
    return s.includes('/');
  } catch {
    return false;
  }
}, 'an address in CIDR notation');

/**
 * A result as another plugin (or the runtime's cache) wrote it, in any
 * version from 0.3.0 on: 0.3.x/0.4.0 ips carry a `version` field and
 * interfaces no mtu; 1.x the other way round. Read leniently, as Go's
 * json.Unmarshal does (unknown keys ignored).
 */
export const anyResultSchema = z.looseObject({
  cniVersion: z.string().optional(),
  interfaces: z
    .array(
      z.looseObject({
        name: z.string(),
        mac: z.string().optional(),
        mtu: z.number().int().optional(),
        sandbox: z.string().optional(),
        socketPath: z.string().optional(),
        pciID: z.string().optional(),
      }),
    )
    .nullish(),
  ips: z
    .array(
      z.looseObject({
        version: z.enum(['4', '6']).optional(),
        address: cidrText,
        gateway: ipSchema.optional(),
        interface: z.number().int().min(0).optional(),
      }),
    )
    .nullish(),
  routes: z
    .array(
      z.looseObject({
        dst: cidrText,
        gw: ipSchema.optional(),
        mtu: z.number().int().optional(),
        advmss: z.number().int().optional(),
        priority: z.number().int().optional(),
        table: z.number().int().optional(),
        scope: z.number().int().optional(),
      }),
    )
    .nullish(),
  dns: dnsSchema.nullish(),
});

const defined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

function isEmptyDns(dns: Dns | undefined): boolean {
  return !dns || Object.values(dns).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));
}

/** A parsed result of any version, as a 1.1.0 Result (pkg/types/100 convertFrom04x / convertFrom100). */
export function upconvertResult(raw: z.output<typeof anyResultSchema>): Result {
  const result: Result = { cniVersion: CURRENT_VERSION };
  if (raw.interfaces?.length)
    result.interfaces = raw.interfaces.map((i) =>
      defined({
        name: i.name,
        mac: i.mac,
        mtu: i.mtu,
        sandbox: i.sandbox,
        socketPath: i.socketPath,
        pciID: i.pciID,
      }),
    );
  if (raw.ips?.length)
    result.ips = raw.ips.map((ip) =>
      defined({ address: ip.address, gateway: ip.gateway, interface: ip.interface }),
    );
  if (raw.routes?.length)
    result.routes = raw.routes.map((r) =>
      defined({
        dst: r.dst,
        gw: r.gw,
        mtu: r.mtu,
        advmss: r.advmss,
        priority: r.priority,
        table: r.table,
        scope: r.scope,
      }),
    );
  if (raw.dns && !isEmptyDns(raw.dns)) result.dns = dnsOf(raw.dns);
  return result;
}

function dnsOf(dns: Dns): Dns {
  return defined({
    nameservers: dns.nameservers,
    domain: dns.domain,
    search: dns.search,
    options: dns.options,
  });
}

/**
 * The 1.1.0 result as `version` spells it. 1.0.0 has the same types; 0.3.x
 * and 0.4.0 (pkg/types/040) add `version` to each IP and know neither an
 * interface's mtu/socketPath/pciID nor a route's attributes beyond dst and gw.
 * An empty dns is left out (pkg/types/100 Result.MarshalJSON).
 */
export function convertResult(result: Result, version: CniVersion): Record<string, unknown> {
  const dns = isEmptyDns(result.dns) ? undefined : dnsOf(result.dns as Dns);
  if (versionAtLeast(version, '1.0.0')) {
    return defined({
      cniVersion: version,
      interfaces: result.interfaces?.length ? result.interfaces : undefined,
      ips: result.ips?.length ? result.ips : undefined,
      routes: result.routes?.length ? result.routes : undefined,
      dns,
    });
  }
  return defined({
    cniVersion: version,
    interfaces: result.interfaces?.length
      ? result.interfaces.map((i) => defined({ name: i.name, mac: i.mac, sandbox: i.sandbox }))
      : undefined,
    ips: result.ips?.length
      ? result.ips.map((ip) =>
          defined({
            version: String(familyOf(parsePrefix(ip.address).ip)),
            address: ip.address,
            gateway: ip.gateway,
            interface: ip.interface,
          }),
        )
      : undefined,
    routes: result.routes?.length ? result.routes.map((r) => defined({ dst: r.dst, gw: r.gw })) : undefined,
    dns,
  });
}

/**
 * Append one plugin's own result to the prevResult it was given (SPEC.md:
 * a plugin handed a prevResult must pass it on, with its changes): its
 * interfaces after the earlier ones, its IPs' interface indexes shifted by
 * as many, routes after the earlier ones, DNS only where none was set.
 */
export function mergeResults(prev: Result | undefined, own: Result): Result {
  if (!prev) return own;
  const offset = prev.interfaces?.length ?? 0;
  const merged: Result = { cniVersion: CURRENT_VERSION };
  const interfaces = [...(prev.interfaces ?? []), ...(own.interfaces ?? [])];
  const ips = [
    ...(prev.ips ?? []),
    ...(own.ips ?? []).map((ip) =>
      ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset },
    ),
  ];
  const routes = [...(prev.routes ?? []), ...(own.routes ?? [])];
  if (interfaces.length) merged.interfaces = interfaces;
  if (ips.length) merged.ips = ips;
  if (routes.length) merged.routes = routes;
  const dns = isEmptyDns(prev.dns) ? own.dns : prev.dns;
  if (!isEmptyDns(dns)) merged.dns = dns as Dns;
  return merged;
}

// ------------------------------------------------------------ configuration

/** CONVENTIONS.md "portMappings" (the runtime's capability argument). */
export const portMappingArgSchema = z.looseObject({
  hostPort: z.number().int().min(1).max(65535),
  containerPort: z.number().int().min(1).max(65535),
  protocol: z
    .string()
    .transform((p) => p.toLowerCase())
    .pipe(z.enum(['tcp', 'udp', 'sctp']))
    .default('tcp'),
  hostIP: z.union([ipSchema, z.literal('')]).optional(),
});

/** The runtimeConfig capability arguments netctl's plugins understand (CONVENTIONS.md). */
export const runtimeConfigSchema = z.looseObject({
  portMappings: z.array(portMappingArgSchema).optional(),
  /** Static addresses, with or without a prefix length. */
  ips: z.array(z.string()).optional(),
  mac: z
    .string()
    .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/)
    .optional(),
  bandwidth: z.record(z.string(), z.unknown()).optional(),
});

/** The attachments a GC keeps (SPEC.md "GC"). */
export const validAttachmentsSchema = z.array(z.looseObject({ containerID: z.string(), ifname: z.string() }));

/** Fields every plugin's configuration has (SPEC.md section 1 and "Deriving request configuration"). */
export const baseConfigSchema = z.looseObject({
  cniVersion: z.string(),
  name: z.string(),
  type: z.string().optional(),
  runtimeConfig: runtimeConfigSchema.optional(),
  prevResult: anyResultSchema.optional(),
  dns: dnsSchema.optional(),
  /** CONVENTIONS.md "args": `{"cni": {"ips": [...], "mac": "..."}}`. */
  args: z
    .looseObject({
      cni: z.looseObject({ ips: z.array(z.string()).optional(), mac: z.string().optional() }).optional(),
    })
    .optional(),
  'cni.dev/valid-attachments': validAttachmentsSchema.optional(),
});

/**
 * CNI_ARGS: `K=V;K2=V2` (pkg/types/args.go). Keys netctl reads: IP (static
 * address(es), comma-separated), MAC. Others are refused unless
 * IgnoreUnknown is set, as pkg/types LoadArgs does.
 */
export function parseCniArgs(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === '') return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`invalid pair ${JSON.stringify(pair)} (expected KEY=VALUE)`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

/** Whether CNI_ARGS asks for unknown keys to be ignored (IgnoreUnknown=1/true, Go's UnmarshallableBool). */
export function ignoresUnknownArgs(args: Map<string, string>): boolean {
  const v = args.get('IgnoreUnknown')?.toLowerCase();
  return v === '1' || v === 'true';
}
