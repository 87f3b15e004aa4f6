// When a schedule runs. systemd's own parser decides (`systemd-analyze calendar`, which also gives
// the normalized form and the next elapse) wherever it is installed. Without it (cron hosts), the
// common forms are understood here: hourly, daily, weekly, monthly, and "[Weekday] [*-*-*] HH:MM[:SS]";
// they also convert to a cron schedule. Times are in the host's local zone, like systemd timers.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';

export interface CalendarCheck {
  /** systemd's normalized form (or ours). */
  normalized: string;
  /** Next run after `now`, ms since the epoch (undefined when it never runs again). */
  next?: number;
}

export const SYSTEMD_ANALYZE_PATHS = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'];

export function findSystemdAnalyze(): string | undefined {
  return SYSTEMD_ANALYZE_PATHS.find((p) => fs.existsSync(p));
}

const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const SHORT: Record<string, string> = { hourly: '*-*-* *:00:00', daily: '*-*-* 00:00:00', weekly: 'Mon *-*-* 00:00:00', monthly: '*-*-01 00:00:00' };

/** A calendar expression this module understands without systemd. */
interface Simple {
  /** 0 = Sunday. */
  weekday?: number;
  /** undefined = every hour. */
  hour?: number;
  minute: number;
  second: number;
  /** monthly: day 1 of each month. */
  monthDay?: number;
}

export function parseSimpleCalendar(expr: string): Simple | undefined {
  const e = (SHORT[expr.trim()] ?? expr).trim();
  const m = /^(?:([A-Za-z]{3,9})\s+)?(?:(\*-\*-(\*|01))\s+)?(\*|\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(e);
  if (!m) return undefined;
  let weekday: number | undefined;
  if (m[1] !== undefined) {
    const w = m[1].toLowerCase();
    weekday = DAYS.findIndex((d) => d === w || d.slice(0, 3) === w);
    if (weekday < 0) return undefined;
  }
  const hour = m[4] === '*' ? undefined : Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6] ?? 0);
  if ((hour !== undefined && hour > 23) || minute > 59 || second > 59) return undefined;
  return { ...(weekday !== undefined ? { weekday } : {}), ...(hour !== undefined ? { hour } : {}), minute, second, ...(m[3] === '01' ? { monthDay: 1 } : {}) };
}

/** Next time after `now` (local zone) that a simple expression elapses. */
export function nextSimple(s: Simple, now: number): number {
  const d = new Date(now);
  d.setMilliseconds(0);
  d.setSeconds(s.second);
  d.setMinutes(s.minute);
  if (s.hour !== undefined) d.setHours(s.hour);
  // Walk forward hour by hour (at most ~2 months for "monthly"): simple and exact across DST.
  for (let i = 0; i < 24 * 64; i++) {
    const ok = d.getTime() > now
      && (s.weekday === undefined || d.getDay() === s.weekday)
      && (s.monthDay === undefined || d.getDate() === s.monthDay)
      && (s.hour === undefined || d.getHours() === s.hour)
      && d.getMinutes() === s.minute && d.getSeconds() === s.second;
    if (ok) return d.getTime();
    d.setTime(d.getTime() + 3_600_000);
    d.setMinutes(s.minute, s.second, 0);
  }
  throw new Error('internal: no next run found');
}

/** The cron schedule (5 fields) for an expression cron can express. */
export function cronSchedule(expr: string): string {
  const s = parseSimpleCalendar(expr);
  if (!s || s.second !== 0) {
    throw new Error(`--every ${JSON.stringify(expr)} cannot be written as a cron schedule; without systemd use hourly, daily, weekly, monthly or "[Weekday] HH:MM"`);
  }
  return `${s.minute} ${s.hour ?? '*'} ${s.monthDay ?? '*'} * ${s.weekday ?? '*'}`;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: String(stdout), err: String(stderr) });
    });
  });
}

/** Checks a calendar expression; throws a one-line error naming it when it is not valid. */
export async function checkCalendar(expr: string, options: { now?: number; systemdAnalyze?: string | null } = {}): Promise<CalendarCheck> {
  const now = options.now ?? Date.now();
  const analyze = options.systemdAnalyze === null ? undefined : (options.systemdAnalyze ?? findSystemdAnalyze());
  if (analyze) {
    // The local zone, as the timer will use; systemd adds an "(in UTC)" line unless that zone is UTC.
    const r = await run(analyze, ['calendar', '--iterations=1', `--base-time=@${Math.floor(now / 1000)}`, expr], { ...process.env, SYSTEMD_COLORS: '0' });
    if (r.code !== 0) {
      const why = (r.err || r.out).trim().split('\n').pop() ?? '';
      throw new Error(`--every ${JSON.stringify(expr)} is not a calendar expression systemd accepts (${why}); examples: hourly, daily, weekly, "Mon..Fri 02:30", "*-*-* 04:00:00"`);
    }
    const normalized = /Normalized form:\s*(.+)/.exec(r.out)?.[1]?.trim() ?? expr;
    const line = /\(in UTC\):\s*\w+ (\S+ \S+) UTC/.exec(r.out) ?? /Next elapse:\s*\w+ (\S+ \S+) UTC/.exec(r.out);
    return { normalized, ...(line ? { next: Date.parse(`${line[1]!.replace(' ', 'T')}Z`) } : {}) };
  }
  const s = parseSimpleCalendar(expr);
  if (!s) throw new Error(`--every ${JSON.stringify(expr)}: without systemd-analyze only hourly, daily, weekly, monthly and "[Weekday] [*-*-*] HH:MM[:SS]" can be checked`);
  return { normalized: SHORT[expr.trim()] ?? expr.trim(), next: nextSimple(s, now) };
}
