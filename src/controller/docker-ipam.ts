/**
 * Docker's IPAM (DockerIpamApi) over netctl's: dockerd asks for a pool,
 * then the gateway and every container's address, and gives them back one
 * by one. The state lives in the store and nothing resets it — not
 * Plugin.Activate, not a restart of either daemon: dockerd does not ask
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
 * An overlay's pool is the cluster's, shared by every host's Docker: each
 * host's owners name the host, and a host's Docker gives back only its own.
 */
import { parsePrefix } from '../address.js';
import { type AddressSpaces, hasIpamLookup, type Pool, type Reservation } from '../core/ipam.js';
import { Errors, isCode } from '../errors.js';
import { log } from '../log.js';
import { dockerAddressOwner, isDockerAddressOwner, isOwnerOfKind, parseOwner } from '../owners.js';
import type { DockerIpamApi, DockerPoolRequest } from './api.js';
import type { ControllerContext } from './context.js';
import type { Networks } from './networks.js';

/** Owner of the pools Docker asks for. */
export const DOCKER_POOL_OWNER = 'docker:ipam';
/** What the IPAM's address-in-use error tells beyond its code: the address and who holds it. */
interface AddressHeld {
  address: string;
  holder?: string;
}

/** `--ip X` taken: by whom, in words a Docker user knows. */
function inUse({ address, holder = '' }: AddressHeld, subnet: string): string {
  const by = holder.startsWith('docker:')
    ? 'another container or the gateway'
    : holder === 'gateway'
      ? 'the gateway'
      : holder.startsWith('aux:')
        ? `aux address ${holder.slice('aux:'.length)}`
        : isOwnerOfKind(holder, 'ep')
          ? `netctl endpoint ep-${holder.slice('ep:'.length, 'ep:'.length + 12)}`
          : 'another user of the pool';
  return `${address} on subnet ${subnet} (held by ${by})`;
}

export class DockerIpam implements DockerIpamApi {
  constructor(
    private readonly ctx: ControllerContext,
    private readonly networks: Networks,
  ) {}

  /** From the IPAM's configuration, never the store: dockerd asks this while it starts. */
  defaultAddressSpaces(): Promise<AddressSpaces> {
    return this.ctx.ipam.defaultAddressSpaces();
  }

  /** A pool of Docker's own, or (shareWith) the one of a netctl network, shared. */
  async requestPool(request: DockerPoolRequest): Promise<Pool> {
    if (request.shareWith) return this.sharedPool(request.shareWith, request);
    return this.networks.requestPool({
      addressSpace: request.addressSpace,
      ...(request.pool ? { pool: request.pool } : {}),
      ...(request.subPool ? { subPool: request.subPool } : {}),
      v6: request.v6,
      owner: DOCKER_POOL_OWNER,
    });
  }

  /** Docker's addresses go back; the pool too, unless it is shared (it stays its network's). */
  async releasePool(poolId: string): Promise<void> {
    const { ipam } = this.ctx;
    const found = await this.findPool(poolId);
    if (!found) return;
    const host = await this.hostOf(poolId);
    for (const r of await ipam.listReservations(poolId)) {
      if (isDockerAddressOwner(r.owner, poolId, host)) await ipam.releaseAddress(poolId, r.address);
    }
    if (found.owner === DOCKER_POOL_OWNER) await ipam.releasePool(poolId);
  }

  async requestAddress(
    poolId: string,
    { address, gateway }: { address?: string; gateway: boolean },
  ): Promise<string> {
    const found = await this.findPool(poolId);
    if (!found) throw new Errors.PoolNotFound(poolId);
    if (gateway && found.owner !== DOCKER_POOL_OWNER) return this.sharedGateway(found, address);
    // The gateway too is an address of Docker's: the next free one unless given, as Docker's own IPAM does.
    try {
      const r = await this.ctx.ipam.requestAddress({
        poolId,
        ...(address ? { address } : {}),
        owner: dockerAddressOwner(poolId, await this.hostOf(poolId)),
      });
      return r.address;
    } catch (err) {
      // The IPAM names the holder by its owner id, which means nothing to a Docker user.
      if (isCode(err, Errors.AddressInUse))
        throw new Errors.AddressInUse(inUse(err as AddressHeld, found.pool));
      throw err;
    }
  }

