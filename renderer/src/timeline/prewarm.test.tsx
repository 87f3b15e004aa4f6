// @vitest-environment jsdom
import { cleanup, render } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { prewarmTimeline, sampleProps, schedulePrewarm } from './prewarm';
import { Timeline } from './Timeline';

afterEach(cleanup);
const T = Date.UTC(2026, 11, 6, 4, 0, 0);

describe('the prewarm sample', () => {
  it.each(['independent', 'chained'] as const)('draws every part of a band in the %s layout: tree, spans, backups with a bracket, a series', (layout) => {
    const { container } = render(<Timeline {...sampleProps(layout, T)} />);
    expect(container.querySelectorAll('[role="treeitem"]')).toHaveLength(3);
    const bands = [...container.querySelectorAll('g.band')];
    expect(bands.map((b) => b.getAttribute('data-disk'))).toEqual(['vda', 'vdb']);
    for (const band of bands) {
      expect(band.querySelectorAll('.span[data-checkpoint]').length).toBeGreaterThanOrEqual(1);
      expect(band.querySelectorAll('.backup-mark')).toHaveLength(2);
      expect(band.querySelector('path.backup-bracket')).not.toBeNull();
    }
    expect(container.querySelector('.span[data-state="recording"]')).not.toBeNull();
  });
});

describe('prewarmTimeline', () => {
  it('leaves the document as it was', () => {
    document.body.innerHTML = '<main id="app">x</main>';
    prewarmTimeline(document, T);
    expect(document.body.innerHTML).toBe('<main id="app">x</main>');
  });
});

describe('schedulePrewarm', () => {
  const fakeWindow = () => {
    const idle: (() => void)[] = [];
    const createElement = vi.fn((tag: string) => document.createElement(tag));
    const win = { requestIdleCallback: (cb: () => void) => idle.push(cb), document: { createElement } } as unknown as Window;
    return { win, idle, createElement };
  };

  it('renders at idle time, not before, one layout per idle period', () => {
    const { win, idle, createElement } = fakeWindow();
    schedulePrewarm(() => true, win);
    expect(createElement).not.toHaveBeenCalled();
    expect(idle).toHaveLength(1);
    idle[0]!();
    expect(createElement).toHaveBeenCalledTimes(1);
    expect(idle).toHaveLength(2);
    idle[1]!();
    expect(createElement).toHaveBeenCalledTimes(2);
    expect(idle).toHaveLength(2); // both layouts done: nothing more asked
  });

  it('does nothing once a real timeline was drawn', () => {
    const { win, idle, createElement } = fakeWindow();
    let drawn = false;
    schedulePrewarm(() => !drawn, win);
    idle[0]!();
    drawn = true;
    idle[1]!();
    expect(createElement).toHaveBeenCalledTimes(1);
    expect(idle).toHaveLength(2);
  });
});
