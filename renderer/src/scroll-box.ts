// The two things that change what a scroll box shows: its scroll position and its size. The
// checkpoint list (which rows to render) and the timeline (which disk bands to draw) both listen to
// them; ResizeObserver is missing in a test DOM, where only scrolling is followed.

/** Calls `listener` on every scroll of `el` and every change of its size; returns the unsubscribe. */
export function onScrollOrResize(el: HTMLElement, listener: () => void): () => void {
  el.addEventListener('scroll', listener, { passive: true });
  const ro = typeof ResizeObserver === 'undefined' ? undefined : new ResizeObserver(listener);
  ro?.observe(el);
  return () => {
    el.removeEventListener('scroll', listener);
    ro?.disconnect();
  };
}

export interface BoxSize {
  width: number;
  height: number;
}

/**
 * A callback ref that keeps, in `size`, the size ResizeObserver last reported for its element (its
 * client width and height, read after the frame's layout, so no layout is forced). Nothing renders
 * when it changes: the timeline takes it as a first guess of its own box when its data arrives.
 */
export function lastSizeRef(size: { current: BoxSize | undefined }): (el: HTMLElement | null) => (() => void) | undefined {
  return (el) => {
    if (!el || typeof ResizeObserver === 'undefined') return undefined;
    const ro = new ResizeObserver(() => {
      size.current = { width: el.clientWidth, height: el.clientHeight };
    });
    ro.observe(el);
    return () => ro.disconnect();
  };
}
