/**
 * netctl-cni: the CNI verbs on netctl's controller (docs/cni.md), one
 * function per verb.
 *
 * An attachment (SPEC.md section 3: one `(CNI_CONTAINERID, CNI_IFNAME)`) is
 * an endpoint of a netctl network, joined to a sandbox that stands for the
 * container (sandbox.ts). The network is netctl's own — the one `netctl
 * network create` made, or one made from the configuration's subnet on
 * first use (network.ts) — so the CLI, Docker and CNI containers share
 * networks, IPAM and state.
 *
 * Written against NetctlApi only: the same handlers run in the daemon
 * (src/server/cni.ts) and in a process of their own (main.ts).
 */
import type { NetctlApi, SandboxDetails } from '../controller/api.js';
import type { Network } from '../core/model.js';
import { Errors, isCode } from '../errors.js';
import { log } from '../log.js';
import { validAttachments } from './args.js';
import {
  type AttachmentRequest,
  attachmentRequestOf,
  createRequestOf,
  type NetctlCniConfig,
  networkNameOf,
  parseConfig,
} from './config.js';
import { ensureNetwork, noSuchNetwork } from './network.js';
import { prevResultOf, prevResultProblems, resultOf } from './result.js';
import { CONTAINER_ID_LABEL, dropSandboxIfEmpty, ensureSandbox, findSandbox } from './sandbox.js';
import { type CmdArgs, CniCode, CniError, type Handlers, storeUnavailable } from './skel.js';
import { mergeResults, type Result } from './types.js';

/** Where the verbs find the API: the daemon's controller, or one opened for this call. */
interface ApiBackend {
  api(): Promise<NetctlApi>;
}

/** ADD: attach, once more on a new sandbox if the container's went under it. */
async function add(backend: ApiBackend, args: CmdArgs): Promise<Result> {
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
    return await connect(api, network, details, args, wanted, conf);
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

/** Connect the container's sandbox to the network, and answer with the attachment after prevResult's. */
async function connect(
  api: NetctlApi,
  network: Network,
  details: SandboxDetails,
  args: CmdArgs,
  wanted: AttachmentRequest,
  conf: NetctlCniConfig,
): Promise<Result> {
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
}

/** DEL: disconnect; the container's sandbox goes with its last attachment. Idempotent. */
async function del(backend: ApiBackend, args: CmdArgs): Promise<void> {
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
}

/** CHECK: the controller's check of the attachment, the netns, and prevResult against the endpoint. */
async function check(backend: ApiBackend, args: CmdArgs): Promise<void> {
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
}

/** The API, with its store reachable: else no ADD can work (SPEC.md "STATUS", error 50). */
async function readyApi(backend: ApiBackend): Promise<NetctlApi> {
  try {
    const api = await backend.api();
    const health = await api.health();
    if (!health.storeReachable) throw new Error(`state store ${health.store} is unreachable`);
    return api;
  } catch (err) {
    throw storeUnavailable('netctl cannot take ADDs: its state store is unavailable', err);
  }
}

/** STATUS: the store, and the network's kernel side (missing parts: limited connectivity, 51). */
async function status(backend: ApiBackend, args: CmdArgs): Promise<void> {
  const conf = parseConfig(args);
  const api = await readyApi(backend);
  const name = networkNameOf(conf);
  let report: Awaited<ReturnType<NetctlApi['check']>>;
  try {
    report = await api.check(name);
  } catch (err) {
    if (!isCode(err, Errors.NetworkNotFound)) throw err;
    if (createRequestOf(conf)) return; // the first ADD makes it
    throw noSuchNetwork(CniCode.PLUGIN_NOT_AVAILABLE, name);
  }
  if (report.problems.length) {
    throw new CniError(
      CniCode.LIMITED_CONNECTIVITY,
      `netctl network ${name} is missing part of its kernel side`,
      `missing: ${report.problems.join(', ')} (\`netctl repair ${name}\` puts it back)`,
    );
  }
}

/** An attachment of netctl-cni's to the network: the endpoint, its sandbox and container. */
interface CniAttachment {
  networkId: string;
  sandboxId: string;
  containerId: string;
  ifname: string | undefined;
}

/**
 * The network's attachments in sandboxes netctl-cni made (never the CLI's
 * or Docker's). A sandbox with no endpoint here is not this GC's: it may be
 * an ADD's, made a moment ago and about to connect.
 */
async function cniAttachments(api: NetctlApi, network: string): Promise<CniAttachment[] | undefined> {
  let endpoints: Awaited<ReturnType<NetctlApi['inspectNetwork']>>['endpoints'];
  try {
    ({ endpoints } = await api.inspectNetwork(network));
  } catch (err) {
    if (isCode(err, Errors.NetworkNotFound)) return undefined;
    throw err;
  }
  const containers = new Map(
    (await api.listSandboxes()).flatMap((s) => {
      const containerId = s.labels[CONTAINER_ID_LABEL];
      return containerId === undefined ? [] : [[s.id, containerId] as const];
    }),
  );
  return endpoints.flatMap((endpoint) => {
    const containerId = endpoint.sandboxId ? containers.get(endpoint.sandboxId) : undefined;
    if (!endpoint.sandboxId || containerId === undefined) return [];
    return [
      { networkId: endpoint.networkId, sandboxId: endpoint.sandboxId, containerId, ifname: endpoint.ifname },
    ];
  });
}

/** GC: remove the network's attachments that are not in cni.dev/valid-attachments. */
async function gc(backend: ApiBackend, args: CmdArgs): Promise<void> {
  const conf = parseConfig(args);
  const keep = new Set(validAttachments(conf).map((a) => `${a.containerID}\n${a.ifname}`));
  const api = await backend.api();
  const attachments = await cniAttachments(api, networkNameOf(conf));
  const failures: string[] = [];
  for (const a of attachments ?? []) {
    if (keep.has(`${a.containerId}\n${a.ifname ?? ''}`)) continue;
    try {
      await api.disconnect(a.networkId, a.sandboxId);
      // Its last attachment gone: the container's sandbox goes too (as DEL does).
      await dropSandboxIfEmpty(api, a.sandboxId);
    } catch (err) {
      // SPEC.md "GC": carry on, remove as much as possible, report the errors.
      if (isCode(err, Errors.SandboxNotFound, Errors.EndpointNotFound)) continue;
      failures.push(`${a.containerId}/${a.ifname ?? '-'}: ${(err as Error).message}`);
    }
  }
  if (failures.length) {
    throw new CniError(CniCode.INTERNAL, 'GC could not remove every stale attachment', failures.join('; '));
  }
}

export function netctlCniHandlers(backend: ApiBackend): Handlers {
  return {
    add: (args) => add(backend, args),
    del: (args) => del(backend, args),
    check: (args) => check(backend, args),
    status: (args) => status(backend, args),
    gc: (args) => gc(backend, args),
  };
}
