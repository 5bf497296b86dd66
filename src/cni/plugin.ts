/**
 * netctl-cni: the CNI verbs on netctl's controller (docs/cni.md).
 *
 * An attachment (SPEC.md section 3: one `(CNI_CONTAINERID, CNI_IFNAME)`) is
 * an endpoint of a netctl network, joined to a sandbox that stands for the
 * container: one sandbox per container id, attached to the runtime's netns
 * (`key` = CNI_NETNS; netctl does not own it), labelled with the container
 * id so DEL and GC find it and nothing made by the CLI or Docker is ever
 * touched. The network is netctl's own — the one `netctl network create`
 * made, or one made from the configuration's subnet on first use — so the
 * CLI, Docker and CNI containers share networks, IPAM and state.
 *
 * Written against NetctlApi only: the same handlers run in the daemon
 * (src/server/cni.ts) and in a process of their own (main.ts).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { familyOf, overlaps, parsePrefix, parseSubnet } from '../address.js';
import type { NetctlApi, SandboxDetails } from '../controller/api.js';
import type { Endpoint, Network } from '../core/model.js';
import {
  type CreateNetworkRequest,
  cidrSchema,
  ipSchema,
  labelsSchema,
  linkNameSchema,
  NAME_MAX,
  nameSchema,
} from '../core/schemas.js';
import { BRIDGE_NAME, ENABLE_IP_MASQUERADE, MTU } from '../drivers/bridge/options.js';
import { Errors, isCode } from '../errors.js';
import { log } from '../log.js';
import { staleReason } from '../sandbox/identity.js';
import { type CmdArgs, CniCode, CniError, type Handlers, invalidConfig } from './skel.js';
import {
  baseConfigSchema,
  CURRENT_VERSION,
  type Dns,
  type Interface,
  type IpConfig,
  ignoresUnknownArgs,
  mergeResults,
  type Result,
  type Route,
  upconvertResult,
} from './types.js';

/** Label on every sandbox netctl-cni makes: the runtime's container id. */
export const CONTAINER_ID_LABEL = 'netctl.cni.containerID';

/** CNI_ARGS keys netctl-cni reads (pkg/types CommonArgs plus IP and MAC, as the reference plugins). */
const KNOWN_ARGS = new Set(['IgnoreUnknown', 'IP', 'MAC']);

const poolSchema = z.strictObject({
  subnet: cidrSchema,
  gateway: ipSchema.optional(),
  ipRange: cidrSchema.optional(),
});

/** netctl-cni's configuration: the spec's fields plus how to find (or make) the netctl network. */
export const netctlCniConfigSchema = baseConfigSchema.extend({
  /** The netctl network to attach to; default: the configuration's name. */
  network: nameSchema.optional(),
  // Used only to create the network when it does not exist yet.
  subnet: cidrSchema.optional(),
  gateway: ipSchema.optional(),
  ipRange: cidrSchema.optional(),
  subnets: z.array(poolSchema).min(1).max(8).optional(),
  /** host-local's spelling of the same (`ipam.subnet`...); only netctl's own IPAM allocates. */
  ipam: z
    .looseObject({
      type: z.string().optional(),
      subnet: cidrSchema.optional(),
      gateway: ipSchema.optional(),
      ipRange: cidrSchema.optional(),
    })
    .optional(),
  internal: z.boolean().optional(),
  ipMasq: z.boolean().optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  bridge: linkNameSchema.optional(),
  /** Driver options as `netctl network create -o` takes them. */
  options: labelsSchema.optional(),
});
export type NetctlCniConfig = z.output<typeof netctlCniConfigSchema>;

export function parseConfig(args: CmdArgs): NetctlCniConfig {
  const parsed = netctlCniConfigSchema.safeParse(args.config, { reportInput: true });
  if (!parsed.success) throw invalidConfig(parsed.error.issues);
  const conf = parsed.data;
  const ipamType = conf.ipam?.type;
  if (ipamType !== undefined && ipamType !== 'netctl' && ipamType !== 'netctl-ipam') {
    throw new CniError(
      CniCode.UNSUPPORTED_FIELD,
      `unsupported field ipam.type=${JSON.stringify(ipamType)}`,
      "netctl-cni allocates addresses with netctl's own IPAM; to use netctl's IPAM under another plugin, give that plugin ipam.type netctl-ipam",
    );
  }
  return conf;
}

