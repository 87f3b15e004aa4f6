// Issue 11's goals, each read from one run's figures: the side-by-side run's JSON (bench/peers.ts
// --json) and the timeline's (bench/timeline-render.ts --json). Pure: the figures in, a row per goal
// out, so the rules below are unit-tested (test/bench-goals.test.ts) and the runner (bench/goals.ts)
// only gathers and prints.

import { median, pairedByRound } from '../peers/report';
import { p95 } from '../timeline/serve';

/** The parts of a peers-*.json file this reads (a median of no pairs, NaN, is written as null). */
export interface PeersRun {
  rows: { title: string; tools: { key: string; samplesMs: (number | null | undefined)[] }[]; ratios: { of: string; to: string; pairedMedian: number | null }[] }[];
}

/** The parts of the timeline's JSON this reads. */
export interface TimelineRun {
  /** The timeline's own first render (main-thread CPU, ms), one per round on a fresh context. */
  firstRenderCpuMs?: number[];
  /**
   * Per layout, while zooming continuously: each frame's own work (its callback until its paint is done,
   * wall ms), the intervals between frames, CPU per frame; the JS heap after GC before the live events and
   * after each quarter of them.
   */
  layouts?: {
    layout: string; frameWorkMs: number[]; frameMs: number[]; cpuFrameMs: number; liveHeapMiB: number[];
    /** A drag of the plot: per frame with a move, its work (wall ms); CPU per such frame. */
    pan?: { workMs: number[]; cpuPerFrameMs: number };
  }[];
}

export interface GoalRow {
  goal: string;
  /** The figure as measured, in words ("1.04×", "152 ms"), or why there is none. */
  figure: string;
  limit: string;
  /** undefined: the run has no figure for it (a peer not installed, a row not asked for). */
  met: boolean | undefined;
  /** A 1 TiB ÷ 1 GiB goal whose extra QEMU's own steps alone exceed in this run (tibGoal). */
  floorOver?: boolean;
}

/** A frame at 60 Hz: the goal for each zoom frame's own work at the 95th percentile. */
export const FRAME_MS = 16;
/**
 * The heap counts as flat when over the second half of the live events it grows by less than this. The
 * first half is for the live count histories to fill up to their bound (samples.ts: 64 points a bitmap);
 * in the chained layout that takes ~1,000 events. bench/goals.ts sends 2,400 (20 minutes at two a second).
 */
export const FLAT_HEAP_GROWTH = 0.1;

const ROW = {
  checkpoint: 'checkpoint create',
  full: 'full push',
  incPush: 'incremental push, vda',
  incPull: 'incremental pull, vda',
  restore: 'restore of full',
  tibPush: 'incremental push, vdc',
  tibPull: 'incremental pull, vdc',
} as const;

function row(run: PeersRun | undefined, prefix: string) {
  return run?.rows.find((r) => r.title.startsWith(prefix));
}

function ratioGoal(run: PeersRun | undefined, goal: string, prefix: string, of: string, to: string, limit: number): GoalRow {
  const r = row(run, prefix)?.ratios.find((x) => x.of === of && x.to === to);
  return atMost(goal, r?.pairedMedian, limit, '×', 2, r ? undefined : `no ${of} ÷ ${to} in the run`);
}

/** Round by round, a tool's time on the 1 TiB disk and on 1 GiB in the same round. */
function diskPairs(run: PeersRun | undefined, small: string, big: string, tool: string): [number, number][] {
  return pairedByRound(row(run, big)?.tools.find((t) => t.key === tool)?.samplesMs ?? [], row(run, small)?.tools.find((t) => t.key === tool)?.samplesMs ?? []);
}

