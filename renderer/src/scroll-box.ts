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
