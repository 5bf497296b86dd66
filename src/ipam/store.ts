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
 * Every allocation and release rewrites the pool's state record, which
 * makes it the pool's serialization point: a release of the pool that
 * compares it cannot miss an allocation made in between.
 */
import type { Family } from '../address.js';
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

const ROOT = storeKey('ipam');

/** "local/10.0.0.0/24" -> "local/10.0.0.0_24": one path level per pool. */
function poolPath(poolId: string): string {
  const slash = poolId.indexOf('/');
  return `${poolId.slice(0, slash)}/${poolId.slice(slash + 1).replace('/', '_')}`;
}

export const ipamKeys = {
  space: (space: string) => `${ROOT}/spaces/${space}`,
  pool: (poolId: string) => `${ROOT}/pools/${poolPath(poolId)}`,
  pools: (space: string) => `${ROOT}/pools/${space}/`,
  state: (poolId: string) => `${ROOT}/state/${poolPath(poolId)}`,
  blocks: (poolId: string) => `${ROOT}/blocks/${poolPath(poolId)}/`,
  /** Fixed-width hex index, so blocks list in address order. */
  block: (poolId: string, family: Family, index: bigint) =>
    `${ROOT}/blocks/${poolPath(poolId)}/${index.toString(16).padStart(family === 4 ? 6 : 30, '0')}`,
  addresses: (poolId?: string) => (poolId ? `${ROOT}/addrs/${poolPath(poolId)}/` : `${ROOT}/addrs/`),
  address: (poolId: string, address: string) => `${ROOT}/addrs/${poolPath(poolId)}/${address}`,
  owner: (owner: string) => `${ROOT}/owners/${keyPart(owner)}/`,
  ownerAddress: (owner: string, poolId: string, address: string) =>
    `${ROOT}/owners/${keyPart(owner)}/${poolPath(poolId)}/${address}`,
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
    const root = ipamKeys.addresses();
    return (await this.kv.list(ipamKeys.addresses(poolId))).map((e) => {
      const [space, subnet, address] = e.key.slice(root.length).split('/') as [string, string, string];
      return {
        key: e.key,
        poolId: `${space}/${subnet.replace('_', '/')}`,
        address,
        record: typed<AddressRecord>(e)!,
      };
    });
  }

  async ownerAddresses(owner: string): Promise<Versioned<OwnerRecord>[]> {
    return (await this.kv.list(ipamKeys.owner(owner))).map((e) => typed<OwnerRecord>(e)!);
  }

  async commit(compare: KvCompare[], ops: KvOp[]): Promise<void> {
    await this.kv.txn(compare, ops);
  }
}
