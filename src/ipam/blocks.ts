/**
 * A pool's allocation bitmaps as the store holds them: one block record per
 * BLOCK_SIZE consecutive offsets of the subnet (bitmap.ts), read one at a
 * time, so an allocation costs O(1) whatever the pool's size. A block never
 * written is all free.
 */
import type { KvOp } from '../kv/store.js';
import { Bitmap, BLOCK_SIZE } from './bitmap.js';
import type { PoolView } from './pool.js';
import { type BlockRecord, type IpamStore, ipamKeys, json, type Versioned } from './store.js';

const B = BigInt(BLOCK_SIZE);

/** A block as read, with the version its write must compare (0: never written). */
export interface Block {
  bitmap: Bitmap;
  version: number;
}

/** A free offset and the block that holds it. */
export interface Candidate {
  offset: bigint;
  index: bigint;
  block: Block;
}

/** The block that holds offset. */
export function blockIndex(offset: bigint): bigint {
  return offset / B;
}

/** Offset's bit in its block. */
export function bitOf(offset: bigint): number {
  return Number(offset % B);
}

function decoded(entry: Versioned<BlockRecord> | undefined): Block {
  return entry
    ? { bitmap: Bitmap.decode(entry.value.bits), version: entry.version }
    : { bitmap: Bitmap.empty(), version: 0 };
}

export async function readBlock(store: IpamStore, view: PoolView, index: bigint): Promise<Block> {
  return decoded(await store.block(view.record.id, view.subnet.family, index));
}

/** The key of a pool's block, for a transaction's compare. */
export function blockKey(view: PoolView, index: bigint): string {
  return ipamKeys.block(view.record.id, view.subnet.family, index);
}

/** The write of one block's bitmap. */
export function putBlock(view: PoolView, index: bigint, bitmap: Bitmap): KvOp {
  const record: BlockRecord = { bits: bitmap.encode(), used: bitmap.used };
  return { type: 'put', key: blockKey(view, index), value: json(record) };
}

/** The blocks of a new pool: its own reservations (gateway, aux addresses) set. */
export function reservedBlocks(view: PoolView): Map<bigint, Bitmap> {
  const blocks = new Map<bigint, Bitmap>();
  for (const offset of view.reserved.keys()) {
    const index = blockIndex(offset);
    const bitmap = blocks.get(index) ?? Bitmap.empty();
    bitmap.set(bitOf(offset));
    blocks.set(index, bitmap);
  }
  return blocks;
}

/**
 * First free offset at or after `next` in [lo, hi], wrapping round to lo.
 * Reads one block at a time; after a run of full blocks (a range that has
 * wrapped and is nearly full) it lists all written blocks in one call.
 */
export async function findFree(
  store: IpamStore,
  view: PoolView,
  next: bigint,
): Promise<Candidate | undefined> {
  const start = next >= view.lo && next <= view.hi ? next : view.lo;
  let listed: Map<bigint, Versioned<BlockRecord>> | undefined;
  let fullRun = 0;
  const segments: [bigint, bigint][] = [[start, view.hi]];
  if (start > view.lo) segments.push([view.lo, start - 1n]);
  for (const [from, to] of segments) {
    let pos = from;
    while (pos <= to) {
      const index = blockIndex(pos);
      const blockStart = index * B;
      const block = listed ? decoded(listed.get(index)) : await readBlock(store, view, index);
      const last = blockStart + B - 1n < to ? blockStart + B - 1n : to;
      const bit = block.bitmap.findClear(Number(pos - blockStart), Number(last - blockStart));
      if (bit >= 0) return { offset: blockStart + BigInt(bit), index, block };
      pos = blockStart + B;
      if (!listed && ++fullRun >= 4) listed = await store.blocks(view.record.id);
    }
  }
  return undefined;
}
