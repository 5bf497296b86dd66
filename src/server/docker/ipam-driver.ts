/**
 * Docker's IpamDriver protocol (libnetwork ipams/remote) over
 * DockerIpamApi (src/controller/docker-ipam.ts, where owners, shared pools
 * and what Docker may release are written). A thin adapter: Docker's
 * request → the API's call → Docker's answer.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { DockerIpamApi } from '../../controller/api.js';
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

/** What every call of the IPAM driver's socket shares. */
export interface IpamDriverSocket {
  ipam: DockerIpamApi;
}

/** Answered from constants: dockerd asks while it starts. */
const activate = async (): Promise<object> => ({ Implements: ['IpamDriver'] });

const getCapabilities = async (): Promise<object> => ({
  RequiresMACAddress: false,
  RequiresRequestReplay: false,
});

/** From the IPAM's configuration, never the store: dockerd asks this while it starts. */
async function getDefaultAddressSpaces({ ipam }: IpamDriverSocket): Promise<object> {
  const spaces = await ipam.defaultAddressSpaces();
  return { LocalDefaultAddressSpace: spaces.local, GlobalDefaultAddressSpace: spaces.global };
}

async function requestPool(
  { ipam }: IpamDriverSocket,
  { AddressSpace, Pool, SubPool, Options, V6 }: z.output<typeof requestPoolSchema>,
): Promise<object> {
  const shareWith = Options[NETCTL_NAME];
  const made = await ipam.requestPool({
    addressSpace: AddressSpace,
    ...(Pool ? { pool: Pool } : {}),
    ...(SubPool ? { subPool: SubPool } : {}),
    v6: V6,
    ...(shareWith ? { shareWith } : {}),
  });
  return { PoolID: made.poolId, Pool: made.pool, Data: {} };
}

async function releasePool(
  { ipam }: IpamDriverSocket,
  { PoolID }: z.output<typeof releasePoolSchema>,
): Promise<object> {
  await ipam.releasePool(PoolID);
  return {};
}

async function requestAddress(
  { ipam }: IpamDriverSocket,
  { PoolID, Address, Options }: z.output<typeof requestAddressSchema>,
): Promise<object> {
  const address = await ipam.requestAddress(PoolID, {
    ...(Address ? { address: Address } : {}),
    gateway: Options[REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS,
  });
  return { Address: address, Data: {} };
}

async function releaseAddress(
  { ipam }: IpamDriverSocket,
  { PoolID, Address }: z.output<typeof releaseAddressSchema>,
): Promise<object> {
  await ipam.releaseAddress(PoolID, Address);
  return {};
}

/** Docker's IpamDriver calls (ipams/remote/api/api.go) and what answers each. */
const IPAM_DRIVER_CALLS: DockerCall<IpamDriverSocket>[] = [
  call('/Plugin.Activate', null, activate),
  call('/IpamDriver.GetCapabilities', null, getCapabilities),
  call('/IpamDriver.GetDefaultAddressSpaces', null, getDefaultAddressSpaces),
  call('/IpamDriver.RequestPool', requestPoolSchema, requestPool),
  call('/IpamDriver.ReleasePool', releasePoolSchema, releasePool),
  call('/IpamDriver.RequestAddress', requestAddressSchema, requestAddress),
  call('/IpamDriver.ReleaseAddress', releaseAddressSchema, releaseAddress),
];

export const ipamDriverRoutes: FastifyPluginAsyncZod<IpamDriverSocket> = async (app, socket) => {
  registerCalls(app, socket, IPAM_DRIVER_CALLS);
};
