/**
 * Model-based random testing of the controller (issue 11, "Do no harm",
 * tests (e)). fast-check makes random programs — batches of create network
 * (clashing names, overlapping subnets), delete network (in use or not),
 * create/delete sandbox, connect (static or dynamic address, published
 * ports, clashing ports, the same pair twice), disconnect, publish and
 * unpublish by endpoint id (as the Docker path does), gc — and runs them
 * against the real controller, the real kernel and the real store. The
 * commands of a batch run at once, each settling to an outcome, each on one
 * of 2-4 controllers opened on the same LMDB file, as separate CLI
 * processes are (one process here: they share its iptables queue).
 *
 * Nothing lands in the test run's own namespace: the bridges, host veths
 * and iptables rules live in a throwaway "host" netns made per sequence
 * (the bridge driver and the firewall are given it, as createLocalApi would
 * give them this process's); sandboxes s0 and s1 are attached to netns this
 * file makes (`key:`), s2 and s3 are netctl's own (it makes
 * /run/netns/netctl-NAME).
 *
 * A program: a setup (most networks, on subnets apart, and most sandboxes
 * created, in batches, sometimes with a gc among them), then 1-8 batches of
 * 1-4 random commands over networks n0-n2 and sandboxes s0-s3, a batch's
 * commands mostly on one sandbox so that they race. disconnect, publish and
 * unpublish mostly pick an endpoint that exists. Every sequence runs on a
 * new store, netns and controllers.
 *
 * After every batch:
 *  1. model: some order of the batch's commands explains every outcome (a
 *     success where the model allows it, with the addresses and ports it
 *     got; a failure with an error code the model gives there) and leaves
 *     exactly the records the store holds (listNetworks, inspectNetwork,
 *     listSandboxes, the endpoint records). A conflict may also come from a
 *     concurrent command that held the thing in flight (its claim was taken
 *     with its intent, then given back), and a not-found from a concurrent
 *     delete that marked the network;
 *  2. store: every endpoint listed by its network and its sandbox, no
 *     intent left, members and claims exactly the endpoints' (ports per
 *     block, attachments, interface names);
 *  3. IPAM: one pool per network, holding its gateway and its endpoints'
 *     addresses, each for its owner, and nothing else;
 *  4. no double grant: no address and no host port (store, claims, DNAT
 *     rules) held by two endpoints;
 *  5. kernel: one bridge per network (netctl's alias, the gateway on it),
 *     one host veth per endpoint on its bridge, the endpoint's interface
 *     and address in its sandbox's netns and nothing else there, one DNAT
 *     and its ACCEPT per published port in the host netns, base jumps while
 *     a network exists, nothing else tagged netctl (links, rules, chains,
 *     netns, run dirs);
 *  6. quiet: gc --dry-run on one controller reports nothing, and `check`
 *     finds nothing missing for any network or endpoint.
 * After every sequence also: no netctl rule or chain in either iptables
 * flavour beyond the above; then everything is removed through the API and
 * nothing may be left: records, claims, pools, links, rules, chains (both
 * flavours), netns, run dirs.
 *
 * A failure names the batch after which it was seen, the findings
 * ([leak], [double] grant, [mismatch] between model, store and kernel,
 * [error] of class internal or unavailable, or a hang), the run with every
 * outcome, and the smallest program fast-check shrank it to.
 *
 * Env: MODEL_SEED (default: random, printed), MODEL_RUNS (sequences, 40),
 * MODEL_PATH (with the seed, replay the counterexample fast-check names),
 * MODEL_PROGRAM (run one program, given as JSON as a failure prints it),
 * MODEL_SHRINK_MS (time given to shrinking, 240 000), MODEL_SHRINK_TRIES
 * (runs per shrink candidate, for races that do not show every time, 1).
 */

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { GcAction } from '../../src/controller/api.js';
import { listClaims } from '../../src/controller/claims.js';
import { Controller } from '../../src/controller/controller.js';
import { ROOT } from '../../src/controller/keys.js';
import { State } from '../../src/controller/state.js';
import type { HostRoute } from '../../src/controller/subnets.js';
import type { Endpoint, Network, PortMapping, Sandbox } from '../../src/core/model.js';
import type { PortRequest } from '../../src/core/schemas.js';
import { BridgeDriver } from '../../src/drivers/bridge/bridge.js';
import { HostDriver } from '../../src/drivers/host/host.js';
import { NoneDriver } from '../../src/drivers/none/none.js';
import { errorClassOf, specOf } from '../../src/errors.js';
import { iptablesBackend } from '../../src/firewall/index.js';
import { KvIpamDriver } from '../../src/ipam/driver.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { createNetns, deleteNetns, linkList, linkOwner, Netlink, routeList } from '../../src/kernel/index.js';
import { openStore } from '../../src/kv/index.js';
import { sandboxRunDir } from '../../src/paths.js';
import { listSandboxRunDirs } from '../../src/sandbox/owner.js';
import {
  addressesOf,
  type LinkView,
  linksOf,
  netctlTables,
  type SavedTables,
} from '../helpers/netns-view.js';
import { uniqueName } from '../privileged/harness.js';
import { recordFigures } from './figures.js';

// ------------------------------------------------------------------ settings

const SEED = process.env.MODEL_SEED ? Number(process.env.MODEL_SEED) : randomBytes(4).readInt32LE(0);
const RUNS = Number(process.env.MODEL_RUNS ?? 40);
const PATH = process.env.MODEL_PATH;
/** One program to run instead of random ones (JSON, as a failure prints it with MODEL_PROGRAM=). */
const PROGRAM = process.env.MODEL_PROGRAM;
const SHRINK_MS = Number(process.env.MODEL_SHRINK_MS ?? 240_000);
const SHRINK_TRIES = Number(process.env.MODEL_SHRINK_TRIES ?? 1);
/** A command not answered by then is a hang. */
const OP_MS = 30_000;

/** Networks n0-n2; sandboxes s0-s3, of which the first KEYED attach to netns made here. */
const NETWORKS = 3;
const SANDBOXES = 4;
const KEYED = 2;

/** Subnets asked for (undefined: a default pool). 0-2 and 3-4 overlap. */
const SUBNETS: (string | undefined)[] = [
  '10.77.0.0/29',
  '10.77.0.8/29',
  '10.77.0.0/28',
  '10.77.0.16/30', // one address besides the gateway: exhaustion
  '10.77.0.16/28',
  '10.77.1.0/24',
  undefined,
];

/** The subnet each network takes in a program's setup, mostly: apart, each with room. */
const OWN_SUBNET = [0, 1, 5];

/** Static addresses asked for: usable, gateways, network and broadcast addresses, elsewhere. */
const ADDRESSES = [
  '10.77.0.2',
  '10.77.0.6',
  '10.77.0.7',
  '10.77.0.9',
  '10.77.0.18',
  '10.77.0.17',
  '10.77.0.16',
  '10.77.0.19',
  '10.77.1.50',
];

/** Port requests. connect takes exact ones only (its schema); publish also picks (0, a host range for one port). */
const PORTS: PortRequest[] = [
  { proto: 'tcp', hostPort: 8000, containerPort: 80 },
  { proto: 'tcp', hostPort: 8001, containerPort: 80 },
  { proto: 'udp', hostPort: 8000, containerPort: 53 },
  { proto: 'tcp', hostPort: 8000, hostPortEnd: 8001, containerPort: 80, containerPortEnd: 81 },
  { proto: 'tcp', hostIp: '192.0.2.10', hostPort: 8001, containerPort: 8080 },
  { proto: 'tcp', hostPort: 0, containerPort: 80 },
  { proto: 'tcp', hostPort: 8002, hostPortEnd: 8003, containerPort: 443 },
];
const CONNECT_PORTS = [0, 1, 2, 3, 4];
const EPHEMERAL = { first: 49153, last: 60999 };

const C = {
  networkExists: 'NETCTL_NETWORK_EXISTS',
  networkNotFound: 'NETCTL_NETWORK_NOT_FOUND',
  networkInUse: 'NETCTL_NETWORK_IN_USE',
  poolOverlap: 'NETCTL_POOL_OVERLAP',
  sandboxExists: 'NETCTL_SANDBOX_EXISTS',
  sandboxNotFound: 'NETCTL_SANDBOX_NOT_FOUND',
  endpointExists: 'NETCTL_ENDPOINT_EXISTS',
  endpointNotFound: 'NETCTL_ENDPOINT_NOT_FOUND',
  portInUse: 'NETCTL_PORT_IN_USE',
  addressInUse: 'NETCTL_ADDRESS_IN_USE',
  addressOutOfRange: 'NETCTL_ADDRESS_OUT_OF_RANGE',
  invalidAddress: 'NETCTL_INVALID_ADDRESS',
  noAddress: 'NETCTL_NO_AVAILABLE_ADDRESS',
  conflict: 'NETCTL_CONFLICT',
} as const;

// ------------------------------------------------------------ IPv4, our own

const ipNum = (ip: string) => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
const ipText = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

interface Cidr {
  base: number;
  len: number;
  size: number;
}

function cidr(text: string): Cidr {
  const [ip = '', len = '32'] = text.split('/');
  const size = 2 ** (32 - Number(len));
  return { base: ipNum(ip) - (ipNum(ip) % size), len: Number(len), size };
}

