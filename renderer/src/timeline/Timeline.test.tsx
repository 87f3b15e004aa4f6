// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BitmapInfo } from '../../../shared/domain';
import { checkpoint, disk, MiB } from '../test/fake-api';
import { recordCounts, type DiskHistory } from '../model/samples';
import { changedFigure } from '../model/figures';
import { moveFocus } from './tree-nav';
import { layoutTree } from './lanes';
import { SETTLE_MS, Timeline, type TimelineProps } from './Timeline';

afterEach(cleanup);

const T = Date.UTC(2026, 10, 23, 10, 0, 0);
// a ── b ── d
//  └── c
const cps = [
  checkpoint('a', undefined, T, ['vda']),
  checkpoint('b', 'a', T + 60_000, ['vda']),
  checkpoint('c', 'a', T + 120_000, ['vda']),
  checkpoint('d', 'b', T + 180_000, ['vda']),
];
const bm = (name: string, count = 0): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 });

function renderTimeline(over: Partial<TimelineProps> = {}) {
  const onSelect = vi.fn();
  const onOpen = vi.fn();
  const props: TimelineProps = {
    vmLabel: 'Demo VM', checkpoints: cps, current: 'd', disks: [disk('vda'), disk('vdc', { bitmapCapable: false, bitmapIncapableReason: 'qcow2 v2 (compat 0.10)' })],
    live: { vda: [bm('a', 3 * MiB), bm('b', 2 * MiB), bm('c', MiB), bm('d', 5 * MiB)], vdc: [] },
    samples: {}, issues: [], backups: [], now: T + 240_000, onSelect, onOpen, ...over,
  };
  const utils = render(<Timeline {...props} />);
  return { ...utils, onSelect, onOpen, props };
}

function historyOf(events: [number, Record<string, number>][]): DiskHistory {
  const h: DiskHistory = new Map();
  for (const [at, counts] of events) recordCounts(h, at, new Map(Object.entries(counts)));
  return h;
}

const focusedName = () => (document.activeElement as Element | null)?.getAttribute('data-name');

describe('tree keyboard navigation (pure)', () => {
  const layout = layoutTree(cps.map((c) => ({ name: c.name, parent: c.parent, time: c.createdAtMs })), 'd');
  it('moves through visible order, to parent and first child, and to the ends', () => {
    expect(moveFocus(layout, 'a', 'ArrowDown')).toBe('b');
    expect(moveFocus(layout, 'b', 'ArrowDown')).toBe('d');
    expect(moveFocus(layout, 'd', 'ArrowDown')).toBe('c');
    expect(moveFocus(layout, 'c', 'ArrowDown')).toBe('c');
    expect(moveFocus(layout, 'c', 'ArrowUp')).toBe('d');
    expect(moveFocus(layout, 'a', 'ArrowUp')).toBe('a');
    expect(moveFocus(layout, 'a', 'ArrowRight')).toBe('b');
    expect(moveFocus(layout, 'd', 'ArrowRight')).toBe('d');
    expect(moveFocus(layout, 'c', 'ArrowLeft')).toBe('a');
    expect(moveFocus(layout, 'a', 'ArrowLeft')).toBe('a');
    expect(moveFocus(layout, 'd', 'Home')).toBe('a');
    expect(moveFocus(layout, 'a', 'End')).toBe('c');
    expect(moveFocus(layout, undefined, 'ArrowDown')).toBe('a');
  });
});

