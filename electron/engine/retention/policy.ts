// PURE: which backup points a grandfather-father-son policy keeps, in the vocabulary of restic,
// borg and Proxmox Backup Server (keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly,
// keep-yearly), for the points of one VM.
//
// Semantics (restic's; the rules are independent and a point kept by any rule is kept):
//   keep-last N     the N newest points;
//   keep-<unit> N   for each of the N newest periods (hours, days, ISO weeks, months, years) that
//                   hold at least one point, the newest point of that period.
// PBS differs in one detail: a rule there skips periods already covered by an earlier rule, so it
// can keep more points for the same numbers. Each kept point carries the rules that keep it
// (like PBS's "keep-daily" marks), which the dry-run table and the app show.
//
// A point's time is its backup's start time (when the point in time was taken), in the time zone
// of periods.ts (host local by default, injectable).

import type { KeepPolicy } from '../../../shared/contract';
import { PERIOD_UNITS, hostTimeZone, periodKey, validateTimeZone, type PeriodUnit } from './periods';

// The policy's shape is shared with the renderer (the simulator): shared/contract/retention.ts.
export type { KeepPolicy };

export type KeepRule = 'keep-last' | `keep-${PeriodUnit}`;

export const POLICY_FIELDS: readonly (keyof KeepPolicy)[] = ['last', ...PERIOD_UNITS];

export interface PointTime {
  id: string;
  /** Milliseconds since the epoch. */
  time: number;
}

export interface PolicyResult {
  /** Kept point → the rules that keep it (in rule order). */
  keep: Map<string, KeepRule[]>;
  /** Points no rule keeps, newest first. */
  remove: string[];
}

/** The CLI flag of a policy field ("--keep-daily"). */
export function policyFlag(field: keyof KeepPolicy): string {
  return `--keep-${field}`;
}

/** Checks a policy: counts are whole numbers ≥ 0; with `requireOne`, at least one is > 0. Returns a clean copy. */
export function validatePolicy(p: KeepPolicy, options: { requireOne?: boolean } = {}): KeepPolicy {
  const out: KeepPolicy = {};
  for (const [key, value] of Object.entries(p) as [keyof KeepPolicy, unknown][]) {
    if (!POLICY_FIELDS.includes(key)) throw new Error(`unknown retention rule ${JSON.stringify(key)} (known: ${POLICY_FIELDS.map(policyFlag).join(', ')})`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 1_000_000) {
      throw new Error(`${policyFlag(key)} must be a whole number from 0 to 1000000, got ${JSON.stringify(value)}`);
    }
    if (value > 0) out[key] = value;
  }
  if (options.requireOne && Object.keys(out).length === 0) {
    throw new Error(`a retention policy needs at least one of ${POLICY_FIELDS.map(policyFlag).join(', ')} above 0 (a policy that keeps nothing would delete every backup)`);
  }
  return out;
}

/** True when the policy keeps at least one point per rule (some count above 0). */
export function policyIsEmpty(p: KeepPolicy): boolean {
  return POLICY_FIELDS.every((f) => !(p[f] ?? 0));
}

function newestFirst(points: PointTime[]): PointTime[] {
  return [...points].sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/**
 * Applies the policy. An empty policy keeps every point (nothing is decided); callers that prune
 * must refuse an empty policy first (validatePolicy with requireOne).
 */
export function selectByPolicy(points: PointTime[], policy: KeepPolicy, options: { timeZone?: string } = {}): PolicyResult {
  const zone = validateTimeZone(options.timeZone ?? hostTimeZone());
  const p = validatePolicy(policy);
  const sorted = newestFirst(points);
  const keep = new Map<string, KeepRule[]>();
  const mark = (id: string, rule: KeepRule) => {
    const rules = keep.get(id) ?? [];
    rules.push(rule);
    keep.set(id, rules);
  };
  if (policyIsEmpty(p)) {
    for (const pt of sorted) keep.set(pt.id, []);
    return { keep, remove: [] };
  }
  for (const pt of sorted.slice(0, p.last ?? 0)) mark(pt.id, 'keep-last');
  for (const unit of PERIOD_UNITS) {
    const n = p[unit] ?? 0;
    if (n === 0) continue;
    const seen = new Set<string>();
    for (const pt of sorted) {
      const key = periodKey(pt.time, unit, zone);
      if (seen.has(key)) continue;
      if (seen.size === n) break;
      seen.add(key);
      mark(pt.id, `keep-${unit}`);
    }
  }
  return { keep, remove: sorted.filter((pt) => !keep.has(pt.id)).map((pt) => pt.id) };
}
