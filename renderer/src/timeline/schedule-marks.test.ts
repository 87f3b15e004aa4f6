import { describe, expect, it } from 'vitest';
import type { ScheduleInfo } from '../../../shared/contract';
import type { VmInfo } from '../../../shared/domain';
import { placeSchedules, scheduleLabel, schedulesOfVm } from './schedule-marks';

const NOW = Date.UTC(2026, 11, 5, 12, 0, 0);
const H = 3600_000;

function schedule(id: string, next: number | undefined, extra: Partial<ScheduleInfo> = {}): ScheduleInfo {
  return {
    id, vm: { id: 'uuid-1', name: 'web' }, every: 'hourly', connect: 'unix:/q', stateDir: '/s', mode: 'push',
    user: false, createdAt: NOW - H, files: [], ...(next !== undefined ? { next } : {}), ...extra,
  };
}

// 1 px per minute, NOW at x = 100: the plot (400 px wide) shows up to NOW + 5 h.
const toX = (t: number) => 100 + (t - NOW) / 60_000;

describe('placeSchedules', () => {
  it('puts a next run inside the view at its x, right of NOW', () => {
    const p = placeSchedules([schedule('a', NOW + 2 * H)], NOW, 400, toX);
    expect(p.marks.map((m) => [m.id, m.x])).toEqual([['a', 220]]);
    expect(p.beyond).toBeUndefined();
  });

  it('turns a next run beyond the right edge into the note, the soonest one', () => {
    const p = placeSchedules([schedule('day', NOW + 24 * H), schedule('six', NOW + 6 * H), schedule('in', NOW + H)], NOW, 400, toX);
    expect(p.marks.map((m) => m.id)).toEqual(['in']);
    expect(p.beyond).toMatchObject({ id: 'six', text: 'next scheduled backup in 6 h' });
  });

  it('draws nothing for an unknown, past or left-of-view next run', () => {
    const p = placeSchedules([schedule('u', undefined), schedule('late', NOW - H), schedule('left', NOW + H)], NOW, 400, (t) => toX(t) - 1000);
    expect(p).toEqual({ marks: [] });
  });

  it('sorts marks by time', () => {
    const p = placeSchedules([schedule('b', NOW + 3 * H), schedule('a', NOW + H)], NOW, 400, toX);
    expect(p.marks.map((m) => m.id)).toEqual(['a', 'b']);
  });
});

describe('scheduleLabel', () => {
  it('names the period, the mode and the keep rules', () => {
    const label = scheduleLabel(schedule('a', NOW + H, { every: 'daily', mode: 'pull', policy: { last: 3, daily: 7 }, maxChain: 10 }), NOW + H);
    expect(label).toMatch(/^scheduled backup daily · next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(pull, keep last 3, keep daily 7, max-chain 10\)$/);
    expect(scheduleLabel(schedule('b', NOW + H), NOW + H)).toMatch(/\(push\)$/);
  });
});

describe('schedulesOfVm', () => {
  const info: VmInfo = { id: 'uuid-1', uuid: 'uuid-1', name: 'web', endpoint: '/q', status: 'running', qemuVersion: '7.2', disks: [] };
  it('keeps the schedules naming this VM by its durable identity, not other VMs', () => {
    const mine = schedule('mine', NOW + H);
    const other = schedule('other', NOW + H, { vm: { id: 'uuid-2', name: 'db' } });
    expect(schedulesOfVm([mine, other], 'demo', info).map((s) => s.id)).toEqual(['mine']);
    expect(schedulesOfVm([mine, other], 'demo', undefined)).toEqual([]);
  });
});