/** A sandbox name for a container id, within netctl's 64-character names (the id in full when it fits). */
export function sandboxNameOf(containerId: string): string {
  const name = `cni-${containerId}`;
  if (name.length <= NAME_MAX) return name;
  const hash = createHash('sha256').update(containerId).digest('hex').slice(0, 12);
  return `cni-${containerId.slice(0, NAME_MAX - 'cni-'.length - 1 - hash.length)}-${hash}`;
}

export const networkNameOf = (conf: NetctlCniConfig): string => conf.network ?? conf.name;

/** The pools to create the network with, from whichever spelling the configuration used. */
function poolsOf(conf: NetctlCniConfig): z.output<typeof poolSchema>[] | undefined {
  if (conf.subnets) return conf.subnets;
  const single = conf.subnet
    ? { subnet: conf.subnet, gateway: conf.gateway, ipRange: conf.ipRange }
    : conf.ipam?.subnet
      ? { subnet: conf.ipam.subnet, gateway: conf.ipam.gateway, ipRange: conf.ipam.ipRange }
      : undefined;
  if (!single) return undefined;
  return [
    {
      subnet: single.subnet,
      ...(single.gateway ? { gateway: single.gateway } : {}),
      ...(single.ipRange ? { ipRange: single.ipRange } : {}),
    },
  ];
}

