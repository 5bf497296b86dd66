/**
 * The netctl network a configuration names: found by name, or made from
 * its subnet on first use (config.ts's createRequestOf).
 */
import { overlaps, parseSubnet } from '../address.js';
import type { NetctlApi } from '../controller/api.js';
import type { Network } from '../core/model.js';
import type { CreateNetworkRequest } from '../core/schemas.js';
import { Errors, isCode } from '../errors.js';
import { createRequestOf, type NetctlCniConfig, networkNameOf } from './config.js';
import { CniCode, CniError } from './skel.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long an ADD waits for another call's creation of its network (bridge, rules: slow on a loaded host). */
const NETWORK_CREATION_WAIT_MS = 15_000;

/** The error for a network that is not there and that the configuration cannot make. */
export function noSuchNetwork(code: number, name: string): CniError {
  return new CniError(
    code,
    `netctl network ${name} does not exist`,
    `create it with \`netctl network create --subnet CIDR ${name}\`, or give "subnet" in the configuration`,
  );
}

/**
 * The configuration's network: found by name, or made from its subnet. Many
 * containers may start at once on a network nobody made yet: one creation
 * wins (the pool is claimed by CAS), the others wait for its record. A
 * subnet that another network's record holds is no race: that fails at once.
 */
export async function ensureNetwork(api: NetctlApi, conf: NetctlCniConfig): Promise<Network> {
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
    if (!request) throw noSuchNetwork(CniCode.INVALID_CONFIG, name);
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
