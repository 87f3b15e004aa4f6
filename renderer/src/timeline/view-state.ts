// Which window of time the timeline shows, as time passes (pure, unit-tested):
//  - fit:    everything (checkpoints, backups, now), refitted as NOW moves — the default;
//  - follow: the user zoomed or panned but NOW is still on screen: the window keeps its width
//            and NOW keeps its place on screen, so the view moves with time;
//  - free:   the user panned NOW off screen: the window stays where it was put (in real time,
//            so it stays put even when a new checkpoint changes how idle stretches compress).
// "Jump to now" returns to follow, "Fit all" to fit.

import { fitView, type TimeView } from './timescale';
import type { TimeWarp } from './warp';

export type ViewState =
  | { mode: 'fit' }
  | { mode: 'follow'; span: number; nowFrac: number }
  | { mode: 'free'; t0: number; t1: number };

export interface ViewContext {
  warp: TimeWarp;
  /** Times worth fitting (real ms). */
  times: readonly number[];
  now: number;
  plotW: number;
}

/** Room kept right of NOW when fitting or jumping to now: its label and the lanes' end figures. */
export const NOW_RIGHT_PX = 280;

/** The window to draw (in axis time). */
export function effectiveView(state: ViewState, ctx: ViewContext): TimeView {
  const nowA = ctx.warp.toAxis(ctx.now);
  switch (state.mode) {
    case 'fit':
      return fitView(ctx.times.map(ctx.warp.toAxis), nowA, ctx.plotW, 40, Math.min(NOW_RIGHT_PX, ctx.plotW * 0.35));
    case 'follow': {
      const t1 = nowA + (1 - state.nowFrac) * state.span;
      return { t0: t1 - state.span, t1 };
    }
    case 'free':
      return { t0: ctx.warp.toAxis(state.t0), t1: ctx.warp.toAxis(state.t1) };
  }
}

/** The state after the user moved the window to `next` (axis time): follow while NOW stays on screen. */
export function afterUserMove(next: TimeView, ctx: ViewContext): ViewState {
  const span = next.t1 - next.t0;
  const frac = (ctx.warp.toAxis(ctx.now) - next.t0) / span;
  if (frac >= 0 && frac <= 1) return { mode: 'follow', span, nowFrac: frac };
  return { mode: 'free', t0: ctx.warp.toTime(next.t0), t1: ctx.warp.toTime(next.t1) };
}

/** "Jump to now": keep the width, put NOW where its label has room, and follow it. */
export function jumpToNow(current: TimeView, plotW: number): ViewState {
  return { mode: 'follow', span: current.t1 - current.t0, nowFrac: Math.max(0.5, 1 - NOW_RIGHT_PX / Math.max(1, plotW)) };
}
