// @vitest-environment jsdom
// With a box hint (its place's size, measured while the data loaded) the timeline's first render
// draws the SVG at the hinted width and only the bands near the hinted view, reading no layout; the
// box's first ResizeObserver report corrects a wrong hint. Without ResizeObserver it measures at once.
import { act, cleanup, render } from '@testing-library/react';
import { renderToStaticMarkup } from 'react-dom/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BitmapInfo } from '../../../shared/domain';
import { checkpoint, disk, MiB } from '../test/fake-api';
import { Timeline, type TimelineProps } from './Timeline';

const T = Date.UTC(2026, 10, 23, 10, 0, 0);
const DISKS = ['vda', 'vdb', 'vdc', 'vdd'];
const cps = ['a', 'b', 'c', 'd'].map((n, i) => checkpoint(n, i === 0 ? undefined : String.fromCharCode(96 + i), T + i * 60_000, DISKS));
const bm = (name: string, count: number): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 });
const live = Object.fromEntries(DISKS.map((d) => [d, cps.map((c, i) => bm(c.name, (i + 1) * MiB))]));
const props: TimelineProps = {
  vmLabel: 'Demo VM', checkpoints: cps, current: 'd', disks: DISKS.map((d) => disk(d)), live,
  samples: {}, issues: [], backups: [], now: T + 240_000, maxTracks: 2, onSelect: () => undefined, onOpen: () => undefined,
};

/** jsdom has no ResizeObserver: one the test reports through. */
class TestResizeObserver {
  static all: TestResizeObserver[] = [];
  constructor(readonly callback: () => void) {
    TestResizeObserver.all.push(this);
  }
  observe() {}
  disconnect() {}
}

let width = 960;
let reads = 0;
beforeEach(() => {
  width = 960;
  reads = 0;
  vi.spyOn(HTMLElement.prototype, 'clientWidth', 'get').mockImplementation(() => (reads++, width));
  vi.spyOn(HTMLElement.prototype, 'clientHeight', 'get').mockImplementation(() => (reads++, 200));
  TestResizeObserver.all = [];
  vi.stubGlobal('ResizeObserver', TestResizeObserver);
});
afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

const spans = (c: ParentNode, d: string) => c.querySelectorAll(`g.band[data-disk="${d}"] .span:not(.span-group)`).length;

describe('the timeline with a box hint', () => {
  it('draws the SVG in its first render at the hinted width, only the bands near the hinted view', () => {
    const html = renderToStaticMarkup(<Timeline {...props} boxHint={{ width: 1200, height: 200 }} />);
    const page = new DOMParser().parseFromString(html, 'text/html');
    expect(page.querySelector('svg.timeline-svg')?.getAttribute('width')).toBe('1200');
    expect(spans(page, 'vda')).toBeGreaterThan(0);
    expect(spans(page, 'vdd')).toBe(0);
    // Without a hint the first render waits for the width.
    expect(renderToStaticMarkup(<Timeline {...props} />)).not.toContain('<svg class="timeline-svg"');
  });

  it('reads no layout on mount, and takes the width the box reports', () => {
    const { container } = render(<Timeline {...props} boxHint={{ width: 1200, height: 200 }} />);
    expect(reads).toBe(0);
    expect(container.querySelector('svg.timeline-svg')?.getAttribute('width')).toBe('1200');
    act(() => {
      for (const ro of TestResizeObserver.all) ro.callback();
    });
    expect(container.querySelector('svg.timeline-svg')?.getAttribute('width')).toBe('960');
  });
});