const inCidr = (ip: string, c: Cidr) => ipNum(ip) >= c.base && ipNum(ip) < c.base + c.size;
const overlaps = (a: string, b: string) => {
  const x = cidr(a);
  const y = cidr(b);
  return x.base < y.base + y.size && y.base < x.base + x.size;
};
/** Neither the network nor the broadcast address. */
const usable = (ip: string, c: Cidr) => ipNum(ip) > c.base && ipNum(ip) < c.base + c.size - 1;
const DEFAULT_SUBNET = /^(172\.(1[7-9]|2\d|3[01])\.0\.0\/16|192\.168\.\d+\.0\/20)$/;

// ------------------------------------------------------------- host ports

interface Wish {
  proto: string;
  hostIp: string | undefined;
  first: number;
  last: number;
  pick: boolean;
  containerPort: number;
  containerPortEnd: number | undefined;
}

/** A request as portRequestSchema says: host port 0, or a host range for one container port, picks. */
function wishOf(p: PortRequest): Wish {
  const single = (p.containerPortEnd ?? p.containerPort) === p.containerPort;
  const range =
    p.hostPort === 0
      ? EPHEMERAL
      : single && p.hostPortEnd !== undefined && p.hostPortEnd > p.hostPort
        ? { first: p.hostPort, last: p.hostPortEnd }
        : undefined;
  return {
    proto: p.proto ?? 'tcp',
    hostIp: p.hostIp,
    first: range?.first ?? p.hostPort,
    last: range?.last ?? p.hostPortEnd ?? p.hostPort,
    pick: range !== undefined,
    containerPort: p.containerPort,
    containerPortEnd: p.containerPortEnd,
  };
}

interface PortClaim {
  proto: string;
  hostIp: string | undefined;
  first: number;
  last: number;
}

/** Two claims on a common host port of one protocol and address (no address: all of them). */
const clash = (a: PortClaim, b: PortClaim) =>
  a.proto === b.proto &&
  a.first <= b.last &&
  b.first <= a.last &&
  (!a.hostIp || !b.hostIp || a.hostIp === b.hostIp);

const claimOf = (m: PortMapping): PortClaim => ({
  proto: m.proto,
  hostIp: m.hostIp,
  first: m.hostPort,
  last: m.hostPortEnd ?? m.hostPort,
});

/** A mapping with its keys in one order and without absent ones, so two compare as JSON. */
function normal(m: PortMapping): PortMapping {
  return {
    proto: m.proto,
    ...(m.hostIp ? { hostIp: m.hostIp } : {}),
    hostPort: m.hostPort,
    ...(m.hostPortEnd !== undefined && m.hostPortEnd !== m.hostPort ? { hostPortEnd: m.hostPortEnd } : {}),
    containerPort: m.containerPort,
    ...(m.containerPortEnd !== undefined && m.containerPortEnd !== m.containerPort
      ? { containerPortEnd: m.containerPortEnd }
      : {}),
  };
}

const portText = (p: PortRequest | PortMapping) =>
  `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}${p.hostPortEnd ? `-${p.hostPortEnd}` : ''}:${p.containerPort}${
    p.containerPortEnd ? `-${p.containerPortEnd}` : ''
  }/${p.proto}`;

// ------------------------------------------------------------------ model

interface MNetwork {
  id: string;
  subnet: string;
  gateway: string;
}

interface MEndpoint {
  id: string;
  net: string;
  sb: string;
  /** With its prefix length, as the record has it. */
  ipv4: string;
  ports: PortMapping[];
}

/** Networks and sandboxes by their names here (n0, s1), endpoints by id. */
interface Model {
  nets: Record<string, MNetwork>;
  sbs: Record<string, { id: string }>;
  eps: Record<string, MEndpoint>;
}

const EMPTY: Model = { nets: {}, sbs: {}, eps: {} };

type Cmd =
  | { op: 'createNetwork'; c: number; net: number; subnet: number }
  | { op: 'deleteNetwork'; c: number; net: number }
  | { op: 'createSandbox'; c: number; sb: number }
  | { op: 'deleteSandbox'; c: number; sb: number }
  | { op: 'connect'; c: number; net: number; sb: number; ip: number | null; ports: number[] }
  | { op: 'disconnect'; c: number; net: number; sb: number; ep: number | null }
  | { op: 'publish'; c: number; net: number; sb: number; ep: number | null; ports: number[] }
  | { op: 'unpublish'; c: number; net: number; sb: number; ep: number | null }
  | { op: 'gc'; c: number };

/**
 * A command as run. disconnect, publish and unpublish with `ep` name the
 * ep-th endpoint there was before the batch (by network and sandbox name,
 * modulo their number), else the pair net/sb; as run, `ep` is resolved to
 * that pair, and publish and unpublish target the pair's endpoint then (or none).
 */
interface Item {
  cmd: Cmd;
  target?: string;
}

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; cls: string; message: string };

/** An id no endpoint has: publish on a pair without an endpoint asks for it. */
const NO_ENDPOINT = 'f'.repeat(64);

const endpointOf = (m: Model, net: string, sb: string) =>
  Object.values(m.eps).find((e) => e.net === net && e.sb === sb);

function wishesOf(cmd: Cmd): Wish[] {
  if (cmd.op !== 'connect' && cmd.op !== 'publish') return [];
  return cmd.ports.map((i) => wishOf(PORTS[i] as PortRequest));
}

/** The host ports held, but those of endpoint `except` (a publish replaces its own). */
const heldPorts = (m: Model, except?: string): PortClaim[] =>
  Object.values(m.eps)
    .filter((e) => e.id !== except)
    .flatMap((e) => e.ports.map(claimOf));

/** Can every wish be met, in order (a pick takes the first free port of its range)? */
function portsFit(m: Model, wishes: Wish[], except?: string): boolean {
  const held = heldPorts(m, except);
  for (const w of wishes) {
    let first: number | undefined;
    for (let p = w.first; p <= (w.pick ? w.last : w.first) && first === undefined; p++) {
      const want = { proto: w.proto, hostIp: w.hostIp, first: p, last: w.pick ? p : w.last };
      if (!held.some((h) => clash(h, want))) first = p;
    }
    if (first === undefined) return false;
    held.push({ proto: w.proto, hostIp: w.hostIp, first, last: w.pick ? first : w.last });
  }
  return true;
}

/** Are mappings what the wishes ask, each on ports free at this point? */
function checkMappings(
  m: Model,
  wishes: Wish[],
  mappings: PortMapping[],
  except?: string,
): string | undefined {
  if (mappings.length !== wishes.length)
    return `got ${mappings.length} mappings for ${wishes.length} requests`;
  const held = heldPorts(m, except);
  for (const [i, w] of wishes.entries()) {
    const got = mappings[i] as PortMapping;
    const hostPortEnd = w.pick ? undefined : w.last;
    const expected = normal({
      proto: w.proto as PortMapping['proto'],
      ...(w.hostIp ? { hostIp: w.hostIp } : {}),
      hostPort: w.pick ? got.hostPort : w.first,
      ...(hostPortEnd !== undefined ? { hostPortEnd } : {}),
      containerPort: w.containerPort,
      ...(w.containerPortEnd !== undefined ? { containerPortEnd: w.containerPortEnd } : {}),
    });
    if (JSON.stringify(normal(got)) !== JSON.stringify(expected))
      return `mapping ${portText(got)} for request ${i}, expected ${portText(expected)}`;
    if (w.pick && (got.hostPort < w.first || got.hostPort > w.last))
      return `picked host port ${got.hostPort} outside ${w.first}-${w.last}`;
    const claim = claimOf(got);
    const holder = held.find((h) => clash(h, claim));
    if (holder) return `host port ${portText(got)} is held (${holder.proto} ${holder.first}-${holder.last})`;
    held.push(claim);
  }
  return undefined;
}

/** Why a static address cannot be had on the network, if it cannot. */
function staticProblem(m: Model, net: MNetwork, netName: string, ip: string): string | undefined {
  const subnet = cidr(net.subnet);
  if (!inCidr(ip, subnet)) return C.addressOutOfRange;
  if (!usable(ip, subnet)) return C.invalidAddress;
  const held = Object.values(m.eps).some((e) => e.net === netName && e.ipv4.split('/')[0] === ip);
  if (ip === net.gateway || held) return C.addressInUse;
  return undefined;
}

function freeAddresses(m: Model, net: MNetwork, netName: string): number {
  const usableCount = cidr(net.subnet).size - 2;
  return usableCount - 1 - Object.values(m.eps).filter((e) => e.net === netName).length;
}

/** The model after cmd had outcome, or why it cannot have had it here. */
type Verdict = Model | string;

/** May a command fail with code here: for one of the model's reasons, or a concurrent command's doing? Why not, if not. */
function failureAllowed(
  out: Outcome & { ok: false },
  reasons: string[],
  transient: string[],
  concurrent: boolean,
): true | string {
  if (reasons.includes(out.code) || transient.includes(out.code)) return true;
  // "Concurrent update, try again": only with something concurrent.
  if (out.code === C.conflict && concurrent) return true;
  const allowed = [...new Set([...reasons, ...transient])];
  return `failed with ${out.code} (${out.message.split('\n')[0]}); here it ${
    allowed.length ? `may fail only with ${allowed.join(', ')}` : 'must succeed'
  }`;
}

