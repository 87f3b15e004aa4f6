import { describe, expect, it } from 'vitest';
import { prng } from '../lab/writer';
import { isoWeek, periodKey, type PeriodUnit } from './periods';
import { selectByPolicy, validatePolicy, type KeepPolicy, type PointTime } from './policy';

const at = (iso: string, id = iso): PointTime => ({ id, time: Date.parse(iso) });

describe('periods', () => {
  it('numbers ISO weeks across year boundaries', () => {
    expect(isoWeek(2020, 12, 31)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2021, 1, 3)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2021, 1, 4)).toEqual({ year: 2021, week: 1 });
    expect(isoWeek(2024, 12, 30)).toEqual({ year: 2025, week: 1 });
    expect(isoWeek(2026, 6, 15)).toEqual({ year: 2026, week: 25 });
  });

  it('groups by the wall clock of the chosen zone', () => {
    const t = Date.parse('2024-03-09T23:30:00Z');
    expect(periodKey(t, 'daily', 'UTC')).toBe('2024-03-09');
    expect(periodKey(t, 'daily', 'Europe/Berlin')).toBe('2024-03-10');
    expect(periodKey(t, 'hourly', 'Europe/Berlin')).toBe('2024-03-10T00');
    expect(periodKey(t, 'weekly', 'UTC')).toBe('2024-W10');
    expect(periodKey(t, 'weekly', 'Europe/Berlin')).toBe('2024-W10'); // Sunday 10 March is still week 10
    expect(periodKey(Date.parse('2024-03-10T23:30:00Z'), 'weekly', 'Europe/Berlin')).toBe('2024-W11');
    expect(periodKey(t, 'monthly', 'America/New_York')).toBe('2024-03');
    expect(periodKey(Date.parse('2024-12-31T23:30:00Z'), 'yearly', 'Asia/Tokyo')).toBe('2025');
  });

  it('follows daylight saving time (the day of a 23-hour day is still one day)', () => {
    // Berlin springs forward on 2024-03-31 at 02:00 → 03:00.
    expect(periodKey(Date.parse('2024-03-30T23:10:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-03-31');
    expect(periodKey(Date.parse('2024-03-31T21:50:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-03-31');
    expect(periodKey(Date.parse('2024-03-31T22:10:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-04-01');
  });
});

describe('selectByPolicy', () => {
  const UTC = { timeZone: 'UTC' };

  it('keeps the N newest with keep-last', () => {
    const pts = [at('2024-01-01T00:00:00Z'), at('2024-01-02T00:00:00Z'), at('2024-01-03T00:00:00Z')];
    const r = selectByPolicy(pts, { last: 2 }, UTC);
    expect([...r.keep.keys()]).toEqual(['2024-01-03T00:00:00Z', '2024-01-02T00:00:00Z']);
    expect(r.remove).toEqual(['2024-01-01T00:00:00Z']);
  });

  it('keeps the newest point of each of the N newest days that have one, skipping empty days', () => {
    const pts = [
      at('2024-01-01T08:00:00Z'), at('2024-01-01T20:00:00Z'),
      at('2024-01-03T09:00:00Z'), // 2 January has no backup
      at('2024-01-04T01:00:00Z'), at('2024-01-04T02:00:00Z'), at('2024-01-04T03:00:00Z'),
    ];
    const r = selectByPolicy(pts, { daily: 3 }, UTC);
    expect([...r.keep.keys()].sort()).toEqual(['2024-01-01T20:00:00Z', '2024-01-03T09:00:00Z', '2024-01-04T03:00:00Z']);
    expect(r.keep.get('2024-01-04T03:00:00Z')).toEqual(['keep-daily']);
  });

  it('unions the rules and lists every rule that keeps a point', () => {
    const pts: PointTime[] = [];
    for (let d = 1; d <= 60; d++) pts.push(at(new Date(Date.UTC(2024, 0, d, 12)).toISOString()));
    const r = selectByPolicy(pts, { last: 2, daily: 3, weekly: 2, monthly: 2 }, UTC);
    const newest = '2024-02-29T12:00:00.000Z';
    expect(r.keep.get(newest)).toEqual(['keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly']);
    expect(r.keep.get('2024-02-28T12:00:00.000Z')).toEqual(['keep-last', 'keep-daily']);
    // Week 8 of 2024 ends on Sunday 25 February; January's newest is the 31st.
    expect(r.keep.get('2024-02-25T12:00:00.000Z')).toEqual(['keep-weekly']);
    expect(r.keep.get('2024-01-31T12:00:00.000Z')).toEqual(['keep-monthly']);
    expect(r.keep.size).toBe(5);
    expect(r.remove).toHaveLength(55);
  });

  it('depends on the time zone', () => {
    // 23:30 UTC on the 9th is already the 10th in Berlin: one Berlin day holds both points.
    const pts = [at('2024-03-09T23:30:00Z', 'a'), at('2024-03-10T10:00:00Z', 'b')];
    expect(selectByPolicy(pts, { daily: 5 }, UTC).remove).toEqual([]);
    expect(selectByPolicy(pts, { daily: 5 }, { timeZone: 'Europe/Berlin' }).remove).toEqual(['a']);
  });

  it('keeps everything under an empty policy and refuses one when asked', () => {
    const pts = [at('2024-01-01T00:00:00Z'), at('2024-01-02T00:00:00Z')];
    expect(selectByPolicy(pts, {}, UTC).remove).toEqual([]);
    expect(() => validatePolicy({ daily: 0 }, { requireOne: true })).toThrow(/at least one of --keep-last/);
    expect(() => validatePolicy({ daily: -1 })).toThrow(/--keep-daily must be a whole number/);
    expect(() => validatePolicy({ weekly: 1.5 })).toThrow(/--keep-weekly/);
    expect(() => validatePolicy({ hourlyy: 1 } as KeepPolicy)).toThrow(/unknown retention rule "hourlyy"/);
    expect(() => selectByPolicy(pts, { last: 1 }, { timeZone: 'Mars/Olympus' })).toThrow(/time zone "Mars\/Olympus" is not known/);
  });

  it('agrees with a group-then-sort oracle on random histories (seeded)', () => {
    const seed = process.env.TIDEMARK_RETENTION_SEED ? Number(process.env.TIDEMARK_RETENTION_SEED) : Math.floor(Math.random() * 2 ** 31);
    console.info(`policy oracle test: seed ${seed} (TIDEMARK_RETENTION_SEED=${seed} replays it)`);
    const rnd = prng(seed);
    const units: PeriodUnit[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];
    for (let round = 0; round < 200; round++) {
      const pts: PointTime[] = [];
      let t = Date.UTC(2022, 0, 1);
      const n = 1 + Math.floor(rnd() * 80);
      for (let i = 0; i < n; i++) {
        t += Math.floor(rnd() * rnd() * 40 * 86_400_000);
        pts.push({ id: `p${i}`, time: t });
      }
      const policy: KeepPolicy = {};
      for (const f of ['last', ...units] as (keyof KeepPolicy)[]) if (rnd() < 0.5) policy[f] = Math.floor(rnd() * 6);
      const zone = rnd() < 0.5 ? 'UTC' : 'Europe/Berlin';
      const got = selectByPolicy(pts, policy, { timeZone: zone });
      // Oracle: per rule, group all points by period, newest per group, newest N groups.
      const expected = new Set<string>();
      const byTime = [...pts].sort((a, b) => b.time - a.time);
      for (const p of byTime.slice(0, policy.last ?? 0)) expected.add(p.id);
      for (const u of units) {
        const groups = new Map<string, PointTime>();
        for (const p of pts) {
          const k = periodKey(p.time, u, zone);
          const cur = groups.get(k);
          if (!cur || p.time > cur.time) groups.set(k, p);
        }
        const newestGroups = [...groups.values()].sort((a, b) => b.time - a.time).slice(0, policy[u] ?? 0);
        for (const p of newestGroups) expected.add(p.id);
      }
      const empty = Object.values(policy).every((x) => !x);
      const want = empty ? new Set(pts.map((p) => p.id)) : expected;
      expect([...got.keep.keys()].sort(), `seed ${seed} round ${round}`).toEqual([...want].sort());
      expect(got.keep.size + got.remove.length, `seed ${seed}`).toBe(pts.length);
    }
  });
});
