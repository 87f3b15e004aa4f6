// A drag of the timeline's plot, as an admin pans it: real mouse events from Playwright (the app takes
// pointer capture, which a synthetic event cannot have), one move at a time. The page records every
// animation frame; a frame counts when a pointer move reached the plot at its start, and its work runs
// from the frame's start (the animation frame's time, before rAF-aligned input is dispatched) to a
// message posted from its callback, which runs once its style, layout and paint are done.

import type { Page } from 'playwright-core';

export interface PanFrames {
  /** Per frame with a move: its start → its paint done (wall, ms). */
  workMs: number[];
  /** Main-thread CPU per frame with a move (ms), from `cpu` before and after. */
  cpuPerFrameMs: number;
}

/** What the page keeps of each animation frame during the drag (window.__pan). */
interface PanRecord {
  frames: { ts: number; moved: boolean; work?: number }[];
  /** A pointer move reached the plot since the last frame started. */
  moved: boolean;
  on: boolean;
}

/** The view has settled after a gesture (a zoom or a drag): labels back, no transform in flight. */
export function settled(page: Page): Promise<unknown> {
  return page.waitForFunction(() => !document.querySelector('svg.timeline-svg[data-draft], [data-live-span-ms]'), undefined, { polling: 50 });
}

/** The drag, measured; returns once the view has settled after it. */
export async function panFrames(page: Page, moves: number, cpu: () => Promise<number>): Promise<PanFrames> {
  const box = await page.locator('svg.timeline-svg').boundingBox();
  if (!box) throw new Error('the timeline is not on the page');
  await page.evaluate(() => {
    const w = window as unknown as { __pan: PanRecord };
    const rec: PanRecord = (w.__pan = { frames: [], moved: false, on: true });
    document.querySelector('svg.timeline-svg')!.addEventListener('pointermove', () => void (rec.moved = true), { capture: true });
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      const f = rec.frames.at(-1);
      if (f && f.work === undefined) f.work = performance.now() - f.ts;
    };
    const tick = (ts: number) => {
      if (!rec.on) return channel.port1.close();
      // Moves are dispatched at a frame's start, before its callbacks: those seen now are this frame's.
      rec.frames.push({ ts, moved: rec.moved });
      rec.moved = false;
      channel.port2.postMessage(0);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const cpu0 = await cpu();
  const y = box.y + 60;
  let x = box.x + box.width * 0.7;
  await page.mouse.move(x, y);
  await page.mouse.down();
  for (let i = 0; i < moves; i++) {
    x -= 6;
    await page.mouse.move(x, y);
  }
  await page.mouse.up();
  const cpu1 = await cpu();
  const frames = await page.evaluate(async () => {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const rec = (window as unknown as { __pan: PanRecord }).__pan;
    rec.on = false;
    return rec.frames.filter((f) => f.moved && f.work !== undefined);
  });
  if (frames.length === 0) throw new Error('the drag moved no frame: did the pan reach the plot?');
  await settled(page);
  return { workMs: frames.map((f) => f.work!), cpuPerFrameMs: (cpu1 - cpu0) / frames.length };
}