function step(m: Model, item: Item, out: Outcome, others: Item[]): Verdict {
  const cmd = item.cmd;
  const concurrent = others.length > 0;
  const judge = (reasons: string[], transient: string[], success: () => Verdict): Verdict => {
    if (!out.ok) {
      const allowed = failureAllowed(out, reasons, transient, concurrent);
      return allowed === true ? m : allowed;
    }
    if (reasons.length) return `succeeded, but the model says ${reasons.join(' / ')}`;
    return success();
  };
  const othersDo = (pred: (c: Cmd) => boolean) => others.some((o) => pred(o.cmd));
  switch (cmd.op) {
    case 'createNetwork': {
      const name = `n${cmd.net}`;
      const subnet = SUBNETS[cmd.subnet];
      const reasons: string[] = [];
      if (m.nets[name]) reasons.push(C.networkExists);
      if (subnet && Object.values(m.nets).some((n) => overlaps(n.subnet, subnet)))
        reasons.push(C.poolOverlap);
      const transient: string[] = [];
      if (othersDo((c) => c.op === 'createNetwork' && c.net === cmd.net)) transient.push(C.networkExists);
      if (
        subnet &&
        othersDo(
          (c) => c.op === 'createNetwork' && !!SUBNETS[c.subnet] && overlaps(SUBNETS[c.subnet]!, subnet),
        )
      )
        transient.push(C.poolOverlap);
      return judge(reasons, transient, () => {
        const network = (out as { value: Network }).value;
        const config = network.ipam.config[0];
        if (network.ipam.config.length !== 1 || !config)
          return `network with ${network.ipam.config.length} pools`;
        if (subnet ? config.subnet !== subnet : !DEFAULT_SUBNET.test(config.subnet))
          return `network got subnet ${config.subnet}`;
        if (!subnet && Object.values(m.nets).some((n) => overlaps(n.subnet, config.subnet)))
          return `default subnet ${config.subnet} overlaps another network's`;
        const c = cidr(config.subnet);
        if (config.gateway !== ipText(c.base + 1)) return `gateway ${config.gateway} on ${config.subnet}`;
        return {
          ...m,
          nets: { ...m.nets, [name]: { id: network.id, subnet: config.subnet, gateway: config.gateway } },
        };
      });
    }
    case 'deleteNetwork': {
      const name = `n${cmd.net}`;
      const network = m.nets[name];
      const reasons: string[] = [];
      if (!network) reasons.push(C.networkNotFound);
      else if (Object.values(m.eps).some((e) => e.net === name)) reasons.push(C.networkInUse);
      const transient: string[] = [];
      if (othersDo((c) => c.op === 'connect' && c.net === cmd.net)) transient.push(C.networkInUse);
      if (othersDo((c) => c.op === 'deleteNetwork' && c.net === cmd.net)) transient.push(C.networkNotFound);
      return judge(reasons, transient, () => {
        const removed = (out as { value: Network }).value;
        if (removed.id !== network?.id) return `deleted network ${removed.id}, not ${network?.id}`;
        const { [name]: _, ...nets } = m.nets;
        return { ...m, nets };
      });
    }
    case 'createSandbox': {
      const name = `s${cmd.sb}`;
      const reasons = m.sbs[name] ? [C.sandboxExists] : [];
      const transient = othersDo((c) => c.op === 'createSandbox' && c.sb === cmd.sb) ? [C.sandboxExists] : [];
      return judge(reasons, transient, () => {
        const sandbox = (out as { value: Sandbox }).value;
        return { ...m, sbs: { ...m.sbs, [name]: { id: sandbox.id } } };
      });
    }
    case 'deleteSandbox': {
      const name = `s${cmd.sb}`;
      const sandbox = m.sbs[name];
      // Two deletes at once both succeed (removal is idempotent): the later one changes nothing.
      if (out.ok && !sandbox && othersDo((c) => c.op === 'deleteSandbox' && c.sb === cmd.sb)) return m;
      return judge(sandbox ? [] : [C.sandboxNotFound], [], () => {
        const removed = (out as { value: Sandbox }).value;
        if (removed.id !== sandbox?.id) return `deleted sandbox ${removed.id}, not ${sandbox?.id}`;
        const { [name]: _, ...sbs } = m.sbs;
        const eps = Object.fromEntries(Object.entries(m.eps).filter(([, e]) => e.sb !== name));
        return { ...m, sbs, eps };
      });
    }
    case 'connect': {
      const netName = `n${cmd.net}`;
      const sbName = `s${cmd.sb}`;
      const net = m.nets[netName];
      const sb = m.sbs[sbName];
      const wishes = wishesOf(cmd);
      const ip = cmd.ip === null ? undefined : ADDRESSES[cmd.ip];
      const reasons: string[] = [];
      if (!net) reasons.push(C.networkNotFound);
      else if (!sb) reasons.push(C.sandboxNotFound);
      else {
        if (!portsFit(m, wishes)) reasons.push(C.portInUse);
        if (endpointOf(m, netName, sbName)) reasons.push(C.endpointExists);
        const problem = ip ? staticProblem(m, net, netName, ip) : undefined;
        if (problem) reasons.push(problem);
        if (!ip && freeAddresses(m, net, netName) <= 0) reasons.push(C.noAddress);
      }
      const transient: string[] = [];
      if (othersDo((c) => c.op === 'deleteNetwork' && c.net === cmd.net)) transient.push(C.networkNotFound);
      if (othersDo((c) => c.op === 'deleteSandbox' && c.sb === cmd.sb)) transient.push(C.sandboxNotFound);
      if (othersDo((c) => wishesOf(c).some((w) => wishes.some((v) => clash(w, v)))))
        transient.push(C.portInUse);
      if (othersDo((c) => c.op === 'connect' && c.net === cmd.net && c.sb === cmd.sb))
        transient.push(C.endpointExists);
      if (othersDo((c) => c.op === 'connect' && c.net === cmd.net))
        transient.push(C.addressInUse, C.noAddress);
      return judge(reasons, transient, () => {
        const e = (out as { value: Endpoint }).value;
        if (!net || !sb) return 'unreachable';
        if (e.networkId !== net.id || e.sandboxId !== sb.id)
          return `endpoint on ${e.networkId}/${e.sandboxId}`;
        const [addr = '', len] = (e.ipv4 ?? '').split('/');
        const subnet = cidr(net.subnet);
        if (
          Number(len) !== subnet.len ||
          !inCidr(addr, subnet) ||
          !usable(addr, subnet) ||
          addr === net.gateway
        )
          return `address ${e.ipv4} on ${net.subnet} (gateway ${net.gateway})`;
        if (ip && addr !== ip) return `address ${e.ipv4}, asked for ${ip}`;
        const holder = Object.values(m.eps).find((x) => x.net === netName && x.ipv4.split('/')[0] === addr);
        if (holder) return `address ${e.ipv4} is ${holder.sb}'s`;
        const bad = checkMappings(m, wishes, e.portMappings);
        if (bad) return bad;
        const ep = {
          id: e.id,
          net: netName,
          sb: sbName,
          ipv4: e.ipv4 ?? '',
          ports: e.portMappings.map(normal),
        };
        return { ...m, eps: { ...m.eps, [e.id]: ep } };
      });
    }
    case 'disconnect': {
      const netName = `n${cmd.net}`;
      const sbName = `s${cmd.sb}`;
      const ep = endpointOf(m, netName, sbName);
      const reasons: string[] = !m.nets[netName]
        ? [C.networkNotFound]
        : !m.sbs[sbName]
          ? [C.sandboxNotFound]
          : ep
            ? []
            : [C.endpointNotFound];
      // Found, then removed by a concurrent disconnect or sandbox delete first: idempotent, nothing changes.
      const raced = othersDo(
        (c) =>
          (c.op === 'disconnect' && c.net === cmd.net && c.sb === cmd.sb) ||
          (c.op === 'deleteSandbox' && c.sb === cmd.sb),
      );
      if (out.ok && !ep && raced && !reasons.includes(C.networkNotFound)) return m;
      return judge(reasons, [], () => {
        const removed = (out as { value: Endpoint }).value;
        if (removed.id !== ep?.id) return `disconnected endpoint ${removed.id}, not ${ep?.id}`;
        const { [removed.id]: _, ...eps } = m.eps;
        return { ...m, eps };
      });
    }
    case 'publish':
    case 'unpublish': {
      const id = item.target ?? NO_ENDPOINT;
      const ep = m.eps[id];
      const wishes = wishesOf(cmd);
      const reasons = !ep ? [C.endpointNotFound] : portsFit(m, wishes, id) ? [] : [C.portInUse];
      const transient = othersDo((c) => wishesOf(c).some((w) => wishes.some((v) => clash(w, v))))
        ? [C.portInUse]
        : [];
      return judge(reasons, transient, () => {
        const e = (out as { value: Endpoint }).value;
        if (!ep || e.id !== id) return `${cmd.op} answered endpoint ${e.id}, not ${id}`;
        const bad = checkMappings(m, wishes, e.portMappings, id);
        if (bad) return bad;
        return { ...m, eps: { ...m.eps, [id]: { ...ep, ports: e.portMappings.map(normal) } } };
      });
    }
    case 'gc':
      return judge([], [], () => m);
  }
}