describe('<Timeline> tree', () => {
  it('is a role=tree of treeitems named by checkpoint, with levels and positions', () => {
    renderTimeline();
    const tree = screen.getByRole('tree', { name: 'Checkpoints of Demo VM' });
    const items = within(tree).getAllByRole('treeitem');
    expect(items.map((i) => i.getAttribute('data-name'))).toEqual(['a', 'b', 'd', 'c']);
    const c = items[3]!;
    expect(c.getAttribute('aria-label')).toMatch(/^c, created 2026-11-23 \d\d:02:00/);
    expect([c.getAttribute('aria-level'), c.getAttribute('aria-posinset'), c.getAttribute('aria-setsize')]).toEqual(['2', '2', '2']);
    expect(items[2]!.getAttribute('aria-label')).toContain('current checkpoint');
    expect(items[0]!.getAttribute('aria-expanded')).toBe('true');
  });

  it('has one tab stop (roving tabindex), on the current checkpoint by default', () => {
    renderTimeline();
    const stops = screen.getAllByRole('treeitem').filter((i) => i.getAttribute('tabindex') === '0');
    expect(stops.map((s) => s.getAttribute('data-name'))).toEqual(['d']);
  });

  it('moves focus and selection with the arrow keys, and the tab stop follows', () => {
    const { onSelect } = renderTimeline();
    const d = screen.getAllByRole('treeitem').find((i) => i.getAttribute('data-name') === 'd')!;
    act(() => (d as unknown as HTMLElement).focus());
    expect(focusedName()).toBe('d');
    fireEvent.keyDown(d, { key: 'ArrowLeft' });
    expect(focusedName()).toBe('b');
    fireEvent.keyDown(document.activeElement!, { key: 'ArrowLeft' });
    expect(focusedName()).toBe('a');
    fireEvent.keyDown(document.activeElement!, { key: 'End' });
    expect(focusedName()).toBe('c');
    fireEvent.keyDown(document.activeElement!, { key: 'ArrowUp' });
    expect(focusedName()).toBe('d');
    expect(onSelect.mock.calls.map((c) => c[0])).toEqual(['b', 'a', 'c', 'd']);
    const stops = screen.getAllByRole('treeitem').filter((i) => i.getAttribute('tabindex') === '0');
    expect(stops.map((s) => s.getAttribute('data-name'))).toEqual(['d']);
  });

  it('opens details on Enter and never does anything else', () => {
    const { onOpen, onSelect } = renderTimeline();
    const b = screen.getAllByRole('treeitem').find((i) => i.getAttribute('data-name') === 'b')!;
    act(() => (b as unknown as HTMLElement).focus());
    fireEvent.keyDown(b, { key: 'Enter' });
    expect(onOpen).toHaveBeenCalledWith('b');
    expect(onSelect).not.toHaveBeenCalled();
    fireEvent.keyDown(b, { key: 'Delete' });
    expect(onOpen).toHaveBeenCalledTimes(1);
  });

  it('shows NOW with what changed since the current checkpoint', () => {
    renderTimeline();
    expect(screen.getByRole('img', { name: 'Now: 5.0 MiB changed since d' })).toBeTruthy();
  });
});