  /** Docker releases only what Docker holds (see the file comment). */
  async releaseAddress(poolId: string, address: string): Promise<void> {
    if (!(await this.findPool(poolId))) return;
    const held = await this.findReservation(poolId, address);
    if (held && isDockerAddressOwner(held.owner, poolId, await this.hostOf(poolId)))
      await this.ctx.ipam.releaseAddress(poolId, held.address);
    else if (held) log.debug({ held }, 'Docker released an address it does not hold: kept');
  }

  /** The pool of netctl network `name` that Docker's request fits (see the file comment). */
  private async sharedPool(
    name: string,
    { addressSpace, pool, subPool, v6 }: DockerPoolRequest,
  ): Promise<Pool> {
    const network = await this.ctx.findNetwork(name);
    const family = v6 ? 6 : 4;
    const i = network.ipam.config.findIndex((p) =>
      pool ? p.subnet === pool : parsePrefix(p.subnet).family === family,
    );
    const config = network.ipam.config[i];
    const poolId = network.ipam.poolIds[i];
    if (!config || !poolId)
      throw new Errors.InvalidRequest(
        `netctl network ${network.name} has no ${pool ? `subnet ${pool}` : `IPv${family} subnet`} in netctl's IPAM`,
      );
    if (subPool && subPool !== config.ipRange)
      throw new Errors.InvalidRequest(
        `netctl network ${network.name} has ip-range ${config.ipRange ?? 'none'}, not ${subPool}`,
      );
    // Docker asks in its space for a local-scope driver (every netctl driver is one to Docker); a global network's pool is the cluster's.
    if (!poolId.startsWith(`${addressSpace}/`) && network.scope !== 'global')
      throw new Errors.InvalidRequest(`pool ${poolId} is not in address space ${addressSpace}`);
    return { poolId, pool: config.subnet };
  }

  /** This host, for a pool of the cluster's address space (its Docker's owners name it); else undefined. */
  private async hostOf(poolId: string): Promise<string | undefined> {
    const { global } = await this.ctx.ipam.defaultAddressSpaces();
    return poolId.startsWith(`${global}/`) ? this.ctx.overlay?.hostId : undefined;
  }

  /** A shared pool's gateway is its network's already: Docker gets that one. */
  private async sharedGateway(pool: Pool & { owner: string }, address: string | undefined): Promise<string> {
    const owner = parseOwner(pool.owner);
    const network = owner?.kind === 'net' ? await this.ctx.state.network(owner.id) : undefined;
    const gateway = network?.ipam.config.find((p) => p.subnet === pool.pool)?.gateway;
    if (!gateway) throw new Errors.InvalidRequest(`pool ${pool.poolId} has no gateway to share`);
    if (address && parsePrefix(`${address}/0`).ip !== parsePrefix(`${gateway}/0`).ip)
      throw new Errors.InvalidRequest(
        `netctl network ${network?.name} has gateway ${gateway}, not ${address}`,
      );
    return `${gateway}/${parsePrefix(pool.pool).prefixLength}`;
  }

  private async findPool(poolId: string): Promise<(Pool & { owner: string }) | undefined> {
    const { ipam } = this.ctx;
    return hasIpamLookup(ipam)
      ? ipam.pool(poolId)
      : (await ipam.listPools()).find((p) => p.poolId === poolId);
  }

  /** The reservation of address in pool poolId, whoever holds it. */
  private async findReservation(poolId: string, address: string): Promise<Reservation | undefined> {
    const { ipam } = this.ctx;
    if (hasIpamLookup(ipam)) return ipam.reservation(poolId, address);
    const ip = parsePrefix(address.includes('/') ? address : `${address}/0`).ip;
    return (await ipam.listReservations(poolId)).find((r) => parsePrefix(r.address).ip === ip);
  }
}