/** The median of a tool's paired 1 TiB ÷ 1 GiB, or of its 1 TiB − 1 GiB in ms. */
function diskRatio(run: PeersRun | undefined, small: string, big: string, tool: string): number | undefined {
  const p = diskPairs(run, small, big, tool);
  return p.length ? median(p.map(([b, a]) => b / a)) : undefined;
}
function diskExtraMs(run: PeersRun | undefined, small: string, big: string, tool: string): number | undefined {
  const p = diskPairs(run, small, big, tool);
  return p.length ? median(p.map(([b, a]) => b - a)) : undefined;
}

/** bench/peers/floor.ts: QEMU's own steps of the same backup, by hand, in the same rounds. */
export const QEMU_STEPS = 'qemu-steps';
/** The 1 TiB ÷ 1 GiB goal: the 1 TiB disk may cost this share of the 1 GiB time more. */
const TIB_ALLOWANCE = 0.2;

/**
 * The 1 TiB ÷ 1 GiB goal of a Tidemark tool. Beside it: its extra in ms, the same ratio of the peer
 * it is compared with, and, where the run timed QEMU's own steps, their extra against the extra the
 * goal allows (a fifth of the tool's 1 GiB time): `floorOver` when QEMU alone costs more than that.
 */
function tibGoal(run: PeersRun | undefined, goal: string, small: string, big: string, tool: string, peer: string): GoalRow {
  const g = atMost(goal, diskRatio(run, small, big, tool), 1 + TIB_ALLOWANCE, '×', 2, `no ${tool} samples on both disks`);
  if (g.met === undefined) return g;
  const notes = [`${signedMs(diskExtraMs(run, small, big, tool)!)}`];
  // A run with BENCH_VDC_STRIDE set (bench/peers/machines.ts) names its stride in the row's title.
  const apart = /, (\d+ MiB apart)$/.exec(row(run, big)?.title ?? '')?.[1];
  if (apart) notes.push(`changes ${apart}`);
  const theirs = diskRatio(run, small, big, peer);
  if (theirs !== undefined) notes.push(`${peer}: ${theirs.toFixed(2)}×`);
  const floor = diskExtraMs(run, small, big, QEMU_STEPS);
  const base = row(run, small)?.tools.find((t) => t.key === tool)?.samplesMs.filter((x): x is number => typeof x === 'number') ?? [];
  if (floor === undefined || base.length === 0) return { ...g, figure: `${g.figure} (${notes.join('; ')})` };
  const allowed = TIB_ALLOWANCE * median(base);
  notes.push(`QEMU's own steps ${signedMs(floor)} of the +${allowed.toFixed(0)} ms allowed`);
  return { ...g, figure: `${g.figure} (${notes.join('; ')})`, floorOver: floor > allowed };
}