/** Canonical text of a model: two equal models have equal text. */
function canon(m: Model): string {
  const sorted = <T>(r: Record<string, T>) => Object.entries(r).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify({ nets: sorted(m.nets), sbs: sorted(m.sbs), eps: sorted(m.eps) });
}

/** What differs between a model and the store, for a report. */
function differences(model: Model, store: Model): string[] {
  const out: string[] = [];
  const compare = <T>(
    what: string,
    a: Record<string, T>,
    b: Record<string, T>,
    show: (k: string, v: T) => string,
  ) => {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const x = a[k];
      const y = b[k];
      if (JSON.stringify(x) === JSON.stringify(y)) continue;
      out.push(
        `${what} ${k.slice(0, 12)}: model ${x === undefined ? 'none' : show(k, x)}, store ${y === undefined ? 'none' : show(k, y)}`,
      );
    }
  };
  compare('network', model.nets, store.nets, (_, n) => `${n.subnet} ${n.id.slice(0, 12)}`);
  compare('sandbox', model.sbs, store.sbs, (_, s) => s.id.slice(0, 12));
  compare(
    'endpoint',
    model.eps,
    store.eps,
    (_, e) => `${e.net}/${e.sb} ${e.ipv4} [${e.ports.map(portText).join(' ')}]`,
  );
  return out;
}

function* permutations(n: number): Generator<number[]> {
  if (n === 0) {
    yield [];
    return;
  }
  for (const rest of permutations(n - 1))
    for (let i = 0; i <= rest.length; i++) yield [...rest.slice(0, i), n - 1, ...rest.slice(i)];
}

/** Does some order of the batch explain its outcomes and end in the store's state? The reason if not. */
function linearize(pre: Model, items: Item[], outcomes: Outcome[], store: Model): string | undefined {
  const want = canon(store);
  /** Why each order fails, the orders that fail the same way together. */
  const reasons = new Map<string, string[]>();
  for (const order of permutations(items.length)) {
    let m = pre;
    let bad: string | undefined;
    for (const i of order) {
      const verdict = step(
        m,
        items[i] as Item,
        outcomes[i] as Outcome,
        items.filter((_, j) => j !== i),
      );
      if (typeof verdict === 'string') {
        bad = `command ${i + 1} ${verdict}`;
        break;
      }
      m = verdict;
    }
    if (bad === undefined && canon(m) === want) return undefined;
    const why = bad ?? `the store differs: ${differences(m, store).join('; ')}`;
    reasons.set(why, [...(reasons.get(why) ?? []), order.map((i) => i + 1).join(',')]);
  }
  const lines = [...reasons].map(
    ([why, orders]) => `order ${orders.slice(0, 4).join(' / ')}${orders.length > 4 ? ' / ...' : ''}: ${why}`,
  );
  return `no order of the batch explains its outcomes and the store:\n    ${lines.slice(0, 8).join('\n    ')}`;
}

// ------------------------------------------------------------------ world

interface Client {
  api: Controller;
  close(): Promise<void>;
}

interface World {
  tag: string;
  dir: string;
  /** The throwaway host netns: bridges, host veths, rules. */
  host: string;
  /** Per sandbox: the netns it is attached to (key), or undefined for netctl's own. */
  keys: (string | undefined)[];
  clients: Client[];
  runDirsBefore: Set<string>;
  sandboxName(i: number): string;
  /** A sandbox's netns path: its key, or where netctl makes its own. */
  sandboxNetns(i: number): string;
}

/** The routes of netns, as createLocalApi's hostRoutes reads the host's. */
async function routesIn(netns: string): Promise<HostRoute[]> {
  const h = Netlink.open(netns);
  try {
    const links = new Map((await linkList(h)).map((l) => [l.index, l]));
    const routes = [...(await routeList(h, { family: 4 })), ...(await routeList(h, { family: 6 }))];
    return routes.flatMap((r) => {
      const link = r.linkIndex === undefined ? undefined : links.get(r.linkIndex);
      if (r.dst === 'default' || (link && linkOwner(link))) return [];
      return [{ dst: r.dst, ...(link ? { dev: link.name } : {}) }];
    });
  } finally {
    h.close();
  }
}

/** A Controller as createLocalApi builds one, on its own open of the store, working in netns host. */
async function client(url: string, host: string): Promise<Client> {
  const kv = await openStore(url);
  const bridge = new BridgeDriver({ netns: host, firewall: iptablesBackend({ netns: host }) });
  const api = new Controller({
    state: new State(kv),
    ipam: new KvIpamDriver(new Ipam(kv)),
    drivers: [bridge, new HostDriver(), new NoneDriver()],
    storeName: 'lmdb (model test)',
    hostRoutes: () => routesIn(host),
  });
  return {
    api,
    async close() {
      api.close();
      bridge.close();
      await kv.close();
    },
  };
}

async function makeWorld(clients: number): Promise<World> {
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'netctl-model-'));
  const runDirsBefore = new Set(listSandboxRunDirs().map((d) => d.id));
  const host = createNetns(uniqueName('mh'));
  const keys = Array.from({ length: SANDBOXES }, (_, i) =>
    i < KEYED ? createNetns(uniqueName('mk')) : undefined,
  );
  const world: World = {
    tag,
    dir,
    host,
    keys,
    clients: [],
    runDirsBefore,
    sandboxName: (i) => `s${i}-${tag}`,
    sandboxNetns: (i) => keys[i] ?? `/run/netns/netctl-s${i}-${tag}`,
  };
  const url = `lmdb://${join(dir, 'state.lmdb')}`;
  for (let i = 0; i < clients; i++) world.clients.push(await client(url, host));
  return world;
}

/** Remove whatever the sequence left (also after a failure), so the next starts clean. */
async function destroyWorld(w: World): Promise<void> {
  for (const c of w.clients) await c.close().catch(() => undefined);
  for (let i = 0; i < SANDBOXES; i++) deleteNetns(w.sandboxNetns(i));
  deleteNetns(w.host);
  for (const d of listSandboxRunDirs())
    if (!w.runDirsBefore.has(d.id)) rmSync(sandboxRunDir(d.id), { recursive: true, force: true });
  rmSync(w.dir, { recursive: true, force: true });
}

// --------------------------------------------------------------- commands

const netName = (i: number) => `n${i}`;

const pairText = (cmd: { net: number; sb: number; ep: number | null }) =>
  cmd.ep === null ? `n${cmd.net} s${cmd.sb}` : `endpoint #${cmd.ep}, else n${cmd.net} s${cmd.sb}`;

function showCmd(cmd: Cmd, clients: number): string {
  const who = `c${cmd.c % clients}`;
  switch (cmd.op) {
    case 'createNetwork':
      return `${who} network create n${cmd.net} ${SUBNETS[cmd.subnet] ?? '(default pool)'}`;
    case 'deleteNetwork':
      return `${who} network rm n${cmd.net}`;
    case 'createSandbox':
      return `${who} sandbox create s${cmd.sb}${cmd.sb < KEYED ? ' --netns' : ''}`;
    case 'deleteSandbox':
      return `${who} sandbox rm s${cmd.sb}`;
    case 'connect':
      return `${who} connect n${cmd.net} s${cmd.sb}${cmd.ip === null ? '' : ` --ip ${ADDRESSES[cmd.ip]}`}${cmd.ports
        .map((p) => ` -p ${portText(PORTS[p] as PortRequest)}`)
        .join('')}`;
    case 'disconnect':
      return `${who} disconnect ${pairText(cmd)}`;
    case 'publish':
      return `${who} publish (${pairText(cmd)}'s endpoint) [${cmd.ports
        .map((p) => portText(PORTS[p] as PortRequest))
        .join(' ')}]`;
    case 'unpublish':
      return `${who} unpublish (${pairText(cmd)}'s endpoint)`;
    case 'gc':
      return `${who} gc`;
  }
}

function showOutcome(out: Outcome): string {
  if (!out.ok) return `${out.code}${out.cls === 'notFound' || out.cls === 'conflict' ? '' : ` [${out.cls}]`}`;
  const v = out.value as Partial<Network & Endpoint & { actions: unknown[] }>;
  if (v.ipam) return `ok ${v.ipam.config[0]?.subnet}`;
  if (v.portMappings)
    return `ok ${v.ipv4 ?? ''} [${v.portMappings.map(portText).join(' ')}] ep ${v.id?.slice(0, 8)}`;
  if (v.actions)
    return `ok, ${v.actions.length} action(s)${(v.actions as GcAction[])
      .map((a) => `; ${a.action} ${a.kind} ${a.name.slice(0, 60)} (${a.reason})`)
      .join('')}`;
  return 'ok';
}

class Hang extends Error {}

function deadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Hang(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function execute(w: World, item: Item): Promise<Outcome> {
  const { cmd } = item;
  const api = (w.clients[cmd.c % w.clients.length] as Client).api;
  const run = (): Promise<unknown> => {
    switch (cmd.op) {
      case 'createNetwork': {
        const subnet = SUBNETS[cmd.subnet];
        return api.createNetwork({
          name: netName(cmd.net),
          ...(subnet ? { ipam: { config: [{ subnet }] } } : {}),
        });
      }
      case 'deleteNetwork':
        return api.deleteNetwork(netName(cmd.net));
      case 'createSandbox': {
        const key = w.keys[cmd.sb];
        return api.createSandbox({ name: w.sandboxName(cmd.sb), ...(key ? { key } : {}) });
      }
      case 'deleteSandbox':
        return api.deleteSandbox(w.sandboxName(cmd.sb));
      case 'connect':
        return api.connect({
          network: netName(cmd.net),
          sandbox: w.sandboxName(cmd.sb),
          ...(cmd.ip === null ? {} : { ipv4: ADDRESSES[cmd.ip] }),
          portMappings: cmd.ports.map((p) => PORTS[p] as PortRequest & { hostPort: number }),
        });
      case 'disconnect':
        return api.disconnect(netName(cmd.net), w.sandboxName(cmd.sb));
      case 'publish':
        return api.publishPorts(
          item.target ?? NO_ENDPOINT,
          cmd.ports.map((p) => PORTS[p] as PortRequest),
        );
      case 'unpublish':
        return api.unpublishPorts(item.target ?? NO_ENDPOINT);
      case 'gc':
        return api.gc({ dryRun: false });
    }
  };
  try {
    return { ok: true, value: await deadline(run(), OP_MS) };
  } catch (err) {
    if (err instanceof Hang) return { ok: false, code: 'HANG', cls: 'internal', message: err.message };
    const e = err as Error;
    return {
      ok: false,
      code: specOf(err)?.code ?? `uncoded ${e.name}`,
      cls: errorClassOf(err),
      message: `${e.message}${errorClassOf(err) === 'internal' ? `\n${e.stack?.split('\n').slice(1, 6).join('\n')}` : ''}`,
    };
  }
}

// ---------------------------------------------------------------- checks

type Kind = 'leak' | 'double' | 'mismatch' | 'error';

interface Finding {
  kind: Kind;
  text: string;
}

interface Observation {
  model: Model;
  networks: Network[];
  sandboxes: Sandbox[];
  endpoints: Endpoint[];
  findings: Finding[];
}

const short = (id: string) => id.slice(0, 12);

/** Count the strings of a list (a multiset). */
function counted(list: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of list) out.set(s, (out.get(s) ?? 0) + 1);
  return out;
}

/** Compare multisets: extra ones are `extra` findings, missing ones mismatches. */
function compareCounts(what: string, actual: string[], expected: string[], extra: Kind): Finding[] {
  const a = counted(actual);
  const e = counted(expected);
  const out: Finding[] = [];
  for (const [k, n] of a)
    if (n > (e.get(k) ?? 0)) out.push({ kind: extra, text: `${what}: not expected: ${k}` });
  for (const [k, n] of e)
    if (n > (a.get(k) ?? 0)) out.push({ kind: 'mismatch', text: `${what}: missing: ${k}` });
  return out;
}

const BLOCK = 256;

/** The store's records as a model, and what is wrong among them (properties 2 and 4). */
async function observe(w: World): Promise<Observation> {
  const api = (w.clients[0] as Client).api;
  const findings: Finding[] = [];
  const networks = await api.listNetworks();
  const sandboxes = await api.listSandboxes();
  const endpoints = await api.state.endpoints();
  const model: Model = { nets: {}, sbs: {}, eps: {} };
  const netById = new Map(networks.map((n) => [n.id, n]));
  const sbById = new Map(sandboxes.map((s) => [s.id, s]));
  const logical = new Map(Array.from({ length: SANDBOXES }, (_, i) => [w.sandboxName(i), `s${i}`]));
  for (const n of networks) {
    const config = n.ipam.config[0];
    if (n.deleting) findings.push({ kind: 'mismatch', text: `network ${n.name} is left marked deleting` });
    model.nets[n.name] = { id: n.id, subnet: config?.subnet ?? '?', gateway: config?.gateway ?? '?' };
  }
  for (const s of sandboxes) model.sbs[logical.get(s.name) ?? s.name] = { id: s.id };
  for (const e of endpoints) {
    const net = netById.get(e.networkId);
    const sb = e.sandboxId ? sbById.get(e.sandboxId) : undefined;
    if (!net)
      findings.push({
        kind: 'leak',
        text: `endpoint ${short(e.id)} whose network ${short(e.networkId)} is gone`,
      });
    if (!sb)
      findings.push({ kind: 'leak', text: `endpoint ${short(e.id)} whose sandbox ${e.sandboxId} is gone` });
    model.eps[e.id] = {
      id: e.id,
      net: net?.name ?? `?${short(e.networkId)}`,
      sb: (sb && logical.get(sb.name)) ?? `?${e.sandboxId}`,
      ipv4: e.ipv4 ?? '',
      ports: e.portMappings.map(normal),
    };
  }
  // Each endpoint listed by its network and by its sandbox, exactly.
  for (const n of networks) {
    const listed = (await api.inspectNetwork(n.id)).endpoints.map((e) => short(e.id));
    const own = endpoints.filter((e) => e.networkId === n.id).map((e) => short(e.id));
    findings.push(...compareCounts(`network ${n.name}'s endpoints`, listed, own, 'mismatch'));
  }
  for (const s of sandboxes) {
    const own = endpoints.filter((e) => e.sandboxId === s.id).map((e) => short(e.id));
    findings.push(...compareCounts(`sandbox ${s.name}'s endpointIds`, s.endpointIds.map(short), own, 'leak'));
  }
  for (const intent of await api.state.intents())
    findings.push({ kind: 'leak', text: `intent left: ${intent.op} ${intent.owners.join(' ')}` });
  // Members and claims: exactly the endpoints'.
  const expected: string[] = [];
  for (const e of endpoints) {
    expected.push(`members/${e.networkId}/${e.id} ep:${e.id}`);
    if (e.sandboxId) expected.push(`claims/attach/${e.sandboxId}/${e.networkId} ep:${e.id}`);
    if (e.sandboxId && e.ifname) expected.push(`claims/ifname/${e.sandboxId}/${e.ifname} ep:${e.id}`);
    for (const m of e.portMappings) {
      const last = m.hostPortEnd ?? m.hostPort;
      for (let b = Math.floor(m.hostPort / BLOCK); b <= Math.floor(last / BLOCK); b++)
        expected.push(`claims/ports/${m.proto}/${b} ${m.hostPort}-${last} ${m.hostIp ?? '*'} ep:${e.id}`);
    }
  }
  const actual: string[] = [];
  for (const c of await listClaims(api.state.kv)) {
    if (c.key.startsWith(`${ROOT}/claims/ports/`)) continue;
    for (const owner of c.owners) actual.push(`${c.key.slice(ROOT.length + 1)} ${owner}`);
  }
  for (const entry of await api.state.kv.list(`${ROOT}/claims/ports/`)) {
    const block = entry.value as unknown as {
      claims: { first: number; last: number; hostIp?: string; owner: string }[];
    };
    for (const c of block.claims)
      actual.push(`${entry.key.slice(ROOT.length + 1)} ${c.first}-${c.last} ${c.hostIp ?? '*'} ${c.owner}`);
  }
  findings.push(...compareCounts('claims', actual, expected, 'leak'));
  // No double grant among the records.
  for (const [i, a] of endpoints.entries()) {
    for (const b of endpoints.slice(i + 1)) {
      if (a.ipv4 && b.ipv4 && a.ipv4.split('/')[0] === b.ipv4.split('/')[0])
        findings.push({
          kind: 'double',
          text: `address ${a.ipv4} held by ${short(a.id)} and ${short(b.id)}`,
        });
      for (const p of a.portMappings)
        for (const q of b.portMappings)
          if (clash(claimOf(p), claimOf(q)))
            findings.push({
              kind: 'double',
              text: `host port ${portText(p)} of ${short(a.id)} and ${portText(q)} of ${short(b.id)}`,
            });
    }
  }
  return { model, networks, sandboxes, endpoints, findings };
}

/** Property 3: pools and reservations are exactly the networks' and endpoints'. */
async function ipamFindings(w: World, obs: Observation): Promise<Finding[]> {
  const api = (w.clients[0] as Client).api;
  const findings: Finding[] = [];
  const pools = await api.ipam.listPools();
  findings.push(
    ...compareCounts(
      'IPAM pools',
      pools.map((p) => `${p.pool} ${p.owner}`),
      obs.networks.map((n) => `${n.ipam.config[0]?.subnet} net:${n.id}`),
      'leak',
    ),
  );
  const actual: string[] = [];
  for (const pool of pools)
    for (const r of await api.ipam.listReservations(pool.poolId)) actual.push(`${r.address} ${r.owner}`);
  const expected: string[] = [];
  for (const n of obs.networks) {
    const config = n.ipam.config[0];
    if (config) expected.push(`${config.gateway}/${cidr(config.subnet).len} net:${n.id}`);
  }
  for (const e of obs.endpoints) if (e.ipv4) expected.push(`${e.ipv4} ep:${e.id}`);
  const addresses = counted(actual.map((a) => a.split(' ')[0] as string));
  for (const [address, n] of addresses)
    if (n > 1) findings.push({ kind: 'double', text: `IPAM: ${address} reserved ${n} times` });
  findings.push(...compareCounts('IPAM reservations', actual, expected, 'leak'));
  return findings;
}

