// The copy's zero check: a piece that reads as zeroes is written as zeroes (copy.ts).
import { describe, expect, it } from 'vitest';
import { isZeroes } from './copy';

describe('isZeroes', () => {
  it('is true only when every byte is zero, wherever the odd byte sits', () => {
    expect(isZeroes(Buffer.alloc(0))).toBe(true);
    expect(isZeroes(Buffer.alloc(200 * 1024))).toBe(true);
    for (const at of [0, 65535, 65536, 200 * 1024 - 1]) {
      const b = Buffer.alloc(200 * 1024);
      b[at] = 1;
      expect(isZeroes(b), `a 1 at ${at}`).toBe(false);
    }
    expect(isZeroes(Buffer.from([0, 0, 0x80]))).toBe(false);
  });
});
