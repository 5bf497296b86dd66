/**
 * Allocation bitmaps, one per block of BLOCK_SIZE consecutive addresses of a
 * pool (libnetwork's bitseq, cut into fixed blocks). A block is one KV value
 * of ~200 bytes, so an allocation reads and writes O(1) data however large
 * the pool; blocks that were never written are all free, which keeps IPv6
 * pools sparse.
 */

export const BLOCK_SIZE = 1024;
const BLOCK_BYTES = BLOCK_SIZE / 8;

export class Bitmap {
  private constructor(
    private readonly bytes: Uint8Array,
    /** Set bits. */
    public used: number,
  ) {}

  static empty(): Bitmap {
    return new Bitmap(new Uint8Array(BLOCK_BYTES), 0);
  }

  static decode(base64: string): Bitmap {
    const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
    if (bytes.length !== BLOCK_BYTES)
      throw new Error(`corrupt IPAM block: ${bytes.length} bytes, expected ${BLOCK_BYTES}`);
    let used = 0;
    for (const byte of bytes) used += popcount(byte);
    return new Bitmap(bytes, used);
  }

  encode(): string {
    return Buffer.from(this.bytes).toString('base64');
  }

  has(bit: number): boolean {
    return (this.bytes[bit >> 3]! & (1 << (bit & 7))) !== 0;
  }

  set(bit: number): void {
    if (this.has(bit)) return;
    this.bytes[bit >> 3]! |= 1 << (bit & 7);
    this.used++;
  }

  clear(bit: number): void {
    if (!this.has(bit)) return;
    this.bytes[bit >> 3]! &= ~(1 << (bit & 7));
    this.used--;
  }

  /** First clear bit in [from, to] (inclusive), or -1. Skips full bytes eight bits at a time. */
  findClear(from: number, to: number): number {
    let bit = from;
    while (bit <= to) {
      if ((bit & 7) === 0 && this.bytes[bit >> 3] === 0xff) {
        bit += 8;
        continue;
      }
      if (!this.has(bit)) return bit;
      bit++;
    }
    return -1;
  }
}

function popcount(byte: number): number {
  let n = 0;
  for (let b = byte; b; b &= b - 1) n++;
  return n;
}
