// @vitest-environment jsdom
// Bands far from the visible part of the scroll box skip their lanes, backup marks and area, their
// gutter's words and their disk map's drawing (visible-rows.ts); the folded group's button and the
// disk map's accessible name stay, and scrolling draws them. jsdom has no layout: the scroll box's height and scroll position are given here.
import { act, cleanup, fireEvent, render, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BitmapInfo } from '../../../shared/domain';
import { checkpoint, disk, MiB } from '../test/fake-api';
import { Timeline } from './Timeline';

const T = Date.UTC(2026, 10, 23, 10, 0, 0);
const DISKS = ['vda', 'vdb', 'vdc', 'vdd'];
const cps = ['a', 'b', 'c', 'd'].map((n, i) => checkpoint(n, i === 0 ? undefined : String.fromCharCode(96 + i), T + i * 60_000, DISKS));
const bm = (name: string, count: number): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 });
const live = Object.fromEntries(DISKS.map((d) => [d, cps.map((c, i) => bm(c.name, (i + 1) * MiB))]));

let boxHeight = 0;
beforeEach(() => {
  boxHeight = 0;
  const h = vi.spyOn(HTMLElement.prototype, 'clientHeight', 'get');
  h.mockImplementation(function (this: HTMLElement) {
    return this.classList.contains('timeline-scroll') ? boxHeight : 0;
  });
  vi.spyOn(HTMLElement.prototype, 'clientWidth', 'get').mockImplementation(() => 960);
});
afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

function renderWithBox(height: number) {
  boxHeight = height;
  const utils = render(
    <Timeline
      vmLabel="Demo VM" checkpoints={cps} current="d" disks={DISKS.map((d) => disk(d))} live={live}
      samples={{}} issues={[]} backups={[]} now={T + 240_000} maxTracks={2} onSelect={() => undefined} onOpen={() => undefined}
    />,
  );
  const band = (d: string) => utils.container.querySelector(`g.band[data-disk="${d}"]`) as SVGGElement;
  const box = utils.container.querySelector('.timeline-scroll') as HTMLElement;
  /** Scrolls the box to its end, as far as a browser would let it. */
  const scrollToEnd = () => {
    const bottom = Number(utils.container.querySelector('svg.timeline-svg')!.getAttribute('height')) - height;
    Object.defineProperty(box, 'scrollTop', { configurable: true, value: bottom });
    act(() => {
      fireEvent.scroll(box);
    });
  };
  return { ...utils, band, scrollToEnd };
}

describe('bands near the view', () => {
  it('draws every band in full when the box has no height (no layout)', () => {
    const { band } = renderWithBox(0);
    for (const d of DISKS) expect(band(d).querySelectorAll('.span:not(.span-group)').length).toBeGreaterThan(0);
  });

  it('skips the lanes of bands far below the view, keeps their button and disk map, and draws them when scrolled to', () => {
    const { band, scrollToEnd } = renderWithBox(200);
    // The first band starts right under the tree, inside the view; the last is far below it.
    expect(band('vda').querySelectorAll('.span:not(.span-group)').length).toBeGreaterThan(0);
    expect(band('vdd').querySelectorAll('.span:not(.span-group)')).toHaveLength(0);
    // Still there: the group's button (a keyboard stop) and the disk map's accessible name.
    expect(within(band('vdd') as unknown as HTMLElement).getByRole('button', { name: /older bitmaps on vdd/ })).toBeTruthy();
    expect(band('vdd').querySelector('g.heatmap[role="img"]')).not.toBeNull();

    scrollToEnd();
    expect(band('vdd').querySelectorAll('.span:not(.span-group)').length).toBeGreaterThan(0);
    expect(band('vda').querySelectorAll('.span:not(.span-group)')).toHaveLength(0);
  });

  it('keeps only the accessible name and figures of a far band\u2019s disk map, and no gutter words, until scrolled to', () => {
    const { container, band, scrollToEnd } = renderWithBox(200);
    const map = (d: string) => band(d).querySelector('g.heatmap[role="img"]')!;
    const gutterTitles = () => [...container.querySelectorAll('.band-gutter .gutter-title')].map((t) => t.textContent);
    expect(map('vdd').getAttribute('aria-label')).toBe('where vdd changed since d: reading the dirty map…');
    expect(map('vdd').getAttribute('data-since')).toBe('d');
    expect(map('vdd').childElementCount).toBe(0);
    expect(map('vda').querySelector('.hm-strip')).not.toBeNull();
    expect(map('vda').querySelector('.hm-title')!.textContent).toContain('where vda changed since d');
    expect(gutterTitles()).toContain('vda');
    expect(gutterTitles()).not.toContain('vdd');

    scrollToEnd();
    expect(map('vdd').querySelector('.hm-strip')).not.toBeNull();
    expect(map('vdd').getAttribute('aria-label')).toBe('where vdd changed since d: reading the dirty map…');
    expect(map('vda').childElementCount).toBe(0);
    expect(gutterTitles()).toContain('vdd');
    expect(gutterTitles()).not.toContain('vda');
  });

  it('keeps focus on a far band\u2019s group button when focusing it brings the band near', () => {
    const { band, scrollToEnd } = renderWithBox(200);
    const button = within(band('vdd') as unknown as HTMLElement).getByRole('button', { name: /older bitmaps on vdd/ });
    act(() => (button as unknown as HTMLElement).focus());
    scrollToEnd(); // what focusing it does in a browser
    expect(band('vdd').querySelectorAll('.span:not(.span-group)').length).toBeGreaterThan(0);
    expect(document.activeElement).toBe(button);
  });
});
