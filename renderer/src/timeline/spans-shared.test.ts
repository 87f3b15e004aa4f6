// diskLanes builds a lane once for disks with the same bitmaps and live flags, and folds a lane like
// one it already folded (same bitmaps, times and states) by taking its tracks: the lanes must be what
// each disk gives on its own, whatever the disks share.
import { describe, expect, it } from 'vitest';
import type { BitmapInfo, BitmapLayout, Checkpoint } from '../../../shared/domain';
import { TEMP_BITMAP_PREFIX } from '../model/bitmaps';
import { diskLanes, type LaneInput } from './spans';

function random(seed: number) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

// vda, vdb, vde, vdf, vdg: a bitmap on every checkpoint; vdc, vdd: on some.
const DISKS = ['vda', 'vdb', 'vdc', 'vdd', 'vde', 'vdf', 'vdg'];

function input(seed: number, layout: BitmapLayout): LaneInput & { live: Map<string, BitmapInfo[]> } {
  const rnd = random(seed);
  const n = 5 + Math.floor(rnd() * 40);
  const cps: Checkpoint[] = [];
  for (let i = 0; i < n; i++) {
    const on = DISKS.filter((d) => (d !== 'vdc' && d !== 'vdd') || rnd() < 0.8);
    cps.push({
      name: `c${i}`, parent: i === 0 ? undefined : `c${Math.max(0, i - 1 - Math.floor(rnd() * 3))}`, createdAtMs: 1000 * i + Math.floor(rnd() * 500),
      creationTime: i, layout, disks: on.map((d) => ({ name: d, checkpoint: 'bitmap' as const, bitmap: `c${i}` })),
    });
  }
  // vda, vdb, vde, vdf and vdg share their flags (each its own counts); vdc and vdd have their own states and gaps.
  const alike = (d: string) => d !== 'vdc' && d !== 'vdd';
  const flags = (c: Checkpoint, i: number, d: string): BitmapInfo => {
    const r = alike(d) ? (i * 7919) % 10 / 10 : rnd();
    return { name: c.name, recording: layout === 'independent' || i === n - 1 || r < 0.1, persistent: true, busy: r > 0.9, inconsistent: r > 0.95, count: Math.floor(rnd() * 1e6), granularity: 65536 };
  };
  const live = new Map(DISKS.map((d) => [d, cps.flatMap((c, i) => (c.disks.some((x) => x.name === d) && (d !== 'vdd' || rnd() < 0.9) ? [flags(c, i, d)] : []))]));
  // Now and then another tool's bitmap, or a leftover temporary one, on vdc.
  if (rnd() < 0.5) live.get('vdc')!.push({ ...flags(cps[0]!, 0, 'vdc'), name: 'other-tool' }, { ...flags(cps[0]!, 0, 'vdc'), name: `${TEMP_BITMAP_PREFIX}x` });
  // vde: vda's flags listed in another order; vdf: the same as vdb with some counts unknown;
  // vdg: vdb's flags but one of them flipped, or one bitmap listed twice.
  live.set('vde', [...live.get('vda')!].reverse());
  live.set('vdf', live.get('vdb')!.map((b) => (rnd() < 0.3 ? { name: b.name, recording: b.recording, persistent: true, busy: b.busy, inconsistent: b.inconsistent, granularity: 65536 } : { ...b, count: b.count! + 1 })));
  const g = live.get('vdb')!.map((b) => ({ ...b }));
  const k = Math.floor(rnd() * g.length);
  if (rnd() < 0.5) g[k] = { ...g[k]!, busy: !g[k]!.busy };
  else g.push({ ...g[k]!, recording: !g[k]!.recording, count: 7 });
  live.set('vdg', g);
  const open = new Set(DISKS.filter(() => rnd() < 0.3));
  return { checkpoints: cps, layout, disks: DISKS, live, now: 1e9, maxTracks: 1 + Math.floor(rnd() * 5), keep: [cps[n - 1]!.name, cps[Math.floor(rnd() * n)]!.name], open };
}

const alone = (all: LaneInput) => all.disks.map((d) => diskLanes({ ...all, disks: [d] })[0]);

describe('diskLanes over several disks', () => {
  it('gives every disk the lane it gets on its own (600 random inputs, both layouts)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      for (const layout of ['independent', 'chained'] as const) {
        const all = input(seed, layout);
        const together = diskLanes(all);
        expect(together).toStrictEqual(alone(all));
        for (const lane of together) {
          const named = new Set(all.checkpoints.flatMap((c) => c.disks.filter((d) => d.name === lane.disk).map((d) => d.bitmap)));
          expect(lane.foreign).toEqual(all.live.get(lane.disk)!.map((b) => b.name!).filter((n) => !named.has(n) && !n.startsWith(TEMP_BITMAP_PREFIX)));
        }
        // Each disk's own counts, not the lane's it was copied from.
        const vdf = together.find((l) => l.disk === 'vdf')!;
        const byName = new Map(all.live.get('vdf')!.map((b) => [b.name, b.count]));
        expect(vdf.spans.map((s) => s.count)).toEqual(vdf.spans.map((s) => byName.get(s.bitmap)));
      }
    }
  });

  it('gives every disk the same lane when the VM is not connected (no live bitmaps)', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const { live: _live, ...all } = input(seed, 'chained');
      expect(diskLanes(all)).toStrictEqual(alone(all));
    }
  });

  it('gives each disk objects of its own: changing one lane changes no other (connected or not)', () => {
    const { live, ...unknown } = { ...input(7, 'independent'), open: new Set<string>() };
    for (const all of [{ ...unknown, live }, unknown]) {
      const lanes = diskLanes(all);
      const [vda, vdb] = lanes;
      vda!.spans[0]!.track = 99;
      vda!.foreign.push('x');
      if (vda!.folded) vda!.folded.states.push('unknown');
      expect(vdb!.spans[0]!.track).not.toBe(99);
      expect(vdb!.foreign).not.toContain('x');
      expect(vdb).toStrictEqual(alone(all)[1]);
    }
  });
});
