// The table of every checkpoint, newest first, shown in the details pane while nothing is selected.
// A history of a thousand checkpoints is one scroll box of fixed-height rows of which only those in
// view (and a few more) are rendered (issue 11: list-window.ts); screen readers get the full count
// through aria-rowcount and each row's aria-rowindex. One tab stop: the name button of the active
// row; ↑/↓, Page Up/Down, Home and End move it (scrolling it into view), Enter or a click selects.

import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import type { Checkpoint } from '../../../shared/domain';
import { displayName, formatAbsolute, formatRelative, shortName } from '../format';
import { onScrollOrResize } from '../scroll-box';
import { listParts, listWindow, scrollToRow } from './list-window';

/**
 * Height of a row in px until one is measured (styles.css `.cp-list`). Every row has the same
 * height (one line, no wrapping), so the window is plain arithmetic; the real height (fonts, zoom)
 * is read from a rendered row when the box is measured, after a layout that happens anyway.
 */
export const ROW_HEIGHT = 25;
/** Rows rendered beyond the view on each side (a fast wheel turn does not show blank rows). */
const OVERSCAN = 6;
/** Rows assumed in view until the box is measured (jsdom never measures). */
const GUESS_ROWS = 12;

export interface CheckpointListProps {
  checkpoints: readonly Checkpoint[];
  current?: string;
  now: number;
  onSelect(name: string): void;
  /** The checkpoint to bring into view and make the active row (the one selected last). */
  reveal?: string;
}

interface ScrollBox { top: number; height: number; row: number }

/** What the box shows: scroll position, height and a row's height; read on scroll and resize. */
export function readBox(el: HTMLElement): ScrollBox {
  const row = el.querySelector('tbody tr:not(.cp-spacer)')?.getBoundingClientRect().height;
  return { top: el.scrollTop, height: el.clientHeight || GUESS_ROWS * ROW_HEIGHT, row: row !== undefined && row > 0 ? row : ROW_HEIGHT };
}

function useScrollBox(ref: React.RefObject<HTMLDivElement | null>) {
  const [box, setBox] = useState<ScrollBox>({ top: 0, height: GUESS_ROWS * ROW_HEIGHT, row: ROW_HEIGHT });
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    let frame = 0;
    const read = () => {
      frame = 0;
      const next = readBox(el);
      setBox((b) => (b.top === next.top && b.height === next.height && b.row === next.row ? b : next));
    };
    const later = () => {
      if (frame === 0) frame = requestAnimationFrame(read);
    };
    const unsubscribe = onScrollOrResize(el, later);
    return () => {
      unsubscribe();
      if (frame !== 0) cancelAnimationFrame(frame);
    };
  }, [ref]);
  return [box, setBox] as const;
}

export function CheckpointList(props: CheckpointListProps) {
  if (props.checkpoints.length === 0) return <p className="muted">No checkpoints yet. Create one to start tracking changes.</p>;
  return <CheckpointTable {...props} />;
}

/** The table itself: mounted with its scroll box, so the box's listeners are set up once it exists. */
function CheckpointTable({ checkpoints, current, now, onSelect, reveal }: CheckpointListProps) {
  const rows = useMemo(() => [...checkpoints].reverse(), [checkpoints]);
  const scrollRef = useRef<HTMLDivElement>(null);
  const [box, setBox] = useScrollBox(scrollRef);
  const [active, setActive] = useState<string | undefined>(reveal);
  const [focusToken, setFocusToken] = useState(0);
  const activeIndex = Math.max(0, rows.findIndex((c) => c.name === active));
  const parts = listParts(listWindow(rows.length, box.row, box.top, box.height, OVERSCAN), rows.length, box.row, activeIndex);

  /** Scrolls row `index` into view (no layout read but the box's own size). */
  const bringIntoView = useCallback((index: number) => {
    const el = scrollRef.current;
    if (!el) return;
    const now = readBox(el);
    const head = el.querySelector('thead')?.getBoundingClientRect().height ?? now.row;
    const top = scrollToRow(index, now.row, el.scrollTop, el.clientHeight, head);
    if (top !== el.scrollTop) el.scrollTop = top;
    setBox({ ...now, top: el.scrollTop });
  }, [setBox]);

  // The checkpoint selected last (in the tree, or from this list) is in view when the list comes back.
  useLayoutEffect(() => {
    if (reveal === undefined) return;
    const i = rows.findIndex((c) => c.name === reveal);
    if (i < 0) return;
    setActive(reveal);
    bringIntoView(i);
  }, [reveal, rows, bringIntoView]);

  // Keyboard moves focus after the row it moves to is rendered.
  useLayoutEffect(() => {
    if (focusToken === 0 || active === undefined) return;
    const buttons = scrollRef.current?.querySelectorAll<HTMLButtonElement>('button[data-name]') ?? [];
    [...buttons].find((b) => b.dataset.name === active)?.focus({ preventScroll: true });
  }, [focusToken, active]);

  const onKey = (e: KeyboardEvent<HTMLButtonElement>, index: number) => {
    const page = Math.max(1, Math.floor(box.height / box.row) - 2);
    const to = e.key === 'ArrowDown' ? index + 1 : e.key === 'ArrowUp' ? index - 1 : e.key === 'PageDown' ? index + page
      : e.key === 'PageUp' ? index - page : e.key === 'Home' ? 0 : e.key === 'End' ? rows.length - 1 : undefined;
    if (to === undefined) return;
    e.preventDefault();
    const i = Math.max(0, Math.min(rows.length - 1, to));
    setActive(rows[i]!.name);
    setFocusToken((t) => t + 1);
    bringIntoView(i);
  };

  return (
    <div className="cp-list-scroll" ref={scrollRef}>
      <table className="grid cp-list" aria-label="All checkpoints" aria-rowcount={rows.length + 1}>
        <colgroup><col className="cp-col-name" /><col className="cp-col-created" /><col className="cp-col-parent" /><col /></colgroup>
        <thead><tr aria-rowindex={1}><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Parent</th><th scope="col">Disks with a bitmap</th></tr></thead>
        <tbody>
          {parts.map((p, k) => {
            if ('gap' in p) return <tr key={`gap-${k}`} className="cp-spacer" aria-hidden="true" style={{ height: p.gap }}><td colSpan={4} /></tr>;
            const index = p.row;
            const c = rows[index]!;
            const disks = c.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name).join(', ') || '—';
            return (
              <tr key={c.name} aria-rowindex={index + 2}>
                <td>
                  <button
                    type="button" className="small name-button" data-name={c.name} tabIndex={index === activeIndex ? 0 : -1}
                    onClick={() => {
                      setActive(c.name);
                      onSelect(c.name);
                    }}
                    onFocus={() => setActive(c.name)} onKeyDown={(e) => onKey(e, index)} title={displayName(c.name)}
                  >{shortName(c.name, 40)}</button>{c.name === current ? ' (current)' : ''}
                </td>
                <td title={formatAbsolute(c.createdAtMs)}>{formatRelative(c.createdAtMs, now)}</td>
                <td title={c.parent !== undefined ? displayName(c.parent) : undefined}>{c.parent !== undefined ? shortName(c.parent, 32) : '—'}</td>
                <td title={disks}>{disks}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
