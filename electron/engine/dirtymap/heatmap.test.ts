import { describe, expect, it } from 'vitest';
import type { DiskInfo } from '../../../shared/domain';
import type { QmpAction } from '../checkpoints/api';
import { keepSourceGranularity } from './dirtymap';
import { bucketize, dirtyBytes, toDirtyExtents } from './heatmap';

const KiB = 1024;

describe('toDirtyExtents', () => {
  it('reads bit 0 as dirty, ignores other bits, and merges neighbours', () => {
    expect(toDirtyExtents([
      { offset: 0, length: 10, flags: 0 },
      { offset: 10, length: 5, flags: 1 },
      { offset: 15, length: 5, flags: 3 },
      { offset: 20, length: 4, flags: 2 },
    ])).toEqual([{ offset: 0, length: 10, dirty: false }, { offset: 10, length: 10, dirty: true }, { offset: 20, length: 4, dirty: false }]);
  });
});

describe('bucketize', () => {
  it('gives the dirty fraction per equal region, splitting extents across boundaries', () => {
    const ext = [{ offset: 0, length: 150, dirty: true }, { offset: 150, length: 250, dirty: false }, { offset: 400, length: 50, dirty: true }];
    const { buckets, bucketBytes } = bucketize(ext, 400 + 50 + 150, 6);
    expect(bucketBytes).toBe(100);
    expect(buckets).toEqual([1, 0.5, 0, 0, 0.5, 0]);
    expect(dirtyBytes(ext)).toBe(200);
  });

  it('measures the short last region against its own size', () => {
    const { buckets, bucketBytes } = bucketize([{ offset: 0, length: 7, dirty: false }, { offset: 7, length: 3, dirty: true }], 10, 4);
    expect(bucketBytes).toBe(3);
    // regions [0,3) [3,6) [6,9) [9,10): the last one is a single byte, fully dirty
    expect(buckets).toEqual([0, 0, 2 / 3, 1]);
  });

  it('keeps the total: sum of fraction × region size equals the dirty bytes', () => {
    const size = 1_000_003;
    const ext = [];
    let pos = 0;
    let dirty = false;
    for (let i = 1; pos < size; i++) {
      const len = Math.min(size - pos, (i * 7919) % 50_000 + 1);
      ext.push({ offset: pos, length: len, dirty });
      dirty = !dirty;
      pos += len;
    }
    const { buckets, bucketBytes } = bucketize(ext, size, 256);
    const total = buckets.reduce((s, f, b) => s + f * Math.min(bucketBytes, size - b * bucketBytes), 0);
    expect(Math.round(total)).toBe(dirtyBytes(ext));
    expect(buckets.every((f) => f >= 0 && f <= 1)).toBe(true);
  });

  it('has more regions than bytes without dividing by zero', () => {
    expect(bucketize([{ offset: 0, length: 2, dirty: true }], 2, 4).buckets).toEqual([1, 1, 0, 0]);
    expect(bucketize([], 0, 3).buckets).toEqual([0, 0, 0]);
  });

  it('names a bad bucket count', () => {
    expect(() => bucketize([], 10, 0)).toThrow(/bucket count must be a positive integer, got 0/);
    expect(() => bucketize([], 10, 1.5)).toThrow(/got 1.5/);
  });
});

describe('keepSourceGranularity', () => {
  const disk = {
    name: 'vda', nodeName: 'vda-fmt', granularity: 64 * KiB,
    bitmaps: [
      { name: 'c1', granularity: 4 * KiB, recording: false, persistent: true, busy: false, inconsistent: false, count: 0 },
      { name: 'c2', granularity: 16 * KiB, recording: true, persistent: true, busy: false, inconsistent: false, count: 0 },
    ],
  } as unknown as DiskInfo;

  it('gives the temporary bitmap the finest granularity of the bitmaps merged into it', () => {
    const { actions, granularity } = keepSourceGranularity([
      { type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: 'tidemark-tmp-x', persistent: false, disabled: true } },
      { type: 'block-dirty-bitmap-merge', data: { node: 'vda-fmt', target: 'tidemark-tmp-x', bitmaps: ['c1', 'c2'] } },
    ], disk);
    expect(granularity).toBe(4 * KiB);
    expect(actions[0]).toEqual({ type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: 'tidemark-tmp-x', persistent: false, disabled: true, granularity: 4 * KiB } });
    expect(actions[1]!.type).toBe('block-dirty-bitmap-merge');
  });

  it('reads coarser where the caller asks for a coarser granularity, never finer than the sources', () => {
    const actions: QmpAction[] = [
      { type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: 't', persistent: false, disabled: true } },
      { type: 'block-dirty-bitmap-merge', data: { node: 'vda-fmt', target: 't', bitmaps: ['c2'] } },
    ];
    const coarse = keepSourceGranularity(actions, disk, 512 * 1024 * KiB);
    expect(coarse.granularity).toBe(512 * 1024 * KiB);
    expect(coarse.actions[0]!.data.granularity).toBe(512 * 1024 * KiB);
    expect(keepSourceGranularity(actions, disk, 4 * KiB).granularity).toBe(16 * KiB);
    for (const bad of [3 * KiB, 256, 4 * 1024 * 1024 * KiB, Number.NaN]) {
      expect(() => keepSourceGranularity(actions, disk, bad)).toThrow(/power of two from 512 bytes to 2 GiB/);
    }
  });

  it("falls back to the disk's default when the sources are unknown", () => {
    const { granularity } = keepSourceGranularity([{ type: 'block-dirty-bitmap-add', data: { name: 't' } }], disk);
    expect(granularity).toBe(64 * KiB);
  });
});
