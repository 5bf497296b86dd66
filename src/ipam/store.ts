/**
 * Where the IPAM keeps its state in the KV, and the shape of each record.
 * The allocator (ipam.ts) reads through here and writes through `commit`,
 * one KV transaction per change, so nothing is ever half-written.
 *
 *   netctl/v1/ipam/spaces/<space>                      SpaceRecord: the space's pools (overlap checks)
 *   netctl/v1/ipam/pools/<space>/<subnet>              PoolRecord (subnet with '/' as '_')
 *   netctl/v1/ipam/state/<space>/<subnet>              PoolState: serial cursor + counters
 *   netctl/v1/ipam/blocks/<space>/<subnet>/<index>     BlockRecord: bitmap of BLOCK_SIZE addresses
 *   netctl/v1/ipam/addrs/<space>/<subnet>/<address>    AddressRecord: who holds it
 *   netctl/v1/ipam/owners/<owner>/<space>/<subnet>/<address>  OwnerRecord: index for release/GC by owner
 *
 * The `global` space (overlay networks' pools, one address space for the
 * cluster) has the same layout under netctl/v1/cluster/ipam/ — on a store
 * several hosts share, the rest is the host's own (src/kv/scoped.ts).
 *
 * Every allocation and release rewrites the pool's state record, which
 * makes it the pool's serialization point: a release of the pool that
 * compares it cannot miss an allocation made in between.
 */
import type { Family } from '../address.js';
import { CLUSTER_ROOT } from '../kv/scoped.js';
import type { JsonValue, KvCompare, KvEntry, KvOp, KvStore } from '../kv/store.js';
import { keyPart, storeKey } from '../kv/store.js';

export type SpaceRecord = { pools: { id: string; subnet: string }[] };

export type PoolRecord = {
  id: string;
  space: string;
  subnet: string;
  /** Dynamic allocation is restricted to this sub-range (Docker's --ip-range). */
  ipRange?: string;
  gateway?: string;
  /** Reserved for the pool's lifetime, never handed out (Docker's --aux-address). */
  auxAddresses: Record<string, string>;
  /** Who holds the pool (`net:<id>`), when the caller said. */
  owner?: string;
  createdAt: string;
};

export type PoolState = {
  /** Offset (decimal) where the next dynamic search starts: one past the last dynamic allocation. */
  next: string;
  /** Addresses held by owners (not counting gateway and aux). */
  allocated: number;
  /** Of those, how many lie in the dynamic range. */
  inRange: number;
};

export type BlockRecord = { bits: string; used: number };

export type AddressRecord = { owner: string; allocatedAt: string };

export type OwnerRecord = { poolId: string; address: string };

export interface Versioned<T> {
  value: T;
  version: number;
}

/** Docker's default address spaces: `global` is the cluster's (overlay networks' pools). */
export const LOCAL_SPACE = 'local';
export const GLOBAL_SPACE = 'global';

const ROOT = storeKey('ipam');
const CLUSTER_IPAM = `${CLUSTER_ROOT}/ipam`;

/** The root of a space's keys: the cluster's for the global space. */
const rootOf = (space: string) => (space === GLOBAL_SPACE ? CLUSTER_IPAM : ROOT);
const poolRoot = (poolId: string) => rootOf(poolId.slice(0, poolId.indexOf('/')));

/** "local/10.0.0.0/24" -> "local/10.0.0.0_24": one path level per pool. */
function poolPath(poolId: string): string {
  const slash = poolId.indexOf('/');
  return `${poolId.slice(0, slash)}/${poolId.slice(slash + 1).replace('/', '_')}`;
}

