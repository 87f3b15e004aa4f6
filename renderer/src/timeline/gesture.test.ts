import { describe, expect, it } from 'vitest';
import { gestureTransform, transformAttr } from './gesture';
import { panBy, zoomAt, type TimeView } from './timescale';

const W = 800;
const px = (v: TimeView, t: number) => ((t - v.t0) / (v.t1 - v.t0)) * W;

describe('gestureTransform', () => {
  const drawn: TimeView = { t0: 1_000, t1: 9_000 };
  it('maps what was drawn for one window onto a zoomed and panned one exactly', () => {
    const target = panBy(zoomAt(drawn, W, 300, 2.5), W, -120);
    const { k, tx } = gestureTransform(drawn, target, W);
    for (const t of [0, 1_000, 4_321, 9_000, 20_000]) expect(k * px(drawn, t) + tx).toBeCloseTo(px(target, t), 6);
  });
  it('is a translation only for a pan', () => {
    const m = gestureTransform(drawn, panBy(drawn, W, 50), W);
    expect(m.k).toBe(1);
    expect(m.tx).toBeCloseTo(50, 9);
    expect(transformAttr(m)).toMatch(/^translate\([\d.]+,0\)$/);
    expect(transformAttr({ k: 2, tx: -3 })).toBe('translate(-3,0) scale(2,1)');
  });
});
