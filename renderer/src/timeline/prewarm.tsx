// Compiles the timeline's code while the app waits for a VM's data. V8 compiles a function the
// first time it runs, so the first render of a large VM also paid ~26 ms of compiles on the main
// thread (bench/README.md, phases 5, 9 and 12); a code cache does not hold them (Chromium caches
// what ran while the script loaded, not what ran later). While the app waits for the host's first
// answers its main thread is idle: one render of a small sample, in each layout, into an element
// that is never attached, then unmounted, runs the same functions there. Nothing is shown or kept.

import { flushSync } from 'react-dom';
import { createRoot } from 'react-dom/client';
import type { BitmapInfo, Checkpoint, DiskInfo } from '../../../shared/domain';
import { recordCounts, type DiskHistory } from '../model/samples';
import { Timeline, type TimelineProps } from './Timeline';

const MiB = 1024 * 1024;

/** Three checkpoints on two disks, a full and an incremental backup: every part of a band drawn. */
export function sampleProps(layout: Checkpoint['layout'], now: number): TimelineProps {
  const names = ['a', 'b', 'c'];
  const checkpoints: Checkpoint[] = names.map((name, i) => ({
    name, parent: names[i - 1], createdAtMs: now - (3 - i) * 60_000, creationTime: Math.floor((now - (3 - i) * 60_000) / 1000), layout,
    disks: ['vda', 'vdb'].map((d) => ({ name: d, checkpoint: 'bitmap' as const, bitmap: name })),
  }));
  const bitmaps = (): BitmapInfo[] => names.map((name, i) => ({
    name, recording: layout === 'chained' ? i === 2 : true, persistent: true, busy: false, inconsistent: false, count: (i + 1) * MiB, granularity: 65536,
  }));
  const disk = (name: string): DiskInfo => ({
    name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1024 * MiB, imageFile: `/sample/${name}.qcow2`, granularity: 65536,
    bitmapCapable: true, readOnly: false, bitmaps: bitmaps(),
  });
  const history = (): DiskHistory => {
    const h: DiskHistory = new Map();
    recordCounts(h, now - 120_000, new Map([['a', MiB]]));
    recordCounts(h, now - 30_000, new Map([['a', 3 * MiB], ['b', 2 * MiB]]));
    return h;
  };
  return {
    vmLabel: 'sample', checkpoints, current: 'c', disks: [disk('vda'), disk('vdb')],
    live: { vda: bitmaps(), vdb: bitmaps() }, samples: { vda: history(), vdb: history() }, issues: [],
    backups: [
      { id: 'full', time: now - 170_000, kind: 'full', state: 'ok', disks: [{ disk: 'vda', bytes: MiB }, { disk: 'vdb', bytes: MiB }] },
      { id: 'inc', time: now - 50_000, kind: 'incremental', state: 'ok', base: 'b', baseTime: now - 120_000, disks: [{ disk: 'vda', bytes: MiB }, { disk: 'vdb', bytes: 0 }] },
    ],
    now, selected: 'b', onSelect: () => {}, onOpen: () => {},
  };
}

type Layout = Checkpoint['layout'];

/** Renders the sample in `layouts` into a detached element and unmounts it. */
export function prewarmTimeline(doc: Document = document, now = Date.now(), layouts: readonly Layout[] = ['independent', 'chained']): void {
  const root = createRoot(doc.createElement('div'));
  try {
    for (const layout of layouts) flushSync(() => root.render(<Timeline {...sampleProps(layout, now)} />));
  } catch {
    // Only a head start: the real render shows any error with the real data.
  } finally {
    root.unmount();
  }
}

/**
 * Runs prewarmTimeline once the main thread is idle (while the first answers are awaited), a layout
 * per idle period so an answer waits for at most one, and not once `needed` says a real timeline has
 * been drawn (its render compiled the same code).
 */
export function schedulePrewarm(needed: () => boolean, win: Window = window, layouts: readonly Layout[] = ['independent', 'chained']): void {
  const [layout, ...rest] = layouts;
  if (layout === undefined) return;
  const run = () => {
    if (!needed()) return;
    prewarmTimeline(win.document, Date.now(), [layout]);
    schedulePrewarm(needed, win, rest);
  };
  if (typeof win.requestIdleCallback === 'function') win.requestIdleCallback(run, { timeout: 1000 });
  else win.setTimeout(run, 0);
}
