import { describe, expect, it } from 'vitest';
import { centerOn, fitView, MAX_SPAN_MS, MIN_SPAN_MS, panBy, ticks, timeToX, xToTime, zoomAt } from './timescale';

const W = 1000;

describe('time scale', () => {
  const view = { t0: 1_000_000, t1: 1_100_000 };

  it('maps times to pixels and back', () => {
    expect(timeToX(view, W, 1_000_000)).toBe(0);
    expect(timeToX(view, W, 1_100_000)).toBe(W);
    expect(timeToX(view, W, 1_050_000)).toBe(500);
    expect(xToTime(view, W, 250)).toBe(1_025_000);
  });

  it('zooms around the pointer: the time under it stays under it', () => {
    for (const x of [0, 137, 500, 999]) {
      const before = xToTime(view, W, x);
      const zoomed = zoomAt(view, W, x, 2.5);
      expect(zoomed.t1 - zoomed.t0).toBeCloseTo((view.t1 - view.t0) / 2.5, 6);
      expect(xToTime(zoomed, W, x)).toBeCloseTo(before, 6);
    }
  });

  it('stops zooming at 1 s and at 20 years', () => {
    let v = view;
    for (let i = 0; i < 50; i++) v = zoomAt(v, W, 300, 4);
    expect(v.t1 - v.t0).toBe(MIN_SPAN_MS);
    for (let i = 0; i < 80; i++) v = zoomAt(v, W, 300, 0.25);
    expect(v.t1 - v.t0).toBe(MAX_SPAN_MS);
  });

  it('pans by pixels: dragging right shows earlier times', () => {
    const p = panBy(view, W, 100);
    expect(p.t0).toBe(990_000);
    expect(p.t1).toBe(1_090_000);
    expect(panBy(p, W, -100)).toEqual(view);
  });

  it('fits every time and now, leaving room on the right for the NOW label', () => {
    const times = [5_000_000, 5_600_000, 5_300_000];
    const now = 5_900_000;
    const v = fitView(times, now, W, 40, 280);
    expect(timeToX(v, W, 5_000_000)).toBeCloseTo(40, 6);
    expect(timeToX(v, W, now)).toBeCloseTo(W - 280, 6);
  });

  it('fits a single checkpoint seconds old without making it a dot at the edge', () => {
    const now = 10_000_000;
    const v = fitView([now - 2000], now, W);
    const xs = [timeToX(v, W, now - 2000), timeToX(v, W, now)];
    expect(xs[1]! - xs[0]!).toBeGreaterThan(100);
  });

  it('jumps to now keeping the zoom', () => {
    const c = centerOn(view, 2_000_000, 0.75);
    expect(c.t1 - c.t0).toBe(view.t1 - view.t0);
    expect(timeToX(c, W, 2_000_000)).toBeCloseTo(750, 6);
  });

  it('puts ticks on round steps, at least the asked spacing apart, inside the window', () => {
    const hour = { t0: Date.UTC(2026, 0, 1, 10, 3), t1: Date.UTC(2026, 0, 1, 11, 57) };
    const tk = ticks(hour, W, 90);
    expect(tk.length).toBeGreaterThan(3);
    const step = tk[1]!.t - tk[0]!.t;
    expect([5, 10, 15, 30].map((m) => m * 60_000)).toContain(step);
    expect((step / (hour.t1 - hour.t0)) * W).toBeGreaterThanOrEqual(90);
    for (const t of tk) {
      expect(t.t).toBeGreaterThanOrEqual(hour.t0);
      expect(t.t).toBeLessThanOrEqual(hour.t1);
      expect(new Date(t.t).getSeconds()).toBe(0);
      expect(t.label).toMatch(/^\d\d:\d\d$/);
    }
    expect(ticks({ t0: 5, t1: 5 }, W)).toEqual([]);
  });
});