/** The network a configuration asks for, as `netctl network create` would make it; undefined without a subnet. */
export function createRequestOf(conf: NetctlCniConfig): CreateNetworkRequest | undefined {
  const pools = poolsOf(conf);
  if (!pools) return undefined;
  return {
    name: networkNameOf(conf),
    driver: 'bridge',
    ipam: { config: pools },
    enableIPv6: pools.some((p) => parsePrefix(p.subnet).family === 6),
    internal: conf.internal ?? false,
    options: {
      ...(conf.options ?? {}),
      ...(conf.bridge ? { [BRIDGE_NAME]: conf.bridge } : {}),
      ...(conf.ipMasq === false ? { [ENABLE_IP_MASQUERADE]: 'false' } : {}),
      ...(conf.mtu ? { [MTU]: String(conf.mtu) } : {}),
    },
    labels: { 'netctl.cni.config': conf.name },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long an ADD waits for another call's creation of its network (bridge, rules: slow on a loaded host). */
const NETWORK_CREATION_WAIT_MS = 15_000;

/**
 * The configuration's network: found by name, or made from its subnet. Many
 * containers may start at once on a network nobody made yet: one creation
 * wins (the pool is claimed by CAS), the others wait for its record. A
 * subnet that another network's record holds is no race: that fails at once.
 */
async function ensureNetwork(api: NetctlApi, conf: NetctlCniConfig): Promise<Network> {
  const name = networkNameOf(conf);
  const request = createRequestOf(conf);
  const deadline = Date.now() + NETWORK_CREATION_WAIT_MS;
  for (;;) {
    // By name from the list of networks: inspectNetwork would also read every endpoint of the host.
    const network = (await api.listNetworks()).find((n) => n.name === name || n.id === name);
    if (network) {
      if (request) checkSameSubnets(network, request);
      return network;
    }
    if (!request) {
      throw new CniError(
        CniCode.INVALID_CONFIG,
        `netctl network ${name} does not exist`,
        `create it with \`netctl network create --subnet CIDR ${name}\`, or give "subnet" in the configuration`,
      );
    }
    try {
      return await api.createNetwork(request);
    } catch (err) {
      // Someone else's creation of the same network is under way or done.
      const racing =
        isCode(err, Errors.NetworkExists) ||
        (isCode(err, Errors.PoolOverlap) && !(await subnetOfAnother(api, name, request)));
      if (!racing || Date.now() > deadline) throw err;
      await sleep(20 + Math.random() * 20);
    }
  }
}

/** Whether a network record other than name's holds a pool overlapping the request's. */
async function subnetOfAnother(
  api: NetctlApi,
  name: string,
  request: CreateNetworkRequest,
): Promise<boolean> {
  const wanted = (request.ipam?.config ?? []).map((c) => parseSubnet(c.subnet as string));
  return (await api.listNetworks()).some(
    (n) =>
      n.name !== name && n.ipam.config.some((c) => wanted.some((w) => overlaps(parseSubnet(c.subnet), w))),
  );
}

function checkSameSubnets(network: Network, request: CreateNetworkRequest): void {
  const have = network.ipam.config.map((c) => c.subnet).sort();
  const want = (request.ipam?.config ?? []).map((c) => c.subnet as string).sort();
  if (have.join(' ') !== want.join(' ')) {
    throw new CniError(
      CniCode.INVALID_CONFIG,
      `netctl network ${network.name} exists with subnet ${have.join(', ') || '(none)'}`,
      `the configuration asks for ${want.join(', ')}: remove its subnet settings or name another network`,
    );
  }
}

/** What a caller asked for this attachment: static addresses, MAC, published ports. */
interface AttachmentRequest {
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  portMappings: { proto: 'tcp' | 'udp' | 'sctp'; hostIp?: string; hostPort: number; containerPort: number }[];
}

/**
 * runtimeConfig (capabilities `ips`, `mac`, `portMappings`), then the
 * configuration's `args.cni`, then CNI_ARGS `IP=`/`MAC=` (CONVENTIONS.md).
 */
export function attachmentRequestOf(conf: NetctlCniConfig, args: CmdArgs): AttachmentRequest {
  const cniArgs = args.argsMap;
  if (!ignoresUnknownArgs(cniArgs)) {
    for (const [key, value] of cniArgs) {
      if (!KNOWN_ARGS.has(key))
        throw new CniError(
          CniCode.UNSUPPORTED_FIELD,
          `unsupported CNI_ARGS key ${key}=${value}`,
          'set IgnoreUnknown=1 to ignore it',
        );
    }
  }
  const rc = conf.runtimeConfig ?? {};
  if (rc.bandwidth && Object.keys(rc.bandwidth).length) {
    throw new CniError(
      CniCode.UNSUPPORTED_FIELD,
      `unsupported field runtimeConfig.bandwidth=${JSON.stringify(rc.bandwidth)}`,
      'netctl-cni does not shape traffic: chain the reference bandwidth plugin after it',
    );
  }
  const ips = rc.ips?.length
    ? rc.ips
    : conf.args?.cni?.ips?.length
      ? conf.args.cni.ips
      : (cniArgs.get('IP')?.split(',').filter(Boolean) ?? []);
  const out: AttachmentRequest = { portMappings: [] };
  for (const text of ips) {
    const ip = text.includes('/') ? text.slice(0, text.indexOf('/')) : text;
    if (!ipSchema.safeParse(ip).success)
      throw new CniError(CniCode.INVALID_CONFIG, `invalid static address ${JSON.stringify(text)}`);
    const key = familyOf(ip) === 4 ? 'ipv4' : 'ipv6';
    if (out[key]) {
      throw new CniError(
        CniCode.UNSUPPORTED_FIELD,
        `unsupported field ips=${JSON.stringify(ips)}`,
        'netctl gives an attachment one address per family',
      );
    }
    out[key] = ip;
  }
  const mac = rc.mac ?? conf.args?.cni?.mac ?? cniArgs.get('MAC');
  if (mac !== undefined) out.mac = mac;
  for (const p of rc.portMappings ?? []) {
    out.portMappings.push({
      proto: p.protocol,
      ...(p.hostIP ? { hostIp: p.hostIP } : {}),
      hostPort: p.hostPort,
      containerPort: p.containerPort,
    });
  }
  return out;
}

/** The container's sandbox, if the runtime attached it before; undefined when there is none. */
async function findSandbox(api: NetctlApi, containerId: string): Promise<SandboxDetails | undefined> {
  try {
    return await api.inspectSandbox(sandboxNameOf(containerId));
  } catch (err) {
    if (isCode(err, Errors.SandboxNotFound)) return undefined;
    throw err;
  }
}

/** How many times an ADD waits (20 ms more each time, 2.3 s in all) for a marked sandbox to settle. */
const DELETING_WAITS = 15;

/**
 * The container's sandbox on its netns: the one an earlier ADD made (for
 * another network) or a new one. A sandbox of the same container id on
 * another namespace is a restarted container's leftover: it goes first.
 */
async function ensureSandbox(
  api: NetctlApi,
  args: CmdArgs,
): Promise<{ details: SandboxDetails; created: boolean }> {
  const name = sandboxNameOf(args.containerId);
  for (let attempt = 0, waits = 0; ; attempt++) {
    const found = await findSandbox(api, args.containerId);
    if (found?.sandbox.deleting && found.sandbox.key === args.netns && waits < DELETING_WAITS) {
      // Another ADD's cleanup is looking whether it is empty: it goes, or stays (in use) and
      // is unmarked. Never deleted from here: an attachment that won on it may be committed.
      waits++;
      attempt--;
      await new Promise((r) => setTimeout(r, 20 * waits));
      continue;
    }
    if (found) {
      if (found.sandbox.key === args.netns && !staleReason(found.sandbox) && !found.sandbox.deleting)
        return { details: found, created: false };
      // A restarted container's leftover, or one whose delete died half-way (still marked): it goes.
      await api.deleteSandbox(found.sandbox.id).catch((err: unknown) => {
        if (!isCode(err, Errors.SandboxNotFound)) throw err;
      });
    }
    try {
      const sandbox = await api.createSandbox({
        name,
        key: args.netns,
        labels: { [CONTAINER_ID_LABEL]: args.containerId },
      });
      return { details: { sandbox, endpoints: [] }, created: true };
    } catch (err) {
      // Go skel's check, done by the controller for every entry point: CNI_NETNS
      // must be a netns, and neither the plugin's own nor the host's.
      if (isCode(err, Errors.InvalidNetns)) {
        throw new CniError(CniCode.INVALID_ENVIRONMENT, 'invalid CNI_NETNS', (err as Error).message);
      }
      if (!isCode(err, Errors.SandboxExists) || attempt >= 3) throw err;
    }
  }
}

/** One ADD: the container's sandbox, the network, the attachment. */
async function attach(
  api: NetctlApi,
  conf: NetctlCniConfig,
  args: CmdArgs,
  wanted: AttachmentRequest,
): Promise<Result> {
  // The sandbox first: it checks CNI_NETNS before the network may be made.
  const { details, created } = await ensureSandbox(api, args);
  try {
    const network = await ensureNetwork(api, conf);
    // SPEC.md "ADD": an interface of the requested name in the container is an error.
    const clash = details.endpoints.find((e) => e.ifname === args.ifname);
    if (clash) {
      throw new CniError(
        CniCode.CONFLICT,
        `interface ${args.ifname} already exists in container ${args.containerId}`,
        `it is the container's attachment to network ${clash.networkName}`,
      );
    }
    const endpoint = await api.connect({
      network: network.id,
      sandbox: details.sandbox.id,
      ifname: args.ifname,
      ...(wanted.ipv4 ? { ipv4: wanted.ipv4 } : {}),
      ...(wanted.ipv6 ? { ipv6: wanted.ipv6 } : {}),
      ...(wanted.mac ? { mac: wanted.mac } : {}),
      portMappings: wanted.portMappings,
    });
    const own = resultOf(network, endpoint, args, {
      // The controller routes through a sandbox's first endpoint only.
      defaultRoute: details.endpoints.length === 0,
      dns: conf.dns,
    });
    return mergeResults(prevResultOf(conf), own);
  } catch (err) {
    // The runtime sends a DEL after a failed ADD, but do not leave an empty
    // sandbox to it — and take nothing another ADD of the container attached
    // to it meanwhile: only an empty one goes.
    if (created)
      await dropSandboxIfEmpty(api, details.sandbox.id).catch((undoErr: unknown) =>
        log.warn(
          { err: undoErr, sandbox: details.sandbox.name },
          'could not remove the sandbox of a failed ADD',
        ),
      );
    throw err;
  }
}

/** Remove the container's sandbox if nothing is (being) attached to it; gone or in use is fine. */
async function dropSandboxIfEmpty(api: NetctlApi, sandboxId: string): Promise<void> {
  try {
    await api.deleteSandbox(sandboxId, { ifEmpty: true });
  } catch (err) {
    if (!isCode(err, Errors.SandboxInUse, Errors.SandboxNotFound)) throw err;
  }
}

const DEFAULT_ROUTE: Record<4 | 6, string> = { 4: '0.0.0.0/0', 6: '::/0' };

/** The attachment as a 1.1.0 result: bridge, host veth, container interface; its addresses, routes, DNS. */
export function resultOf(
  network: Network,
  endpoint: Endpoint,
  args: { ifname: string; netns: string },
  options: { defaultRoute: boolean; dns?: Dns | undefined },
): Result {
  const interfaces: Interface[] = [];
  if (network.driverData.bridge)
    interfaces.push({
      name: network.driverData.bridge,
      ...(network.driverData.mac ? { mac: network.driverData.mac } : {}),
    });
  if (endpoint.driverData.hostIfname)
    interfaces.push({
      name: endpoint.driverData.hostIfname,
      ...(endpoint.driverData.hostMac ? { mac: endpoint.driverData.hostMac } : {}),
    });
  interfaces.push({ name: args.ifname, mac: endpoint.mac, sandbox: args.netns });
  const container = interfaces.length - 1;
  const ips: IpConfig[] = [];
  const routes: Route[] = [];
  for (const address of [endpoint.ipv4, endpoint.ipv6]) {
    if (!address) continue;
    const family = parsePrefix(address).family;
    const pool = network.ipam.config.find((c) => parsePrefix(c.subnet).family === family);
    ips.push({ address, ...(pool ? { gateway: pool.gateway } : {}), interface: container });
    if (pool && options.defaultRoute && !network.internal)
      routes.push({ dst: DEFAULT_ROUTE[family], gw: pool.gateway });
  }
  const result: Result = { cniVersion: CURRENT_VERSION, interfaces, ips };
  if (routes.length) result.routes = routes;
  if (options.dns && Object.keys(options.dns).length) result.dns = options.dns;
  return result;
}

function prevResultOf(conf: NetctlCniConfig): Result | undefined {
  return conf.prevResult ? upconvertResult(conf.prevResult) : undefined;
}

export function netctlCniHandlers(backend: { api(): Promise<NetctlApi> }): Handlers {
  return {
    async add(args) {
      const conf = parseConfig(args);
      const wanted = attachmentRequestOf(conf, args);
      const api = await backend.api();
      for (let attempt = 1; ; attempt++) {
        try {
          return await attach(api, conf, args, wanted);
        } catch (err) {
          // The container's sandbox went under it (another call's cleanup of it): once more, on a new one.
          if (!isCode(err, Errors.SandboxNotFound) || attempt >= 3) throw err;
        }
      }
    },

    async del(args) {
      const conf = parseConfig(args);
      const api = await backend.api();
      const found = await findSandbox(api, args.containerId);
      if (!found) return; // never added, or deleted already: DEL is idempotent
      const name = networkNameOf(conf);
      const endpoint = found.endpoints.find(
        (e) => e.networkName === name && (e.ifname === undefined || e.ifname === args.ifname),
      );
      if (endpoint) {
        try {
          await api.disconnect(endpoint.networkId, found.sandbox.id);
        } catch (err) {
          if (!isCode(err, Errors.EndpointNotFound, Errors.NetworkNotFound)) throw err;
        }
      }
      const left = found.endpoints.filter((e) => e !== endpoint);
      if (left.length === 0) await dropSandboxIfEmpty(api, found.sandbox.id);
    },

    async check(args) {
      const conf = parseConfig(args);
      const prev = prevResultOf(conf);
      // SPEC.md "CHECK": the plugin must consult prevResult.
      if (!prev) throw new CniError(CniCode.INVALID_CONFIG, 'required prevResult missing');
      const api = await backend.api();
      const name = networkNameOf(conf);
      const found = await findSandbox(api, args.containerId);
      const endpoint = found?.endpoints.find((e) => e.networkName === name && e.ifname === args.ifname);
      if (!found || !endpoint) {
        throw new CniError(
          CniCode.UNKNOWN_CONTAINER,
          `container ${args.containerId} has no attachment ${args.ifname} to network ${name}`,
        );
      }
      const report = await api.check(endpoint.networkId, found.sandbox.id);
      const problems = [...report.problems, ...(report.sandboxProblems ?? [])];
      if (found.sandbox.key !== args.netns)
        problems.push(`the container's netns: attached to ${found.sandbox.key}, CNI_NETNS is ${args.netns}`);
      problems.push(...prevResultProblems(prev, endpoint, args));
      if (problems.length) {
        const hint = report.problems.length
          ? ` (\`netctl repair ${report.network}\` puts the network's part back)`
          : '';
        throw new CniError(
          CniCode.CHECK_FAILED,
          `attachment ${args.containerId}/${args.ifname} to network ${report.network} is not as ADD left it`,
          `missing: ${problems.join(', ')}${hint}`,
        );
      }
    },

    async status(args) {
      const conf = parseConfig(args);
      let api: NetctlApi;
      try {
        api = await backend.api();
        const health = await api.health();
        if (!health.storeReachable) throw new Error(`state store ${health.store} is unreachable`);
      } catch (err) {
        throw new CniError(
          CniCode.PLUGIN_NOT_AVAILABLE,
          'netctl cannot take ADDs: its state store is unavailable',
          (err as Error).message,
        );
      }
      const name = networkNameOf(conf);
      let report: Awaited<ReturnType<NetctlApi['check']>>;
      try {
        report = await api.check(name);
      } catch (err) {
        if (!isCode(err, Errors.NetworkNotFound)) throw err;
        if (createRequestOf(conf)) return; // the first ADD makes it
        throw new CniError(
          CniCode.PLUGIN_NOT_AVAILABLE,
          `netctl network ${name} does not exist`,
          `create it with \`netctl network create --subnet CIDR ${name}\`, or give "subnet" in the configuration`,
        );
      }
      if (report.problems.length) {
        throw new CniError(
          CniCode.LIMITED_CONNECTIVITY,
          `netctl network ${name} is missing part of its kernel side`,
          `missing: ${report.problems.join(', ')} (\`netctl repair ${name}\` puts it back)`,
        );
      }
    },

    async gc(args) {
      const conf = parseConfig(args);
      const valid = conf['cni.dev/valid-attachments'];
      // Without the list, "remove everything not in it" would remove everything.
      if (!valid) throw new CniError(CniCode.INVALID_CONFIG, 'cni.dev/valid-attachments missing');
      const keep = new Set(valid.map((a) => `${a.containerID}\n${a.ifname}`));
      const api = await backend.api();
      let network: Network;
      let endpoints: Awaited<ReturnType<NetctlApi['inspectNetwork']>>['endpoints'];
      try {
        ({ network, endpoints } = await api.inspectNetwork(networkNameOf(conf)));
      } catch (err) {
        if (isCode(err, Errors.NetworkNotFound)) return;
        throw err;
      }
      // Only attachments of this network, in sandboxes netctl-cni made (never
      // the CLI's or Docker's). A sandbox with no endpoint here is not this
      // GC's: it may be an ADD's, made a moment ago and about to connect.
      const cniSandboxes = new Map(
        (await api.listSandboxes())
          .filter((s) => s.labels[CONTAINER_ID_LABEL] !== undefined)
          .map((s) => [s.id, s]),
      );
      const failures: string[] = [];
      for (const endpoint of endpoints) {
        const sandbox = endpoint.sandboxId ? cniSandboxes.get(endpoint.sandboxId) : undefined;
        if (!sandbox) continue;
        const containerId = sandbox.labels[CONTAINER_ID_LABEL] as string;
        if (keep.has(`${containerId}\n${endpoint.ifname ?? ''}`)) continue;
        try {
          await api.disconnect(network.id, sandbox.id);
          // Its last attachment gone: the container's sandbox goes too (as DEL does).
          await dropSandboxIfEmpty(api, sandbox.id);
        } catch (err) {
          // SPEC.md "GC": carry on, remove as much as possible, report the errors.
          if (isCode(err, Errors.SandboxNotFound, Errors.EndpointNotFound)) continue;
          failures.push(`${containerId}/${endpoint.ifname ?? '-'}: ${(err as Error).message}`);
        }
      }
      if (failures.length) {
        throw new CniError(
          CniCode.INTERNAL,
          'GC could not remove every stale attachment',
          failures.join('; '),
        );
      }
    },
  };
}

/** CHECK's reading of prevResult: our container interface, with the endpoint's addresses on it. */
function prevResultProblems(prev: Result, endpoint: Endpoint, args: CmdArgs): string[] {
  const index = (prev.interfaces ?? []).findIndex((i) => i.name === args.ifname && i.sandbox === args.netns);
  if (index < 0) return [`prevResult lists no interface ${args.ifname} in ${args.netns}`];
  const listed = new Set((prev.ips ?? []).filter((ip) => ip.interface === index).map((ip) => ip.address));
  return [endpoint.ipv4, endpoint.ipv6]
    .filter((a): a is string => a !== undefined && !listed.has(a))
    .map((a) => `prevResult lacks address ${a}`);
}
