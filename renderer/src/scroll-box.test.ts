// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from 'vitest';
import { onScrollOrResize } from './scroll-box';

/** jsdom has no ResizeObserver: a recording one, so the test can fire a resize. */
class RecordingResizeObserver {
  static last: RecordingResizeObserver | undefined;
  observed: Element[] = [];
  disconnected = false;
  constructor(readonly callback: () => void) {
    RecordingResizeObserver.last = this;
  }
  observe(el: Element) {
    this.observed.push(el);
  }
  disconnect() {
    this.disconnected = true;
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
  RecordingResizeObserver.last = undefined;
});

describe('onScrollOrResize', () => {
  it('calls the listener on scroll and on resize, and no more once unsubscribed', () => {
    vi.stubGlobal('ResizeObserver', RecordingResizeObserver);
    const el = document.createElement('div');
    const listener = vi.fn();
    const unsubscribe = onScrollOrResize(el, listener);
    const ro = RecordingResizeObserver.last!;
    expect(ro.observed).toEqual([el]);
    el.dispatchEvent(new Event('scroll'));
    ro.callback();
    expect(listener).toHaveBeenCalledTimes(2);
    unsubscribe();
    expect(ro.disconnected).toBe(true);
    el.dispatchEvent(new Event('scroll'));
    expect(listener).toHaveBeenCalledTimes(2);
  });

  it('follows scrolling alone where there is no ResizeObserver', () => {
    expect(typeof ResizeObserver).toBe('undefined');
    const el = document.createElement('div');
    const listener = vi.fn();
    const unsubscribe = onScrollOrResize(el, listener);
    el.dispatchEvent(new Event('scroll'));
    expect(listener).toHaveBeenCalledTimes(1);
    unsubscribe();
    el.dispatchEvent(new Event('scroll'));
    expect(listener).toHaveBeenCalledTimes(1);
  });
});
