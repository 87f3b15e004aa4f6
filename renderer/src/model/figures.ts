// How much changed on a disk since a baseline checkpoint, as a figure that is either exact or says
// what it is (P: "every figure on screen is either exact or labelled as an estimate with its basis").
//
// One bitmap (the independent layout, or the chained layout's current checkpoint): its live count
// IS the changes, exactly, as of the last vm:bitmaps event. Several bitmaps (the chained layout,
// an older baseline): the changes are their union, which only the engine can compute (it merges
// them into a temporary bitmap). The page has two such answers: the dirty map (dirtymap:get, read
// whenever one of the bitmaps changes) and checkpoint:changes ("Measure changes exactly"). An
// answer is exact while the bitmaps' counts are what they were when it was asked for; after that
// it is only a lower bound (bitmaps only gain bits), and the sum of the counts is an upper bound.

import type { BitmapInfo } from '../../../shared/domain';
import { chainFingerprint } from './bitmaps';

/** An engine answer for the union of a chain: its bytes and the chain's fingerprint when asked. */
export interface MeasuredUnion {
  bytes: number;
  /** chainFingerprint() of the bitmaps when the measurement was asked for. */
  fingerprint: string;
  /** When it was read (ms since the epoch). */
  at: number;
  /** Which channel answered, for the basis text. */
  source: 'dirty map' | 'measured';
}

export type ChangedFigure =
  | { kind: 'exact'; bytes: number; basis: string }
  /** Between low and high; the engine is asked again (or can be). */
  | { kind: 'range'; low: number; high: number; basis: string }
  | { kind: 'unknown'; basis: string };

export interface ChangedInput {
  /** The bitmaps whose union is "changes since the baseline" on this disk (baselineBitmaps()). */
  bitmaps: readonly string[];
  live: readonly BitmapInfo[] | undefined;
  /** Engine answers for this baseline and disk, any age. */
  measured: readonly (MeasuredUnion | undefined)[];
}

function clock(ms: number): string {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

export function changedFigure(input: ChangedInput): ChangedFigure {
  const { bitmaps, live } = input;
  if (bitmaps.length === 0) return { kind: 'unknown', basis: 'no bitmap tracks this disk since the baseline' };
  const counts = bitmaps.map((n) => live?.find((b) => b.name === n)?.count);
  if (counts.some((c) => c === undefined)) return { kind: 'unknown', basis: `bitmap ${bitmaps[counts.findIndex((c) => c === undefined)]} is missing` };
  const cs = counts as number[];
  if (bitmaps.length === 1) return { kind: 'exact', bytes: cs[0]!, basis: `bitmap ${bitmaps[0]} (live count)` };
  const fp = chainFingerprint(bitmaps, live);
  const answers = input.measured.filter((m): m is MeasuredUnion => m !== undefined).sort((a, b) => b.at - a.at);
  const current = answers.find((m) => m.fingerprint === fp);
  const what = `merge of ${bitmaps.length} bitmaps (${bitmaps.join(' + ')})`;
  if (current) return { kind: 'exact', bytes: current.bytes, basis: `${what}, ${current.source} read at ${clock(current.at)}` };
  const sum = cs.reduce((a, b) => a + b, 0);
  const max = Math.max(...cs);
  // Bitmaps only gain bits: an older answer is a lower bound, as is the largest single bitmap.
  const low = Math.max(max, ...answers.map((m) => m.bytes));
  if (low >= sum) return { kind: 'exact', bytes: sum, basis: `${what}: only one of them has changes` };
  return { kind: 'range', low, high: sum, basis: `${what}: at least the largest bitmap${answers.length ? ' or the last reading' : ''}, at most their sum; measuring` };
}