export const ipamKeys = {
  space: (space: string) => `${rootOf(space)}/spaces/${space}`,
  pool: (poolId: string) => `${poolRoot(poolId)}/pools/${poolPath(poolId)}`,
  pools: (space: string) => `${rootOf(space)}/pools/${space}/`,
  state: (poolId: string) => `${poolRoot(poolId)}/state/${poolPath(poolId)}`,
  blocks: (poolId: string) => `${poolRoot(poolId)}/blocks/${poolPath(poolId)}/`,
  /** Fixed-width hex index, so blocks list in address order. */
  block: (poolId: string, family: Family, index: bigint) =>
    `${poolRoot(poolId)}/blocks/${poolPath(poolId)}/${index.toString(16).padStart(family === 4 ? 6 : 30, '0')}`,
  /** One pool's, or every pool's of the spaces under root. */
  addresses: (poolId?: string, root = ROOT) =>
    poolId ? `${poolRoot(poolId)}/addrs/${poolPath(poolId)}/` : `${root}/addrs/`,
  address: (poolId: string, address: string) => `${poolRoot(poolId)}/addrs/${poolPath(poolId)}/${address}`,
  owner: (owner: string, root = ROOT) => `${root}/owners/${keyPart(owner)}/`,
  ownerAddress: (owner: string, poolId: string, address: string) =>
    `${poolRoot(poolId)}/owners/${keyPart(owner)}/${poolPath(poolId)}/${address}`,
  /** Both roots: this host's spaces and the cluster's. */
  roots: [ROOT, CLUSTER_IPAM],
};

function typed<T>(entry: KvEntry | undefined): Versioned<T> | undefined {
  return entry && { value: entry.value as unknown as T, version: entry.version };
}

/** Our records are plain JSON objects; optional fields are omitted, never undefined. */
export function json(record: object): JsonValue {
  return record as unknown as JsonValue;
}

export class IpamStore {
  constructor(readonly kv: KvStore) {}

  async space(space: string): Promise<Versioned<SpaceRecord> | undefined> {
    return typed(await this.kv.get(ipamKeys.space(space)));
  }

  async pool(poolId: string): Promise<Versioned<PoolRecord> | undefined> {
    return typed(await this.kv.get(ipamKeys.pool(poolId)));
  }

  async pools(space: string): Promise<Versioned<PoolRecord>[]> {
    return (await this.kv.list(ipamKeys.pools(space))).map((e) => typed<PoolRecord>(e)!);
  }

  async state(poolId: string): Promise<Versioned<PoolState> | undefined> {
    return typed(await this.kv.get(ipamKeys.state(poolId)));
  }

  async block(poolId: string, family: Family, index: bigint): Promise<Versioned<BlockRecord> | undefined> {
    return typed(await this.kv.get(ipamKeys.block(poolId, family, index)));
  }

  /** Every written block of the pool, by index. */
  async blocks(poolId: string): Promise<Map<bigint, Versioned<BlockRecord>>> {
    const prefix = ipamKeys.blocks(poolId);
    const out = new Map<bigint, Versioned<BlockRecord>>();
    for (const entry of await this.kv.list(prefix)) {
      out.set(BigInt(`0x${entry.key.slice(prefix.length)}`), typed<BlockRecord>(entry)!);
    }
    return out;
  }

  async address(poolId: string, address: string): Promise<Versioned<AddressRecord> | undefined> {
    return typed(await this.kv.get(ipamKeys.address(poolId, address)));
  }

  /** Address records of one pool (or of all pools); pool and address come from the key. */
  async addresses(
    poolId?: string,
  ): Promise<{ key: string; poolId: string; address: string; record: Versioned<AddressRecord> }[]> {
    const prefixes = poolId
      ? [ipamKeys.addresses(poolId)]
      : ipamKeys.roots.map((r) => ipamKeys.addresses(undefined, r));
    const entries = (await Promise.all(prefixes.map((p) => this.kv.list(p)))).flat();
    return entries.map((e) => {
      const rest = e.key.slice(e.key.indexOf('/addrs/') + '/addrs/'.length);
      const [space, subnet, address] = rest.split('/') as [string, string, string];
      return {
        key: e.key,
        poolId: `${space}/${subnet.replace('_', '/')}`,
        address,
        record: typed<AddressRecord>(e)!,
      };
    });
  }

  async ownerAddresses(owner: string): Promise<Versioned<OwnerRecord>[]> {
    const lists = await Promise.all(ipamKeys.roots.map((r) => this.kv.list(ipamKeys.owner(owner, r))));
    return lists.flat().map((e) => typed<OwnerRecord>(e)!);
  }

  async commit(compare: KvCompare[], ops: KvOp[]): Promise<void> {
    await this.kv.txn(compare, ops);
  }
}
