// Rows of the side-by-side bench: samples per tool and round, paired ratios (Tidemark's time over a
// peer's in the same round, then the median of those), the text table and the --json file.

import * as fs from 'node:fs';
import * as path from 'node:path';

export type Role = 'tidemark' | 'peer' | 'reference';

/**
 * Where a tool's time starts: `process` = a fresh process per run (a CLI, a script, timed spawn to
 * exit); `resident` = inside a process already running with its connections open. Ratios pair only
 * tools of one footing; a tool without one pairs with any.
 */
export type Footing = 'process' | 'resident';

export interface Tool {
  key: string;
  label: string;
  role: Role;
  footing?: Footing;
}

/** The (Tidemark, other) pairs whose ratio is reported: every Tidemark tool against each other tool of its footing. */
export function comparedPairs(tools: readonly Tool[]): [Tool, Tool][] {
  const same = (a: Tool, b: Tool) => a.footing === undefined || b.footing === undefined || a.footing === b.footing;
  return tools.filter((t) => t.role === 'tidemark').flatMap((a) => tools.filter((b) => b.role !== 'tidemark' && same(a, b)).map((b): [Tool, Tool] => [a, b]));
}

export class Row {
  /** tool key → sample per round (undefined where a round has none). */
  readonly samples = new Map<string, (number | undefined)[]>();
  readonly notes: string[] = [];
  readonly loads: string[] = [];
  /** Extra per-sample details (steps of a pull, bytes), for the JSON file. */
  readonly details = new Map<string, unknown[]>();

  constructor(readonly title: string, readonly tools: Tool[]) {
    for (const t of tools) this.samples.set(t.key, []);
  }

  add(key: string, round: number, ms: number, detail?: unknown): void {
    this.samples.get(key)![round] = ms;
    if (detail !== undefined) {
      if (!this.details.has(key)) this.details.set(key, []);
      this.details.get(key)![round] = detail;
    }
  }

  values(key: string): number[] {
    return (this.samples.get(key) ?? []).filter((x): x is number => x !== undefined);
  }

  /** Per-round ratios a/b for the rounds where both have a sample. */
  paired(a: string, b: string): number[] {
    return pairedByRound(this.samples.get(a) ?? [], this.samples.get(b) ?? []).map(([x, y]) => x / y);
  }
}

/** [x, y] for each round where both series have a sample (a missing one: undefined, or null in a JSON file). */
export function pairedByRound(xs: readonly (number | null | undefined)[], ys: readonly (number | null | undefined)[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    const x = xs[i];
    const y = ys[i];
    if (typeof x === 'number' && typeof y === 'number') out.push([x, y]);
  }
  return out;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function range(xs: number[], digits: number): string {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? `[${s[0]!.toFixed(digits)}..${s[s.length - 1]!.toFixed(digits)}]` : '';
}

/** The row as text: each tool's median [min..max], then Tidemark's paired ratio to each peer and to the reference. */
export function formatRow(row: Row): string {
  const lines = [`\n${row.title}`];
  const w = Math.max(...row.tools.map((t) => t.label.length)) + 2;
  for (const t of row.tools) {
    const xs = row.values(t.key);
    lines.push(`  ${t.label.padEnd(w)} ${xs.length ? `${median(xs).toFixed(0).padStart(6)} ms ${range(xs, 0)}` : '   (no sample)'}`);
  }
  for (const [tm, p] of comparedPairs(row.tools)) {
    const r = row.paired(tm.key, p.key);
    if (r.length === 0) continue;
    const what = p.role === 'reference' ? `${p.label} (reference)` : p.label;
    lines.push(`  ${`${tm.label} ÷ ${what}`.padEnd(w + 28)} ${median(r).toFixed(2).padStart(6)}× paired median ${range(r, 2)}, n=${r.length}`);
  }
  for (const n of row.notes) lines.push(`  note: ${n}`);
  if (row.loads.length) lines.push(`  load average during the rounds: ${row.loads.join(' | ')}`);
  return lines.join('\n');
}

export function rowJson(row: Row): unknown {
  return {
    title: row.title,
    tools: row.tools.map((t) => ({ ...t, samplesMs: row.samples.get(t.key), medianMs: median(row.values(t.key)), details: row.details.get(t.key) })),
    ratios: comparedPairs(row.tools).map(([a, b]) => ({ of: a.key, to: b.key, paired: row.paired(a.key, b.key), pairedMedian: median(row.paired(a.key, b.key)) })),
    notes: row.notes,
    loads: row.loads,
  };
}

/** Writes the run to bench/results/peers-<time>.json (the folder is ignored by git); returns the path. */
export function writeJson(meta: Record<string, unknown>, rows: Row[]): string {
  const dir = path.join(__dirname, '..', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `peers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ ...meta, rows: rows.map(rowJson) }, null, 2)}\n`);
  return file;
}

/**
 * The items in an order drawn from `seed` (Fisher–Yates, mulberry32): the same seed, the same order.
 * A fixed cyclic order gives every step the same predecessor in every round, and a step can pay for the
 * one before it: the push that always followed virtnbdbackup had its QEMU job take ~150–200 ms instead
 * of ~20–60 (bench/README.md, "Phase 9").
 */
export function shuffled<T>(items: T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
