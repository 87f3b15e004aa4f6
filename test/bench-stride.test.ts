// bench/peers/machines.ts: where the side-by-side bench puts the 1 TiB disk's changes (BENCH_VDC_STRIDE).
import { describe, expect, it } from 'vitest';
import { DIRTY_BYTES, DIRTY_WRITES, SIZES, vdcOffset, vdcStride, vdcStrideTitle } from '../bench/peers/machines';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('the 1 TiB disk\'s stride', () => {
  it('is 4 GiB unless asked otherwise, and takes any multiple of 1 MiB from 4 MiB up to a 256th of the disk', () => {
    expect(vdcStride(undefined)).toBe(4 * GiB);
    expect(vdcStride('')).toBe(4 * GiB);
    expect(vdcStride(String(4 * MiB))).toBe(4 * MiB);
    expect(vdcStride(String(512 * MiB))).toBe(512 * MiB);
    expect(vdcStride(String(SIZES.vdc! / DIRTY_WRITES))).toBe(4 * GiB);
  });

  it('refuses a stride that is not whole MiB, too small, too large for 256 changes, or not a number', () => {
    for (const bad of ['5000', String(2 * MiB), String(8 * GiB), String(4 * MiB + 1), '4MiB', '-4194304']) {
      expect(() => vdcStride(bad), bad).toThrow(/BENCH_VDC_STRIDE must be a multiple of 1 MiB/);
    }
  });

  it('puts every change inside the disk, in its own L2 table from 512 MiB up, where vda has them at 4 MiB', () => {
    for (const stride of [4 * MiB, 512 * MiB, 4 * GiB]) {
      const offsets = Array.from({ length: DIRTY_WRITES }, (_, k) => vdcOffset(stride, k));
      expect(offsets[DIRTY_WRITES - 1]! + DIRTY_BYTES).toBeLessThanOrEqual(SIZES.vdc!);
      const tables = new Set(offsets.map((o) => Math.floor(o / (512 * MiB))));
      expect(tables.size).toBe(stride >= 512 * MiB ? DIRTY_WRITES : 2);
    }
    expect(vdcOffset(4 * MiB, 7)).toBe(7 * 4 * MiB);
  });

  it('is named in the 1 TiB rows\' titles only where it is not the default, in the words the goals read', () => {
    expect(vdcStrideTitle(4 * GiB)).toBe('');
    expect(vdcStrideTitle(4 * MiB)).toBe(', 4 MiB apart');
    expect(vdcStrideTitle(512 * MiB)).toBe(', 512 MiB apart');
  });
});
