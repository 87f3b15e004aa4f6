// PURE: where the selected VM's backup schedules sit on the timeline (issue 13): each schedule's
// next run is a marker in the future part of the axis, right of NOW; a next run beyond the visible
// range becomes one short note at the right edge ("next scheduled backup in 5 h") instead.
// A schedule names its VM by the durable identity (UUID, else name, else endpoint); the page knows
// the host's VM id and vm:info, so isSameVm matches the two.

import type { ScheduleInfo } from '../../../shared/contract';
import type { VmInfo } from '../../../shared/domain';
import { formatAbsolute } from '../format';
import { isSameVm } from '../model/vm-ids';
import { formatDuration } from './warp';

export interface ScheduleMark {
  id: string;
  every: string;
  /** Pixels from the plot's left edge. */
  x: number;
  next: number;
  /** "scheduled backup daily · next 2026-12-06 00:00:00 (push, keep daily 7)": tooltip and aria-label. */
  label: string;
}

export interface SchedulePlacement {
  marks: ScheduleMark[];
  /** The soonest next run right of the visible range, when there is one. */
  beyond?: { id: string; next: number; text: string; label: string };
}

/** The schedules of one VM (host id `vmId`, engine identity `info`). */
export function schedulesOfVm(schedules: readonly ScheduleInfo[], vmId: string, info: VmInfo | undefined): ScheduleInfo[] {
  return schedules.filter((s) => isSameVm(s.vm.id, vmId, info));
}

/** "scheduled backup daily · next … (pull, keep last 3, keep daily 7, max-chain 10)". */
export function scheduleLabel(s: ScheduleInfo, next: number): string {
  const keep = Object.entries(s.policy ?? {}).filter(([, n]) => n !== undefined && n > 0).map(([k, n]) => `keep ${k} ${n}`);
  const what = [s.mode, ...keep, ...(s.maxChain !== undefined ? [`max-chain ${s.maxChain}`] : [])].join(', ');
  return `scheduled backup ${s.every} · next ${formatAbsolute(next)} (${what})`;
}

/**
 * Places the next runs. `toX` maps a real time to plot pixels (unclamped: right of NOW the axis is
 * linear); runs at or before NOW (a timer that is late) and runs left of the view are not drawn.
 */
export function placeSchedules(schedules: readonly ScheduleInfo[], now: number, plotW: number, toX: (t: number) => number): SchedulePlacement {
  const marks: ScheduleMark[] = [];
  let beyond: SchedulePlacement['beyond'];
  for (const s of schedules) {
    const next = s.next;
    if (next === undefined || !Number.isFinite(next) || next <= now) continue;
    const x = toX(next);
    if (x > plotW) {
      if (!beyond || next < beyond.next) {
        beyond = { id: s.id, next, text: `next scheduled backup in ${formatDuration(next - now)}`, label: scheduleLabel(s, next) };
      }
    } else if (x >= 0) {
      marks.push({ id: s.id, every: s.every, x, next, label: scheduleLabel(s, next) });
    }
  }
  marks.sort((a, b) => a.next - b.next);
  return { marks, ...(beyond ? { beyond } : {}) };
}
