/**
 * Docker's IpamDriver protocol (libnetwork ipams/remote) over netctl's IPAM
 * (the controller's IpamDriver, state in the store): dockerd asks for a
 * pool, then the gateway and every container's address, and gives them
 * back one by one. The state lives in the store and nothing resets it —
 * not Plugin.Activate, not a restart of either daemon: dockerd does not ask
 * again after its own restart (RequiresRequestReplay is false).
 *
 * Owners (docs/docker.md): Docker's remote IPAM protocol never says whose
 * an address is, so Docker's reservations are held by Docker — pools by
 * `docker:ipam`, addresses by `docker:<pool id>@<nonce>`. reconcile and `netctl gc`
 * keep what owners of a kind they do not know hold, so nothing of Docker's
 * is swept while Docker holds it; Docker releases it. Docker releases only
 * what Docker holds: a ReleaseAddress of an address someone else holds (a
 * netctl endpoint's, the gateway of an adopted network) changes nothing.
 *
 * `--ipam-opt netctl.name=NAME` gives Docker the pool of netctl network
 * NAME, shared: Docker's addresses come from the same pool as netctl's own
 * sandboxes', and Docker's ReleasePool gives back only Docker's addresses.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { parsePrefix } from '../../address.js';
import type { Controller } from '../../controller/controller.js';
import { hasIpamLookup, type IpamDriver, type Pool, type Reservation } from '../../core/ipam.js';
import type { Network } from '../../core/model.js';
import { Errors } from '../../errors.js';
import { AddressInUseError } from '../../ipam/errors.js';
import { call, type DockerCall, registerCalls } from './calls.js';
import {
  GATEWAY_ADDRESS,
  NETCTL_NAME,
  REQUEST_ADDRESS_TYPE,
  releaseAddressSchema,
  releasePoolSchema,
  requestAddressSchema,
  requestPoolSchema,
} from './protocol.js';

/** Owner of the pools Docker asks for. */
export const DOCKER_POOL_OWNER = 'docker:ipam';
/**
 * Owner of one address Docker asks for in a pool: `docker:<pool id>@<nonce>`.
 * One owner per reservation: the IPAM gives an address again to the owner
 * that holds it (a retried CNI ADD), and a `--ip` already in use must be
 * refused to the second container that asks for it.
 */
export const dockerAddressOwner = (poolId: string) => `docker:${poolId}@${randomBytes(4).toString('hex')}`;
/** True for the owners dockerAddressOwner makes for poolId. */
export const isDockerAddressOwner = (owner: string, poolId: string) => owner.startsWith(`docker:${poolId}@`);

/** `--ip X` taken: by whom, in words a Docker user knows. */
function inUse(err: AddressInUseError, subnet: string): string {
  const holder = err.holder ?? '';
  const by = holder.startsWith('docker:')
    ? 'another container or the gateway'
    : holder === 'gateway'
      ? 'the gateway'
      : holder.startsWith('aux:')
        ? `aux address ${holder.slice('aux:'.length)}`
        : holder.startsWith('ep:')
          ? `netctl endpoint ep-${holder.slice('ep:'.length, 'ep:'.length + 12)}`
          : 'another user of the pool';
  return `${err.address} on subnet ${subnet} (held by ${by})`;
}

export interface IpamDriverOptions {
  controller: Controller;
}

/** What every call of the IPAM driver's socket shares: the controller and its IPAM. */
interface DockerIpam {
  controller: Controller;
  ipam: IpamDriver;
}

async function findPool(ipam: IpamDriver, poolId: string): Promise<(Pool & { owner: string }) | undefined> {
  return hasIpamLookup(ipam) ? ipam.pool(poolId) : (await ipam.listPools()).find((p) => p.poolId === poolId);
}

/** The reservation of address in pool poolId, whoever holds it. */
async function findReservation(
  ipam: IpamDriver,
  poolId: string,
  address: string,
): Promise<Reservation | undefined> {
  if (hasIpamLookup(ipam)) return ipam.reservation(poolId, address);
  const ip = parsePrefix(address.includes('/') ? address : `${address}/0`).ip;
  return (await ipam.listReservations(poolId)).find((r) => parsePrefix(r.address).ip === ip);
}

/** The netctl network a shared pool (one not requested by Docker) belongs to. */
async function sharedNetwork(c: Controller, owner: string): Promise<Network | undefined> {
  return owner.startsWith('net:') ? c.state.network(owner.slice('net:'.length)) : undefined;
}

/** Answered from constants: dockerd asks while it starts. */
const activate = async (): Promise<object> => ({ Implements: ['IpamDriver'] });

const getCapabilities = async (): Promise<object> => ({
  RequiresMACAddress: false,
  RequiresRequestReplay: false,
});

/** From the IPAM's configuration, never the store: dockerd asks this while it starts. */
async function getDefaultAddressSpaces({ ipam }: DockerIpam): Promise<object> {
  const spaces = await ipam.defaultAddressSpaces();
  return { LocalDefaultAddressSpace: spaces.local, GlobalDefaultAddressSpace: spaces.global };
}

type RequestPoolBody = z.output<typeof requestPoolSchema>;

/** A pool of Docker's own, or (`--ipam-opt netctl.name=NAME`) the one of netctl network NAME, shared. */
async function requestPool({ controller: c }: DockerIpam, body: RequestPoolBody): Promise<object> {
  const { AddressSpace, Pool, SubPool, Options, V6 } = body;
  const name = Options[NETCTL_NAME];
  if (name) return sharedPool(c, name, body);
  const made = await c.requestPool({
    addressSpace: AddressSpace,
    ...(Pool ? { pool: Pool } : {}),
    ...(SubPool ? { subPool: SubPool } : {}),
    v6: V6,
    owner: DOCKER_POOL_OWNER,
  });
  return { PoolID: made.poolId, Pool: made.pool, Data: {} };
}