describe('<Timeline> disk bands', () => {
  it('draws one span per bitmap with its state in words, and explains a disk without bitmaps', () => {
    const { container } = renderTimeline({
      live: { vda: [bm('a', MiB), { ...bm('b'), inconsistent: true, recording: false }, { ...bm('c'), busy: true }], vdc: [] },
    });
    const vda = container.querySelector('[data-disk="vda"]')!;
    const states = [...vda.querySelectorAll('.span')].map((s) => [s.getAttribute('data-checkpoint'), s.getAttribute('data-state')]);
    expect(states).toEqual([['a', 'recording'], ['b', 'inconsistent'], ['c', 'busy']]);
    expect(vda.querySelector('[data-checkpoint="b"] title')!.textContent).toContain('unusable — next backup of vda will be full');
    // d's bitmap is not in QEMU: a missing marker, with words.
    expect(vda.querySelector('.missing-mark[data-checkpoint="d"] title')!.textContent).toContain('bitmap d of checkpoint d is missing');
    const vdc = container.querySelector('[data-disk="vdc"]')!;
    expect(vdc.textContent).toContain('vdc cannot hold persistent bitmaps: qcow2 v2 (compat 0.10)');
  });

  it('draws the baseline dirty area from live samples and labels it "X of Y"', () => {
    const { container } = renderTimeline({
      selected: 'd',
      samples: { vda: historyOf([[T + 200_000, { d: 2 * MiB }], [T + 230_000, { d: 5 * MiB }]]) },
      figures: { vda: changedFigure({ bitmaps: ['d'], live: [bm('d', 5 * MiB)], measured: [] }) },
    });
    const vda = container.querySelector('[data-disk="vda"]')!;
    expect(vda.querySelector('.area-fill')).not.toBeNull();
    expect(vda.querySelector('.area-end')!.textContent).toBe('5.0 MiB of 1.0 GiB (0.5%)');
    expect(vda.querySelector('.area-end-g title')!.textContent).toBe('bitmap d (live count)');
    expect(vda.querySelector('.area-scale')!.textContent).toBe('changed since d · scale 8.0 MiB');
  });

  describe('while the view moves (fake timers)', () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it('draws no labels while the view moves, and brings them back when it settles', () => {
      const { container } = renderTimeline();
      const labels = () => container.querySelectorAll('.node-label').length;
      expect(labels()).toBeGreaterThan(0);
      fireEvent.click(screen.getByRole('button', { name: 'Zoom in' }));
      expect(container.querySelector('svg.timeline-svg')!.getAttribute('data-draft')).toBe('true');
      expect(labels()).toBe(0);
      act(() => vi.advanceTimersByTime(SETTLE_MS + 1));
      expect(container.querySelector('svg.timeline-svg')!.hasAttribute('data-draft')).toBe(false);
      expect(labels()).toBeGreaterThan(0);
    });

    it('moves the plot by one transform while the wheel zooms, and renders the view when it settles', () => {
      const { container } = renderTimeline();
      const svg = container.querySelector('svg.timeline-svg')!;
      const plot = svg.querySelector('g.timeline-plot')!;
      const span0 = Number(svg.getAttribute('data-span-ms'));
      const circles0 = svg.querySelectorAll('circle').length;
      fireEvent.wheel(svg, { deltaY: -240, clientX: 400, clientY: 60 });
      act(() => vi.advanceTimersByTime(20)); // the next animation frame
      const live = Number(plot.getAttribute('data-live-span-ms'));
      expect(live).toBeLessThan(span0 * 0.8);
      expect(plot.getAttribute('transform')).toMatch(/^translate\(-?[\d.e-]+,0\) scale\([\d.]+,1\)$/);
      expect(Number(svg.getAttribute('data-span-ms'))).toBe(span0); // not rendered yet
      expect(svg.getAttribute('data-draft')).toBe('true');
      act(() => vi.advanceTimersByTime(SETTLE_MS + 1));
      expect(Number(svg.getAttribute('data-span-ms'))).toBeCloseTo(live, -1);
      expect(plot.hasAttribute('transform')).toBe(false);
      expect(plot.hasAttribute('data-live-span-ms')).toBe(false);
      expect(svg.hasAttribute('data-draft')).toBe(false);
      expect(svg.querySelectorAll('circle').length).toBeGreaterThan(0);
      expect(circles0).toBeGreaterThan(0);
    });

    it('draws a long wheel zoom again on the way, so the plot is never stretched more than 2×', () => {
      const { container } = renderTimeline();
      const svg = container.querySelector('svg.timeline-svg')!;
      const plot = svg.querySelector('g.timeline-plot')!;
      const span0 = Number(svg.getAttribute('data-span-ms'));
      fireEvent.wheel(svg, { deltaY: -1200, clientX: 400, clientY: 60 }); // ×6
      act(() => vi.advanceTimersByTime(20));
      const live = Number(plot.getAttribute('data-live-span-ms'));
      expect(live).toBeLessThan(span0 / 4);
      expect(Number(svg.getAttribute('data-span-ms'))).toBeCloseTo(live, -1); // rendered already
      expect(plot.getAttribute('transform')).toBe('translate(0,0)');
      expect(svg.getAttribute('data-draft')).toBe('true');
      expect(container.querySelectorAll('.node-label').length).toBe(0);
    });

    it('a button press during a wheel gesture moves on from where the gesture left the view', () => {
      const { container } = renderTimeline();
      const svg = container.querySelector('svg.timeline-svg')!;
      const plot = svg.querySelector('g.timeline-plot')!;
      fireEvent.wheel(svg, { deltaY: -240, clientX: 400, clientY: 60 });
      act(() => vi.advanceTimersByTime(20));
      const live = Number(plot.getAttribute('data-live-span-ms'));
      fireEvent.click(screen.getByRole('button', { name: 'Zoom in' }));
      expect(plot.hasAttribute('transform')).toBe(false);
      expect(Number(svg.getAttribute('data-span-ms')) / live).toBeCloseTo(1 / 1.6, 2);
      act(() => vi.advanceTimersByTime(SETTLE_MS + 1));
      expect(Number(svg.getAttribute('data-span-ms')) / live).toBeCloseTo(1 / 1.6, 2);
    });
  });

  it('zooms with the buttons and returns to the fitted view', () => {
    const { container } = renderTimeline();
    const svg = container.querySelector('svg.timeline-svg')!;
    const span0 = Number(svg.getAttribute('data-span-ms'));
    fireEvent.click(screen.getByRole('button', { name: 'Zoom in' }));
    const span1 = Number(svg.getAttribute('data-span-ms'));
    expect(span1).toBeLessThan(span0);
    expect(span1 / span0).toBeCloseTo(1 / 1.6, 2);
    expect(screen.getByRole('button', { name: 'Fit all' }).getAttribute('aria-pressed')).toBe('false');
    fireEvent.click(screen.getByRole('button', { name: 'Fit all' }));
    expect(Number(svg.getAttribute('data-span-ms'))).toBe(span0);
  });
});