interface KernelView {
  links: LinkView[];
  addrs: LinkView[];
  v4: SavedTables;
  v6: SavedTables;
  legacy?: SavedTables[];
  sandboxes: (LinkView[] | undefined)[];
}

async function kernelView(w: World, legacy: boolean): Promise<KernelView> {
  const [links, addrs, v4, v6, legacy4, legacy6, ...sandboxes] = await Promise.all([
    linksOf(w.host),
    addressesOf(w.host),
    netctlTables(w.host, 'iptables-save'),
    netctlTables(w.host, 'ip6tables-save'),
    legacy ? netctlTables(w.host, 'iptables-legacy-save') : undefined,
    legacy ? netctlTables(w.host, 'ip6tables-legacy-save') : undefined,
    ...Array.from({ length: SANDBOXES }, (_, i) =>
      existsSync(w.sandboxNetns(i)) ? addressesOf(w.sandboxNetns(i)) : undefined,
    ),
  ]);
  return {
    links: links as LinkView[],
    addrs: addrs as LinkView[],
    v4: v4 as SavedTables,
    v6: v6 as SavedTables,
    ...(legacy4 && legacy6 ? { legacy: [legacy4 as SavedTables, legacy6 as SavedTables] } : {}),
    sandboxes: sandboxes as (LinkView[] | undefined)[],
  };
}

const isNetctlLink = (l: LinkView) => l.ifalias?.startsWith('netctl:') || l.group === '28259';

/** A DNAT rule as its publishing mapping: owner, proto, host address, host ports, destination. */
function dnatKey(line: string, owner: string): string {
  const proto = / -p (\w+)/.exec(line)?.[1];
  const d = / -d ([\d.]+)\/32/.exec(line)?.[1] ?? '*';
  const dport = /--dport (\S+)/.exec(line)?.[1];
  const to = /--to-destination (\S+)/.exec(line)?.[1];
  return `${owner} ${proto} ${d} ${dport} ${to}`;
}

function expectedDnat(e: Endpoint, m: PortMapping): string {
  const ip = (e.ipv4 ?? '').split('/')[0];
  const end = m.hostPortEnd !== undefined && m.hostPortEnd !== m.hostPort ? m.hostPortEnd : undefined;
  const to = end
    ? `${ip}:${m.containerPort}-${m.containerPortEnd}/${m.hostPort}`
    : `${ip}:${m.containerPort}`;
  return `ep:${e.id} ${m.proto} ${m.hostIp ?? '*'} ${end ? `${m.hostPort}:${end}` : m.hostPort} ${to}`;
}

function acceptKey(line: string, owner: string): string {
  const proto = / -p (\w+)/.exec(line)?.[1];
  const d = / -d ([\d.]+)\/32/.exec(line)?.[1];
  const dport = /--dport (\S+)/.exec(line)?.[1];
  return `${owner} ${proto} ${d} ${dport}`;
}

function expectedAccept(e: Endpoint, m: PortMapping): string {
  const end =
    m.containerPortEnd !== undefined && m.containerPortEnd !== m.containerPort
      ? m.containerPortEnd
      : undefined;
  return `ep:${e.id} ${m.proto} ${(e.ipv4 ?? '').split('/')[0]} ${end ? `${m.containerPort}:${end}` : m.containerPort}`;
}

/** Property 5 (and the kernel's share of 4): the host netns, the sandboxes' netns, the run dirs. */
function kernelFindings(w: World, obs: Observation, k: KernelView): Finding[] {
  const findings: Finding[] = [];
  const push = (kind: Kind, text: string) => findings.push({ kind, text });
  const netById = new Map(obs.networks.map((n) => [n.id, n]));
  const epById = new Map(obs.endpoints.map((e) => [e.id, e]));
  // Links in the host netns: a bridge per network, a veth per endpoint on it.
  const byName = new Map(k.links.map((l) => [l.ifname, l]));
  const expectedLinks = new Set<string>();
  for (const n of obs.networks) {
    const name = n.driverData.bridge ?? '?';
    expectedLinks.add(name);
    const link = byName.get(name);
    if (!link) push('mismatch', `network ${n.name}: no bridge ${name}`);
    else if (
      link.ifalias !== `netctl:net:${n.id}` ||
      link.linkinfo?.info_kind !== 'bridge' ||
      !link.flags.includes('UP')
    )
      push(
        'mismatch',
        `network ${n.name}: bridge ${name} is ${link.linkinfo?.info_kind} ${link.ifalias} ${link.flags}`,
      );
    const config = n.ipam.config[0];
    const address = k.addrs.find((l) => l.ifname === name)?.addr_info ?? [];
    if (config && !address.some((a) => a.local === config.gateway && a.prefixlen === cidr(config.subnet).len))
      push('mismatch', `network ${n.name}: bridge ${name} lacks gateway ${config.gateway}`);
  }
  for (const e of obs.endpoints) {
    const name = e.driverData.hostIfname ?? '?';
    expectedLinks.add(name);
    const link = byName.get(name);
    const bridge = netById.get(e.networkId)?.driverData.bridge;
    if (!link) push('mismatch', `endpoint ${short(e.id)}: no host veth ${name}`);
    else if (
      link.ifalias !== `netctl:ep:${e.id}` ||
      link.linkinfo?.info_kind !== 'veth' ||
      link.master !== bridge ||
      !link.flags.includes('UP')
    )
      push(
        'mismatch',
        `endpoint ${short(e.id)}: veth ${name} ${link.ifalias} on ${link.master}, not ${bridge}`,
      );
  }
  for (const l of k.links) {
    if (l.ifname === 'lo' || expectedLinks.has(l.ifname)) continue;
    push(
      'leak',
      `host netns: link ${l.ifname} (${l.ifalias ?? 'no alias'}, group ${l.group})${isNetctlLink(l) ? '' : ' not netctl'}`,
    );
  }
  for (const name of expectedLinks)
    if (k.links.filter((l) => l.ifname === name).length > 1) push('double', `two links named ${name}`);
  // Each sandbox's netns: its endpoints' interfaces with their addresses, nothing else.
  for (let i = 0; i < SANDBOXES; i++) {
    const name = w.sandboxName(i);
    const record = obs.sandboxes.find((s) => s.name === name);
    const view = k.sandboxes[i];
    if (record && record.key !== w.sandboxNetns(i)) push('mismatch', `sandbox s${i}: key ${record.key}`);
    if (!view) {
      if (record) push('mismatch', `sandbox s${i}: its netns ${w.sandboxNetns(i)} is gone`);
      continue;
    }
    if (!record && !w.keys[i]) push('leak', `netns ${w.sandboxNetns(i)} of removed sandbox s${i}`);
    const own = record ? obs.endpoints.filter((e) => e.sandboxId === record.id) : [];
    const present = view.filter((l) => l.ifname !== 'lo');
    for (const e of own) {
      const link = present.find((l) => l.ifname === e.ifname);
      const [ip, len] = (e.ipv4 ?? '').split('/');
      if (!link) push('mismatch', `sandbox s${i}: no ${e.ifname} for endpoint ${short(e.id)}`);
      else if (
        !link.addr_info?.some((a) => a.family === 'inet' && a.local === ip && a.prefixlen === Number(len))
      )
        push('mismatch', `sandbox s${i}: ${e.ifname} lacks ${e.ipv4}`);
    }
    for (const l of present)
      if (!own.some((e) => e.ifname === l.ifname))
        push('leak', `sandbox s${i}'s netns: interface ${l.ifname}`);
  }
  // Run dirs: netctl's own sandboxes, nothing else.
  const runDirs = listSandboxRunDirs()
    .map((d) => d.id)
    .filter((id) => !w.runDirsBefore.has(id));
  const owned = obs.sandboxes.filter((s) => s.ownsNetns).map((s) => s.id);
  findings.push(...compareCounts('run dirs', runDirs, owned, 'leak'));
  // Rules: one DNAT and its ACCEPT per published port; owners that exist; base jumps while networks do.
  const v4 = k.v4.rules;
  for (const r of [...v4, ...k.v6.rules]) {
    const [kind, id = ''] = (r.owner ?? '').split(':');
    if (!r.owner) push('leak', `rule without netctl's tag: ${r.line}`);
    else if (kind === 'net' && !netById.has(id)) push('leak', `rule of a removed network: ${r.line}`);
    // Port rules are matched one by one below.
    else if (kind === 'ep' && !['NETCTL-PREROUTING', 'NETCTL-PUBLISH'].includes(r.chain) && !epById.has(id))
      push('leak', `rule of a removed endpoint: ${r.line}`);
  }
  for (const r of k.v6.rules) if (r.owner?.startsWith('ep:')) push('leak', `IPv6 port rule: ${r.line}`);
  if (obs.networks.length) {
    const base = v4.filter((r) => r.owner === 'base');
    for (const [chain, target] of [
      ['FORWARD', 'NETCTL-FORWARD'],
      ['PREROUTING', 'NETCTL-PREROUTING'],
      ['OUTPUT', 'NETCTL-PREROUTING'],
    ])
      if (!base.some((r) => r.chain === chain && r.line.includes(`-j ${target}`)))
        push('mismatch', `no base jump ${chain} -> ${target} while networks exist`);
    for (const n of obs.networks)
      if (!v4.some((r) => r.owner === `net:${n.id}`)) push('mismatch', `network ${n.name}: no rules`);
  } else {
    for (const t of [k.v4, k.v6])
      if (t.chains.length || t.rules.length)
        push(
          'leak',
          `no network, yet ${[...t.chains, ...t.rules.map((r) => r.line)].slice(0, 3).join(' | ')}`,
        );
  }
  for (const t of k.legacy ?? [])
    if (t.chains.length || t.rules.length)
      push(
        'leak',
        `legacy iptables: ${[...t.chains, ...t.rules.map((r) => r.line)].slice(0, 3).join(' | ')}`,
      );
  const dnat = v4.filter((r) => r.chain === 'NETCTL-PREROUTING' && r.line.includes('-j DNAT'));
  findings.push(
    ...compareCounts(
      'DNAT rules',
      dnat.map((r) => dnatKey(r.line, r.owner ?? '?')),
      obs.endpoints.flatMap((e) => e.portMappings.map((m) => expectedDnat(e, m))),
      'leak',
    ),
  );
  findings.push(
    ...compareCounts(
      'ACCEPT rules',
      v4.filter((r) => r.chain === 'NETCTL-PUBLISH').map((r) => acceptKey(r.line, r.owner ?? '?')),
      obs.endpoints.flatMap((e) => [...new Set(e.portMappings.map((m) => expectedAccept(e, m)))]),
      'leak',
    ),
  );
  // No host port DNATed for two owners.
  const ports = dnat.map((r) => {
    const [first = 0, last = first] = (/--dport (\S+)/.exec(r.line)?.[1] ?? '0').split(':').map(Number);
    const claim: PortClaim = {
      proto: / -p (\w+)/.exec(r.line)?.[1] ?? '?',
      hostIp: / -d ([\d.]+)\/32/.exec(r.line)?.[1],
      first,
      last,
    };
    return { owner: r.owner, claim, line: r.line };
  });
  for (const [i, a] of ports.entries())
    for (const b of ports.slice(i + 1))
      if (a.owner !== b.owner && clash(a.claim, b.claim))
        push('double', `two DNATs for one port: ${a.line} | ${b.line}`);
  return findings;
}