/** The pool of netctl network `name` that Docker's request fits (see the file comment). */
async function sharedPool(
  c: Controller,
  name: string,
  { AddressSpace, Pool, SubPool, V6 }: RequestPoolBody,
): Promise<object> {
  const network = await c.findNetwork(name);
  const family = V6 ? 6 : 4;
  const i = network.ipam.config.findIndex((p) =>
    Pool ? p.subnet === Pool : parsePrefix(p.subnet).family === family,
  );
  const config = network.ipam.config[i];
  const poolId = network.ipam.poolIds[i];
  if (!config || !poolId)
    throw new Errors.InvalidRequest(
      `netctl network ${network.name} has no ${Pool ? `subnet ${Pool}` : `IPv${family} subnet`} in netctl's IPAM`,
    );
  if (SubPool && SubPool !== config.ipRange)
    throw new Errors.InvalidRequest(
      `netctl network ${network.name} has ip-range ${config.ipRange ?? 'none'}, not ${SubPool}`,
    );
  if (!poolId.startsWith(`${AddressSpace}/`))
    throw new Errors.InvalidRequest(`pool ${poolId} is not in address space ${AddressSpace}`);
  return { PoolID: poolId, Pool: config.subnet, Data: {} };
}

/** Docker's addresses go back; the pool too, unless it is shared (it stays its network's). */
async function releasePool(
  { ipam }: DockerIpam,
  { PoolID }: z.output<typeof releasePoolSchema>,
): Promise<object> {
  const found = await findPool(ipam, PoolID);
  if (!found) return {};
  for (const r of await ipam.listReservations(PoolID)) {
    if (isDockerAddressOwner(r.owner, PoolID)) await ipam.releaseAddress(PoolID, r.address);
  }
  if (found.owner === DOCKER_POOL_OWNER) await ipam.releasePool(PoolID);
  return {};
}

async function requestAddress(
  { controller: c, ipam }: DockerIpam,
  { PoolID, Address, Options }: z.output<typeof requestAddressSchema>,
): Promise<object> {
  const found = await findPool(ipam, PoolID);
  if (!found) throw new Errors.PoolNotFound(PoolID);
  if (Options[REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS && found.owner !== DOCKER_POOL_OWNER)
    return sharedGateway(c, found, Address);
  // The gateway too is an address of Docker's: the next free one unless given, as Docker's own IPAM does.
  try {
    const r = await ipam.requestAddress({
      poolId: PoolID,
      ...(Address ? { address: Address } : {}),
      owner: dockerAddressOwner(PoolID),
    });
    return { Address: r.address, Data: {} };
  } catch (err) {
    // The IPAM names the holder by its owner id, which means nothing to a Docker user.
    if (err instanceof AddressInUseError) throw new Errors.AddressInUse(inUse(err, found.pool));
    throw err;
  }
}

/** A shared pool's gateway is its network's already: Docker gets that one. */
async function sharedGateway(
  c: Controller,
  pool: Pool & { owner: string },
  address: string | undefined,
): Promise<object> {
  const network = await sharedNetwork(c, pool.owner);
  const gateway = network?.ipam.config.find((p) => p.subnet === pool.pool)?.gateway;
  if (!gateway) throw new Errors.InvalidRequest(`pool ${pool.poolId} has no gateway to share`);
  if (address && parsePrefix(`${address}/0`).ip !== parsePrefix(`${gateway}/0`).ip)
    throw new Errors.InvalidRequest(`netctl network ${network?.name} has gateway ${gateway}, not ${address}`);
  return { Address: `${gateway}/${parsePrefix(pool.pool).prefixLength}`, Data: {} };
}

/** Docker releases only what Docker holds (see the file comment). */
async function releaseAddress(
  { ipam }: DockerIpam,
  { PoolID, Address }: z.output<typeof releaseAddressSchema>,
  request: FastifyRequest,
): Promise<object> {
  if (!(await findPool(ipam, PoolID))) return {};
  const held = await findReservation(ipam, PoolID, Address);
  if (held && isDockerAddressOwner(held.owner, PoolID)) await ipam.releaseAddress(PoolID, held.address);
  else if (held) request.log.debug({ held }, 'Docker released an address it does not hold: kept');
  return {};
}

/** Docker's IpamDriver calls (ipams/remote/api/api.go) and what answers each. */
const IPAM_DRIVER_CALLS: DockerCall<DockerIpam>[] = [
  call('/Plugin.Activate', null, activate),
  call('/IpamDriver.GetCapabilities', null, getCapabilities),
  call('/IpamDriver.GetDefaultAddressSpaces', null, getDefaultAddressSpaces),
  call('/IpamDriver.RequestPool', requestPoolSchema, requestPool),
  call('/IpamDriver.ReleasePool', releasePoolSchema, releasePool),
  call('/IpamDriver.RequestAddress', requestAddressSchema, requestAddress),
  call('/IpamDriver.ReleaseAddress', releaseAddressSchema, releaseAddress),
];

export const ipamDriverRoutes: FastifyPluginAsyncZod<IpamDriverOptions> = async (app, { controller }) => {
  registerCalls(app, { controller, ipam: controller.ipam }, IPAM_DRIVER_CALLS);
};
