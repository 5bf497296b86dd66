import { describe, expect, it } from 'vitest';
import { Bitmap, BLOCK_SIZE } from '../../../src/ipam/bitmap.js';

describe('Bitmap', () => {
  it('sets, clears, counts and finds clear bits, round-tripping through base64', () => {
    const b = Bitmap.empty();
    for (let i = 0; i < 20; i++) b.set(i);
    b.set(19);
    expect(b.used).toBe(20);
    expect(b.findClear(0, BLOCK_SIZE - 1)).toBe(20);
    b.clear(5);
    expect(b.findClear(0, BLOCK_SIZE - 1)).toBe(5);
    expect(b.findClear(6, 19)).toBe(-1);
    const copy = Bitmap.decode(b.encode());
    expect(copy.used).toBe(19);
    expect(copy.has(5)).toBe(false);
    expect(copy.has(19)).toBe(true);
    for (let i = 0; i < BLOCK_SIZE; i++) copy.set(i);
    expect(copy.findClear(0, BLOCK_SIZE - 1)).toBe(-1);
    expect(() => Bitmap.decode('AAAA')).toThrow(/corrupt/);
  });
});
