// PURE: the calendar period a moment falls in (hour, day, ISO week, month, year), in a given time
// zone. Retention rules group backup points by these periods.
//
// Default zone: the host's local zone. "Keep one backup per day" means the user's day: a backup
// taken at 00:30 in Berlin belongs to that Berlin day, not to the previous UTC day. restic and
// Proxmox Backup Server group by local time as well. The zone is injectable (tests, or a server
// whose admins think in UTC); any IANA name or "UTC" is accepted.
//
// In the autumn DST change the wall-clock hour 02:xx happens twice; both fall in the same
// "hourly" period, as in restic and PBS (they format local wall-clock time too).

export type PeriodUnit = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';

export const PERIOD_UNITS: readonly PeriodUnit[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

/** The host's local IANA time zone (as Intl resolves it; "UTC" when the host has none). */
export function hostTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** Throws naming the zone when Intl does not know it; returns it unchanged otherwise. */
export function validateTimeZone(zone: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    throw new Error(`time zone ${JSON.stringify(zone)} is not known (use an IANA name such as "Europe/Berlin", or "UTC")`);
  }
  return zone;
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock date and hour of `ms` in `zone`. */
export function wallClock(ms: number, zone: string): WallClock {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' });
    formatters.set(zone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour! % 24 };
}

/** ISO 8601 week of a calendar date: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = Date.UTC(year, month - 1, day);
  const dayOfWeek = (new Date(date).getUTCDay() + 6) % 7; // Monday = 0
  const thursday = date + (3 - dayOfWeek) * 86_400_000;
  const isoYear = new Date(thursday).getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(isoYear, 0, 1)) / (7 * 86_400_000));
  return { year: isoYear, week };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** A key naming the period of `unit` that `ms` falls in (equal keys = same period). */
export function periodKey(ms: number, unit: PeriodUnit, zone: string): string {
  const w = wallClock(ms, zone);
  switch (unit) {
    case 'hourly':
      return `${w.year}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}`;
    case 'daily':
      return `${w.year}-${pad(w.month)}-${pad(w.day)}`;
    case 'weekly': {
      const iw = isoWeek(w.year, w.month, w.day);
      return `${iw.year}-W${pad(iw.week)}`;
    }
    case 'monthly':
      return `${w.year}-${pad(w.month)}`;
    case 'yearly':
      return String(w.year);
  }
}
