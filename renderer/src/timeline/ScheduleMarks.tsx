// The selected VM's backup schedules on the timeline (issue 13): each next run right of NOW is a
// dashed tick with a clock glyph; a next run beyond the visible range is a short note at the right
// edge instead. Placement is schedule-marks.ts (pure); this only draws it.

import type { ScheduleInfo } from '../../../shared/contract';
import { textWidth } from './labels';
import { placeSchedules } from './schedule-marks';
import './schedule-marks.css';

export interface ScheduleMarksProps {
  schedules: readonly ScheduleInfo[];
  now: number;
  plotW: number;
  /** Real time → plot x, unclamped (the future part of the axis). */
  toX(t: number): number;
  top: number;
  height: number;
}

/** A small clock face centred on (cx, cy). */
function Clock({ cx, cy }: { cx: number; cy: number }) {
  return (
    <g className="sched-clock" aria-hidden="true">
      <circle cx={cx} cy={cy} r={6} />
      <path d={`M${cx},${cy - 4} L${cx},${cy} L${cx + 3},${cy + 1.5}`} />
    </g>
  );
}

export function ScheduleMarks({ schedules, now, plotW, toX, top, height }: ScheduleMarksProps) {
  const { marks, beyond } = placeSchedules(schedules, now, plotW, toX);
  const note = beyond?.text ?? '';
  const noteW = textWidth(note, 10);
  // The note takes the top row at the right edge; a marker under it moves the note to the bottom
  // edge (the rows just below hold the NOW label).
  const noteY = marks.some((m) => m.x > plotW - noteW - 30) ? height - 10 : top + 12;
  return (
    <g className="schedule-marks">
      {marks.map((m) => {
        const flip = m.x + 9 + textWidth(m.every, 10) > plotW; // near the edge: label left of the tick
        return (
          <g key={m.id} className="sched-mark" data-schedule={m.id} role="img" aria-label={m.label}>
            <title>{m.label}</title>
            <line x1={m.x} x2={m.x} y1={top} y2={height} />
            <Clock cx={m.x} cy={top + 8} />
            <text className="sched-label" x={flip ? m.x - 9 : m.x + 9} y={top + 12} textAnchor={flip ? 'end' : 'start'}>{m.every}</text>
          </g>
        );
      })}
      {beyond && (
        <g className="sched-beyond" data-schedule={beyond.id} role="img" aria-label={`${beyond.text}: ${beyond.label}`}>
          <title>{beyond.label}</title>
          <text className="sched-note" x={plotW - 20} y={noteY} textAnchor="end">{note}</text>
          <Clock cx={plotW - 9} cy={noteY - 4} />
        </g>
      )}
    </g>
  );
}
