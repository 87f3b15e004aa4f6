// diskLanes folds a lane like one it already folded (same bitmaps, times and states) by taking its
// tracks: the lanes must be what each disk gives on its own, whatever the disks share.
import { describe, expect, it } from 'vitest';
import type { BitmapInfo, BitmapLayout, Checkpoint } from '../../../shared/domain';
import { TEMP_BITMAP_PREFIX } from '../model/bitmaps';
import { diskLanes } from './spans';

function random(seed: number) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function input(seed: number, layout: BitmapLayout) {
  const rnd = random(seed);
  const disks = ['vda', 'vdb', 'vdc', 'vdd'];
  const n = 5 + Math.floor(rnd() * 40);
  const cps: Checkpoint[] = [];
  for (let i = 0; i < n; i++) {
    const on = disks.filter((d) => d === 'vda' || d === 'vdb' || rnd() < 0.8);
    cps.push({
      name: `c${i}`, parent: i === 0 ? undefined : `c${Math.max(0, i - 1 - Math.floor(rnd() * 3))}`, createdAtMs: 1000 * i + Math.floor(rnd() * 500),
      creationTime: i, layout, disks: on.map((d) => ({ name: d, checkpoint: 'bitmap' as const, bitmap: `c${i}` })),
    });
  }
  // vda and vdb alike; vdc and vdd with their own states and gaps.
  const flags = (c: Checkpoint, i: number, d: string): BitmapInfo => {
    const r = d === 'vda' || d === 'vdb' ? (i * 7919) % 10 / 10 : rnd();
    return { name: c.name, recording: layout === 'independent' || i === n - 1 || r < 0.1, persistent: true, busy: r > 0.9, inconsistent: r > 0.95, count: Math.floor(rnd() * 1e6), granularity: 65536 };
  };
  const live = new Map(disks.map((d) => [d, cps.flatMap((c, i) => (c.disks.some((x) => x.name === d) && (d !== 'vdd' || rnd() < 0.9) ? [flags(c, i, d)] : []))]));
  // Now and then another tool's bitmap, or a leftover temporary one, on vdc.
  if (rnd() < 0.5) live.get('vdc')!.push({ ...flags(cps[0]!, 0, 'vdc'), name: 'other-tool' }, { ...flags(cps[0]!, 0, 'vdc'), name: `${TEMP_BITMAP_PREFIX}x` });
  const open = new Set(disks.filter(() => rnd() < 0.3));
  return { checkpoints: cps, layout, disks, live, now: 1e9, maxTracks: 1 + Math.floor(rnd() * 5), keep: [cps[n - 1]!.name, cps[Math.floor(rnd() * n)]!.name], open };
}

describe('diskLanes over several disks', () => {
  it('gives every disk the lane it gets on its own (600 random inputs, both layouts)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      for (const layout of ['independent', 'chained'] as const) {
        const all = input(seed, layout);
        const together = diskLanes(all);
        const alone = all.disks.map((d) => diskLanes({ ...all, disks: [d] })[0]);
        expect(together).toEqual(alone);
        for (const lane of together) {
          const named = new Set(all.checkpoints.flatMap((c) => c.disks.filter((d) => d.name === lane.disk).map((d) => d.bitmap)));
          expect(lane.foreign).toEqual(all.live.get(lane.disk)!.map((b) => b.name!).filter((n) => !named.has(n) && !n.startsWith(TEMP_BITMAP_PREFIX)));
        }
      }
    }
  });
});