/** After a sequence: gc has nothing to do, check finds nothing missing. */
async function quietFindings(w: World, obs: Observation): Promise<Finding[]> {
  const api = (w.clients[0] as Client).api;
  const findings: Finding[] = [];
  for (const a of (await api.gc({ dryRun: true })).actions)
    findings.push({
      kind: a.action === 'remove' ? 'leak' : 'mismatch',
      text: `gc --dry-run: ${a.action} ${a.kind} ${a.name} (${a.owner}): ${a.reason}`,
    });
  for (const n of obs.networks) {
    const report = await api.check(n.id);
    if (report.problems.length)
      findings.push({ kind: 'mismatch', text: `check ${n.name}: ${report.problems.join(', ')}` });
  }
  for (const e of obs.endpoints) {
    const sandbox = obs.sandboxes.find((s) => s.id === e.sandboxId);
    if (!sandbox) continue;
    const report = await api.check(e.networkId, sandbox.id);
    const problems = [...report.problems, ...(report.sandboxProblems ?? [])];
    if (problems.length)
      findings.push({
        kind: 'mismatch',
        text: `check ${e.networkId.slice(0, 8)} ${sandbox.name}: ${problems.join(', ')}`,
      });
  }
  return findings;
}

/** Remove everything through the API; then nothing of netctl's may be left anywhere. */
async function teardownFindings(w: World): Promise<Finding[]> {
  const api = (w.clients[0] as Client).api;
  const findings: Finding[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      findings.push({
        kind: 'error',
        text: `teardown: ${what}: ${specOf(err)?.code ?? ''} ${(err as Error).message}`,
      });
    }
  };
  for (const s of await api.listSandboxes())
    await attempt(`sandbox rm ${s.name}`, () => api.deleteSandbox(s.id));
  for (const n of await api.listNetworks())
    await attempt(`network rm ${n.name}`, () => api.deleteNetwork(n.id));
  for (const entry of await api.state.kv.list(`${ROOT}/`)) {
    // An address space's record stays, with no pool in it.
    const pools = (entry.value as { pools?: unknown[] } | null)?.pools;
    if (entry.key.startsWith(`${ROOT}/ipam/spaces/`) && pools?.length === 0) continue;
    findings.push({
      kind: 'leak',
      text: `store key left: ${entry.key} ${JSON.stringify(entry.value).slice(0, 200)}`,
    });
  }
  const k = await kernelView(w, true);
  const empty: Observation = { model: EMPTY, networks: [], sandboxes: [], endpoints: [], findings: [] };
  findings.push(...kernelFindings(w, empty, k).map((f) => ({ ...f, text: `after teardown: ${f.text}` })));
  return findings;
}

// --------------------------------------------------------------- sequences

/** A command as run on model: its `ep` made a pair, publish's target found (Item). */
function resolve(model: Model, cmd: Cmd): Item {
  if (cmd.op !== 'disconnect' && cmd.op !== 'publish' && cmd.op !== 'unpublish') return { cmd };
  const eps = Object.values(model.eps).sort((a, b) => `${a.net}/${a.sb}`.localeCompare(`${b.net}/${b.sb}`));
  const chosen = cmd.ep === null ? undefined : eps[cmd.ep % Math.max(eps.length, 1)];
  const resolved = chosen
    ? { ...cmd, ep: null, net: Number(chosen.net.slice(1)), sb: Number(chosen.sb.slice(1)) }
    : { ...cmd, ep: null };
  if (resolved.op === 'disconnect') return { cmd: resolved };
  return {
    cmd: resolved,
    target: endpointOf(model, `n${resolved.net}`, `s${resolved.sb}`)?.id ?? NO_ENDPOINT,
  };
}

interface Program {
  clients: number;
  batches: Cmd[][];
}

interface Stats {
  sequences: number;
  operations: number;
  doubleGrants: number;
  leaks: number;
  concurrentConflicts: number;
  gcActions: number;
  /** How often each command ended each way (`connect ok`, `connect NETCTL_PORT_IN_USE`). */
  outcomes: Record<string, number>;
  /** What gc did while other commands ran (to look at: in flight, nothing is garbage). */
  gcSeen: string[];
  /** Time in the commands' batches, in the checks after them. */
  commandMs: number;
  checkMs: number;
}

function showProgram(p: Program): string {
  return p.batches
    .map((batch, i) => `  batch ${i + 1}: ${batch.map((c) => showCmd(c, p.clients)).join('  ||  ')}`)
    .join('\n');
}

/** What a sequence found, and the batch it found it after (batches after it never ran). */
class ModelFailure extends Error {
  constructor(
    message: string,
    readonly batches: number,
  ) {
    super(message);
  }
}

/** Run one program on a fresh world; throws ModelFailure with what was found and the run's log. */
async function runSequence(program: Program, stats: Stats): Promise<void> {
  const w = await makeWorld(program.clients);
  const log: string[] = [];
  const fail = (findings: Finding[], where: string, batches: number): never => {
    stats.leaks += findings.filter((f) => f.kind === 'leak').length;
    stats.doubleGrants += findings.filter((f) => f.kind === 'double').length;
    const shown = findings.slice(0, 20).map((f) => `  [${f.kind}] ${f.text}`);
    if (findings.length > shown.length) shown.push(`  ... and ${findings.length - shown.length} more`);
    throw new ModelFailure(
      `${where}:\n${shown.join('\n')}\nthe run, with outcomes:\n${log.join('\n')}`,
      batches,
    );
  };
  try {
    let model = EMPTY;
    for (const [b, batch] of program.batches.entries()) {
      const items = batch.map((cmd) => resolve(model, cmd));
      const began = performance.now();
      const outcomes = await Promise.all(items.map((item) => execute(w, item)));
      const ran = performance.now();
      stats.commandMs += ran - began;
      stats.operations += items.length;
      for (const [i, o] of outcomes.entries()) {
        const key = `${items[i]?.cmd.op} ${o.ok ? 'ok' : o.code}`;
        stats.outcomes[key] = (stats.outcomes[key] ?? 0) + 1;
        const actions = o.ok ? (o.value as { actions?: unknown[] }).actions : undefined;
        if (actions?.length) {
          stats.gcActions += actions.length;
          stats.gcSeen.push(showOutcome(o));
        }
      }
      if (items.length > 1)
        stats.concurrentConflicts += outcomes.filter((o) => !o.ok && o.code === C.conflict).length;
      log.push(
        `  batch ${b + 1}:\n${items
          .map(
            (item, i) =>
              `    ${i + 1}. ${showCmd(item.cmd, program.clients)}  ->  ${showOutcome(outcomes[i] as Outcome)}`,
          )
          .join('\n')}`,
      );
      const findings: Finding[] = [];
      for (const o of outcomes)
        if (!o.ok && (o.cls === 'internal' || o.cls === 'unavailable'))
          findings.push({ kind: 'error', text: `error of class ${o.cls}: ${o.code}: ${o.message}` });
      const [obs, kernel] = await Promise.all([observe(w), kernelView(w, false)]);
      findings.push(...obs.findings);
      const unexplained = linearize(model, items, outcomes, obs.model);
      if (unexplained) findings.push({ kind: 'mismatch', text: unexplained });
      model = obs.model;
      findings.push(...(await ipamFindings(w, obs)));
      findings.push(...kernelFindings(w, obs, kernel));
      // Once the batch is done: nothing for gc to do, nothing for check to find.
      if (!findings.length) findings.push(...(await quietFindings(w, obs)));
      stats.checkMs += performance.now() - ran;
      if (findings.length) fail(findings, `after batch ${b + 1}`, b + 1);
    }
    const all = program.batches.length;
    const obs = await observe(w);
    const last = kernelFindings(w, obs, await kernelView(w, true));
    if (last.length) fail(last, 'at the end of the sequence (legacy iptables too)', all);
    const left = await teardownFindings(w);
    if (left.length) fail(left, 'tearing down', all);
  } finally {
    await destroyWorld(w);
    stats.sequences++;
  }
}

