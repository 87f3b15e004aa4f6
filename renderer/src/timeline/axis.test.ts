import { describe, expect, it } from 'vitest';
import { placeLabels, textWidth } from './labels';
import { ticks } from './timescale';
import { afterUserMove, effectiveView, jumpToNow, type ViewContext } from './view-state';
import { compressIdle, formatDuration, IDENTITY_WARP, idleThreshold } from './warp';

const T = Date.UTC(2026, 10, 23, 8, 0, 0);
const H = 3600_000;

describe('compressing idle time', () => {
  // Three checkpoints an hour apart, then a burst of 30 one second apart, now 2 h later.
  const burst = Array.from({ length: 30 }, (_, i) => T + 3 * H + i * 1000);
  const times = [T, T + H, T + 2 * H, ...burst];
  const now = T + 5 * H;

  it('keeps the burst at its real spacing and shrinks the hours around it', () => {
    const w = compressIdle(times, now);
    expect(idleThreshold([...times, now].sort((a, b) => a - b))).toBe(4000); // 4 × the median gap (1 s)
    // Inside the burst: one second is one second.
    expect(w.toAxis(burst[5]!) - w.toAxis(burst[4]!)).toBeCloseTo(1000, 6);
    // The burst takes a large share of the axis instead of 29 s out of 5 h.
    const total = w.toAxis(now) - w.toAxis(T);
    const share = (w.toAxis(burst[29]!) - w.toAxis(burst[0]!)) / total;
    expect(share).toBeGreaterThan(0.1);
    expect((burst[29]! - burst[0]!) / (now - T)).toBeLessThan(0.002);
    // Longer idle stays longer (order of magnitude), and every break says how long it really was.
    expect(w.breaks).toHaveLength(4);
    const len = (i: number) => w.breaks[i]!.a1 - w.breaks[i]!.a0;
    expect(len(3)).toBeGreaterThan(len(0)); // the 2 h to now vs the 1 h gaps
    expect(formatDuration(w.breaks[3]!.gap)).toBe('2 h');
  });

  it('is monotonic and invertible everywhere', () => {
    const w = compressIdle(times, now);
    let last = -Infinity;
    for (let t = T - H; t <= now + H; t += 97_000) {
      const a = w.toAxis(t);
      expect(a).toBeGreaterThan(last);
      last = a;
      expect(Math.abs(w.toTime(a) - t)).toBeLessThan(0.5);
    }
  });

  it('leaves evenly spaced history alone', () => {
    expect(compressIdle([T, T + 1000, T + 2000], T + 3000)).toBe(IDENTITY_WARP);
  });

  it('puts ticks only on uncompressed stretches, never two on top of each other', () => {
    const w = compressIdle(times, now);
    const view = { t0: w.toAxis(T - 60_000), t1: w.toAxis(now + 60_000) };
    const tk = ticks(view, 1000, 90, w);
    expect(tk.length).toBeGreaterThan(2);
    for (const t of tk) expect(w.breaks.some((b) => t.t > b.t0 && t.t < b.t1)).toBe(false);
    const px = tk.map((t) => ((w.toAxis(t.t) - view.t0) / (view.t1 - view.t0)) * 1000);
    for (let i = 1; i < px.length; i++) expect(px[i]! - px[i - 1]!).toBeGreaterThanOrEqual(54);
  });
});

describe('the view follows NOW unless the user panned away', () => {
  const ctx = (now: number): ViewContext => ({ warp: IDENTITY_WARP, times: [T, T + 60_000], now, plotW: 1000 });

  it('fits everything and NOW by default, and keeps fitting as time passes', () => {
    const v1 = effectiveView({ mode: 'fit' }, ctx(T + 120_000));
    const v2 = effectiveView({ mode: 'fit' }, ctx(T + 600_000));
    for (const v of [v1, v2]) expect(v.t0).toBeLessThan(T);
    expect(v2.t1).toBeGreaterThan(T + 600_000);
  });

  it('after a zoom with NOW on screen: keeps the width and NOW’s place as time passes', () => {
    const zoomed = { t0: T + 60_000, t1: T + 160_000 };
    const state = afterUserMove(zoomed, ctx(T + 140_000));
    expect(state).toEqual({ mode: 'follow', span: 100_000, nowFrac: 0.8 });
    const later = effectiveView(state, ctx(T + 200_000));
    expect(later.t1 - later.t0).toBe(100_000);
    expect((T + 200_000 - later.t0) / 100_000).toBeCloseTo(0.8, 9);
  });

  it('after panning NOW off screen: stays put', () => {
    const away = { t0: T - 100_000, t1: T };
    const state = afterUserMove(away, ctx(T + 140_000));
    expect(state.mode).toBe('free');
    expect(effectiveView(state, ctx(T + 900_000))).toEqual(away);
    const back = jumpToNow(away, 1000);
    expect(back.mode).toBe('follow');
    const v = effectiveView(back, ctx(T + 900_000));
    expect(v.t0).toBeLessThan(T + 900_000);
    expect(v.t1).toBeGreaterThan(T + 900_000);
  });
});

describe('labels never overprint', () => {
  it('places by priority, then left to right, falling back to shorter forms', () => {
    const opt = (text: string) => ({ text, width: textWidth(text) });
    const placed = placeLabels([
      { key: 'a', x: 0, options: [opt('aaaaaaaaaaaaaaaa'), opt('aa')] },
      { key: 'b', x: 30, options: [opt('bbbbbbbbbbbbbbbb'), opt('bb')] },
      { key: 'c', x: 60, options: [opt('cccc')], priority: 1 },
    ], [{ x0: 200, x1: 300 }]);
    expect(placed.get('c')!.text).toBe('cccc');
    expect(placed.get('a')!.text).toBe('aa');
    expect(placed.get('b')!.text).toBe('bb'); // the short form fits between a and c
    const boxes = [...placed.entries()].map(([k, o]) => ({ k, x0: k === 'a' ? 0 : k === 'b' ? 30 : 60, w: o.width }));
    for (const p of boxes) for (const q of boxes) if (p !== q) expect(p.x0 + p.w <= q.x0 || q.x0 + q.w <= p.x0).toBe(true);
  });

  it('leaves out what does not fit, and keeps clear of obstacles (the NOW node and its words)', () => {
    const crowded = placeLabels([{ key: 'a', x: 0, options: [{ text: 'a', width: 50 }] }, { key: 'b', x: 10, options: [{ text: 'b', width: 50 }] }]);
    expect([...crowded.keys()]).toEqual(['a']);
    const placed = placeLabels([{ key: 'x', x: 190, options: [{ text: 'x', width: 20 }] }], [{ x0: 200, x1: 300 }]);
    expect(placed.size).toBe(0);
  });
});