function signedMs(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(0)} ms`;
}

function atMost(goal: string, value: number | null | undefined, limit: number, unit: string, digits: number, missing?: string): GoalRow {
  const fmt = (x: number) => `${x.toFixed(digits)}${unit === '×' ? '×' : ` ${unit}`}`;
  if (value === undefined || value === null || !Number.isFinite(value)) return { goal, figure: missing ?? 'not measured', limit: `≤ ${fmt(limit)}`, met: undefined };
  return { goal, figure: fmt(value), limit: `≤ ${fmt(limit)}`, met: value <= limit };
}

export function evaluateGoals(peers: PeersRun | undefined, timeline: TimelineRun | undefined): GoalRow[] {
  const goals: GoalRow[] = [
    ratioGoal(peers, 'checkpoint create ÷ virsh', ROW.checkpoint, 'tidemark', 'virsh', 1.5),
    ratioGoal(peers, 'full push ÷ virsh', ROW.full, 'tidemark', 'virsh', 1.0),
    ratioGoal(peers, 'full push ÷ qemu-img convert', ROW.full, 'tidemark', 'qemu-img', 1.3),
    ratioGoal(peers, 'incremental push ÷ virsh', ROW.incPush, 'tidemark', 'virsh', 0.8),
    ratioGoal(peers, 'incremental pull, CLI ÷ libvirt pull as a script', ROW.incPull, 'tidemark', 'libvirt-script', 1.0),
    ratioGoal(peers, 'incremental pull, host ÷ libvirt pull in its helper', ROW.incPull, 'tidemark-in-host', 'libvirt', 1.0),
    ratioGoal(peers, 'incremental pull ÷ virtnbdbackup', ROW.incPull, 'tidemark', 'virtnbdbackup', 0.3),
    ratioGoal(peers, 'restore of full + 5 ÷ qemu-img convert', ROW.restore, 'tidemark', 'qemu-img', 1.2),
    tibGoal(peers, 'push, 1 TiB ÷ 1 GiB', ROW.incPush, ROW.tibPush, 'tidemark', 'virsh'),
    tibGoal(peers, 'pull, 1 TiB ÷ 1 GiB, CLI', ROW.incPull, ROW.tibPull, 'tidemark', 'libvirt-script'),
    tibGoal(peers, 'pull, 1 TiB ÷ 1 GiB, host', ROW.incPull, ROW.tibPull, 'tidemark-in-host', 'libvirt'),
  ];
  const first = timeline?.firstRenderCpuMs ?? [];
  goals.push(atMost('timeline first render, 1,000 × 8 (median CPU)', first.length ? median(first) : undefined, 150, 'ms', 0));
  for (const l of timeline?.layouts ?? []) {
    // The work is what the page does per frame; the intervals (wall) also hold every other process's
    // turn on the machine's 2 cores, so they are shown, not judged.
    const frame = atMost(`timeline zoom frames, ${l.layout} (p95 of each frame's work)`, l.frameWorkMs.length ? p95(l.frameWorkMs) : undefined, FRAME_MS, 'ms', 1);
    goals.push(frame.met === undefined ? frame : { ...frame, figure: `${frame.figure} (CPU ${l.cpuFrameMs.toFixed(1)} ms a frame; p95 interval ${p95(l.frameMs).toFixed(1)} ms)` });
    const pan = atMost(`timeline pan frames, ${l.layout} (p95 of each frame's work)`, l.pan?.workMs.length ? p95(l.pan.workMs) : undefined, FRAME_MS, 'ms', 1);
    goals.push(pan.met === undefined ? pan : { ...pan, figure: `${pan.figure} (CPU ${l.pan!.cpuPerFrameMs.toFixed(1)} ms a frame)` });
    goals.push(flatHeap(`timeline memory over live updates, ${l.layout}`, l.liveHeapMiB));
  }
  return goals;
}

/** `samples`: the heap before the live events, then after each quarter of them. */
function flatHeap(goal: string, samples: number[]): GoalRow {
  const limit = `flat (< ${FLAT_HEAP_GROWTH * 100} % growth over the second half)`;
  if (samples.length < 3) return { goal, figure: 'not measured', limit, met: undefined };
  const half = samples[Math.floor((samples.length - 1) / 2)]!;
  const growth = (samples[samples.length - 1]! - half) / half;
  return { goal, figure: `${samples.map((q) => q.toFixed(1)).join(' → ')} MiB`, limit, met: growth < FLAT_HEAP_GROWTH };
}

/** The table as text, a line per goal. */
export function formatGoals(goals: GoalRow[]): string {
  const w = Math.max(...goals.map((g) => g.goal.length)) + 2;
  const f = Math.max(...goals.map((g) => g.figure.length)) + 2;
  const mark = (g: GoalRow) => (g.met === undefined ? 'no figure' : g.met ? 'met' : g.floorOver ? "NOT met: QEMU's own steps alone cost more" : 'NOT met');
  const lines = goals.map((g) => `  ${g.goal.padEnd(w)}${g.figure.padEnd(f)}${g.limit.padEnd(48)}${mark(g)}`);
  const met = goals.filter((g) => g.met).length;
  return [...lines, `\n  ${met} of ${goals.length} goals met${goals.some((g) => g.met === undefined) ? ` (${goals.filter((g) => g.met === undefined).length} without a figure)` : ''}`].join('\n');
}