// ------------------------------------------------------------- the program

const clientIndex = fc.nat(3);
const net = fc.nat(NETWORKS - 1);
const sb = fc.nat(SANDBOXES - 1);
/** In a batch, twice in three times the batch's sandbox: commands at once on one sandbox race. */
const FOCUS = -1;
const focusSb = fc.oneof({ weight: 2, arbitrary: fc.constant(FOCUS) }, { weight: 1, arbitrary: sb });
/** Mostly an endpoint that exists (see Item). */
const ep = fc.oneof({ weight: 3, arbitrary: fc.nat(15) }, { weight: 1, arbitrary: fc.constant(null) });
const createNetwork = fc.record({
  op: fc.constant('createNetwork' as const),
  c: clientIndex,
  net,
  subnet: fc.nat(SUBNETS.length - 1),
});
const command: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 2, arbitrary: createNetwork },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteNetwork' as const), c: clientIndex, net }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('createSandbox' as const), c: clientIndex, sb: focusSb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('deleteSandbox' as const), c: clientIndex, sb: focusSb }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('connect' as const),
      c: clientIndex,
      net,
      sb: focusSb,
      ip: fc.oneof(
        { withCrossShrink: true },
        { weight: 5, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.nat(ADDRESSES.length - 1) },
      ),
      ports: fc.oneof(
        { withCrossShrink: true },
        { weight: 1, arbitrary: fc.constant<number[]>([]) },
        { weight: 1, arbitrary: fc.array(fc.constantFrom(...CONNECT_PORTS), { minLength: 1, maxLength: 2 }) },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('disconnect' as const), c: clientIndex, net, sb: focusSb, ep }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('publish' as const),
      c: clientIndex,
      net,
      sb,
      ep,
      ports: fc.array(fc.nat(PORTS.length - 1), { maxLength: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unpublish' as const), c: clientIndex, net, sb, ep }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('gc' as const), c: clientIndex }) },
);

/** A batch of 1-4 commands at once, FOCUS made the batch's sandbox. */
const batch = fc
  .record({ sb, cmds: fc.array(command, { minLength: 1, maxLength: 4 }) })
  .map(({ sb, cmds }) => cmds.map((c) => ('sb' in c && c.sb === FOCUS ? { ...c, sb } : c)));

/** Mostly true; shrinks to false. */
const likely = fc.nat(7).map((n) => n > 0);

/**
 * The setup: each network (mostly on a subnet of its own, apart from the
 * others') and each sandbox created, in batches, so the random commands
 * after it find something to work on. Shrinking drops what a failure does
 * not need.
 */
const setup: fc.Arbitrary<Cmd[][]> = fc
  .record({
    nets: fc.tuple(
      ...Array.from({ length: NETWORKS }, (_, n) =>
        fc.record({
          keep: likely,
          c: clientIndex,
          subnet: fc.oneof(
            { weight: 5, arbitrary: fc.constant(OWN_SUBNET[n] ?? 0) },
            { weight: 1, arbitrary: fc.nat(SUBNETS.length - 1) },
          ),
        }),
      ),
    ),
    sbs: fc.tuple(...Array.from({ length: SANDBOXES }, () => fc.record({ keep: likely, c: clientIndex }))),
    size: fc.integer({ min: 1, max: 4 }),
    /** A gc among the creates, sometimes: nothing to collect while a create is in flight. */
    gc: fc.oneof(
      { withCrossShrink: true },
      { weight: 2, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.record({ at: fc.nat(7), c: clientIndex }) },
    ),
  })
  .map(({ nets, sbs, size, gc }) => {
    const cmds: Cmd[] = [
      ...nets.flatMap((n, i) =>
        n.keep ? [{ op: 'createNetwork' as const, c: n.c, net: i, subnet: n.subnet }] : [],
      ),
      ...sbs.flatMap((x, i) => (x.keep ? [{ op: 'createSandbox' as const, c: x.c, sb: i }] : [])),
    ];
    if (gc) cmds.splice(gc.at, 0, { op: 'gc', c: gc.c });
    const batches: Cmd[][] = [];
    for (let i = 0; i < cmds.length; i += size) batches.push(cmds.slice(i, i + size));
    return batches;
  });

const programs: fc.Arbitrary<Program> = fc.record({
  clients: fc.integer({ min: 2, max: 4 }),
  batches: fc
    .tuple(setup, fc.array(batch, { minLength: 1, maxLength: 8, size: 'max' }))
    .map(([first, rest]) => [...first, ...rest]),
});

it(
  'random concurrent sequences from several controllers keep the model, the store, the IPAM and the kernel in agreement',
  async () => {
    const started = performance.now();
    const stats: Stats = {
      sequences: 0,
      operations: 0,
      doubleGrants: 0,
      leaks: 0,
      concurrentConflicts: 0,
      gcActions: 0,
      outcomes: {},
      gcSeen: [],
      commandMs: 0,
      checkMs: 0,
    };
    /** Sequences after the first failure (shrinking) count apart: they repeat what was found. */
    const shrinking: Stats = { ...stats, outcomes: {}, gcSeen: [] };
    let failedAt: number | undefined;
    let skipped = 0;
    console.log(`model: MODEL_SEED=${SEED}, ${RUNS} sequences${PATH ? `, replaying path ${PATH}` : ''}`);
    const details = await fc.check(
      fc.asyncProperty(PROGRAM ? fc.constant(JSON.parse(PROGRAM) as Program) : programs, async (program) => {
        if (failedAt === undefined) {
          try {
            await runSequence(program, stats);
          } catch (err) {
            failedAt = performance.now();
            throw err;
          }
          return;
        }
        // Shrinking: within its time, and a few tries each (a race need not show every time).
        if (performance.now() - failedAt > SHRINK_MS) {
          skipped++;
          return;
        }
        for (let t = 0; t < SHRINK_TRIES; t++) await runSequence(program, shrinking);
      }),
      { seed: SEED, numRuns: PROGRAM ? 1 : RUNS, ...(PATH ? { path: PATH } : {}), endOnFailure: false },
    );
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    recordFigures({ operations: stats.operations, doubleGrants: stats.doubleGrants, leaks: stats.leaks });
    console.log(
      `model: ${stats.sequences} sequences, ${stats.operations} commands, ${stats.concurrentConflicts} NETCTL_CONFLICT under concurrency, ${stats.gcActions} gc actions in batches, double grants ${stats.doubleGrants}, leaks ${stats.leaks}; ${(stats.commandMs / 1000).toFixed(1)} s in batches, ${(stats.checkMs / 1000).toFixed(1)} s checking after them; ${shrinking.sequences} shrinking sequences (${shrinking.operations} commands, ${skipped} skipped past MODEL_SHRINK_MS); ${seconds} s`,
    );
    console.log(
      `model: outcomes: ${Object.entries(stats.outcomes)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, n]) => `${k.replace('NETCTL_', '')} ${n}`)
        .join(', ')}`,
    );
    for (const seen of stats.gcSeen.slice(0, 10)) console.log(`model: gc during a batch: ${seen}`);
    if (details.failed) {
      const found = details.counterexample?.[0];
      const failure = details.errorInstance;
      // The batches after the one that failed never ran.
      const program =
        found && failure instanceof ModelFailure
          ? { ...found, batches: found.batches.slice(0, failure.batches) }
          : found;
      throw new Error(
        `model-based test failed: replay with MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath} (${details.numShrinks} shrinks)\n` +
          `smallest program found (${program?.clients} controllers), run it alone with MODEL_PROGRAM='${JSON.stringify(program)}':\n${program ? showProgram(program) : '?'}\n` +
          `${(details.errorInstance as Error | undefined)?.message ?? ''}`,
      );
    }
    expect(stats.operations).toBeGreaterThan(0);
    expect(stats.doubleGrants).toBe(0);
    expect(stats.leaks).toBe(0);
  },
  30 * 60_000,
);
