/**
 * Docker's networks in netctl: their names, their addressing as Docker's
 * IPAM gave it, and the adoption of a netctl network Docker names with
 * `-o netctl.name=NAME`.
 */
import type { z } from 'zod';
import { parsePrefix } from '../../address.js';
import type { Controller, ExternalAddressing } from '../../controller/controller.js';
import { Errors } from '../../errors.js';
import { type ipamDataSchema, NETCTL_NAME } from './protocol.js';

/** Name of a network Docker makes without `-o netctl.name=NAME`. */
export const dockerNetworkName = (networkId: string) => `docker-${networkId.slice(0, 12)}`;

/** Docker's `-o` options as the driver's: netctl's own (`netctl.*`) are not the driver's. */
export const driverOptions = (generic: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(generic).filter(([k]) => !k.startsWith('netctl.')));

type IpamData = z.output<typeof ipamDataSchema>;

/** One pool as Docker's IPAM reserved it: its subnet, gateway and aux addresses, without prefix lengths. */
function poolConfigOf(d: IpamData): ExternalAddressing['config'][number] {
  if (!d.Gateway) throw new Errors.InvalidRequest(`pool ${d.Pool} has no gateway`);
  const aux = Object.entries(d.AuxAddresses).map(([k, v]) => [k, parsePrefix(v).ip]);
  return {
    subnet: d.Pool,
    gateway: parsePrefix(d.Gateway).ip,
    ...(aux.length ? { auxAddresses: Object.fromEntries(aux) } : {}),
  };
}

/**
 * Docker network networkId's addressing, as Docker's IPAM driver gave it.
 * That IPAM is netctl's when its pools are in netctl's address spaces (and
 * store): then the network's addresses are held in those pools.
 */
export async function dockerAddressing(
  c: Controller,
  networkId: string,
  data: IpamData[],
): Promise<ExternalAddressing> {
  const config = data.map(poolConfigOf);
  const spaces = Object.values(await c.ipam.defaultAddressSpaces());
  const ours = data.length > 0 && data.every((d) => spaces.includes(d.AddressSpace));
  return {
    id: networkId,
    dockerId: networkId,
    ipamDriver: ours ? 'netctl' : 'default',
    config,
    poolIds: ours ? data.map((d) => `${d.AddressSpace}/${d.Pool}`) : [],
  };
}

/**
 * Adopt netctl network `ref` as Docker network dockerId (`-o
 * netctl.name=NAME` naming a network that exists): same driver, the same
 * subnets and gateways, and Docker's addresses drawn from the network's own
 * pools (`--ipam-driver netctl --ipam-opt netctl.name=NAME`), so neither
 * side hands out an address the other holds.
 */
export async function adopt(
  c: Controller,
  ref: string,
  dockerId: string,
  driver: string,
  { config, poolIds }: Pick<ExternalAddressing, 'config' | 'poolIds'>,
): Promise<void> {
  const network = await c.findNetwork(ref);
  const refuse = (why: string) => new Errors.NotAdoptable(network.name, dockerId.slice(0, 12), why);
  if (network.driver !== driver) throw refuse(`its driver is ${network.driver}, not ${driver}`);
  const theirs = network.ipam.config.map((p) => `${p.subnet} gateway ${p.gateway}`).sort();
  const asked = config.map((p) => `${p.subnet} gateway ${p.gateway}`).sort();
  if (theirs.join() !== asked.join())
    throw refuse(`it has ${theirs.join(', ') || 'no subnet'}, Docker asked for ${asked.join(', ')}`);
  const samePools = poolIds.length > 0 && poolIds.every((id) => network.ipam.poolIds.includes(id));
  if (!samePools)
    throw refuse(
      `Docker's addresses must come from its pools: --ipam-driver netctl --ipam-opt ${NETCTL_NAME}=${network.name}`,
    );
  await c.setDockerNetwork(network.id, dockerId);
}
