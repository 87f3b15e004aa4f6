// Turns what bench/profile.ts collects into short text: the trace preload's spans (trace.cjs), a V8
// CPU profile (--cpu-prof) grouped by where the code lives, and `strace -c -f` output.

import * as fs from 'node:fs';

export interface Span {
  t: number;
  ms: number;
  kind: 'qmp' | 'process' | 'fsync' | 'step';
  what: string;
}

export interface Trace {
  argv: string[];
  exitAtMs: number;
  node: { v8StartMs: number; environmentMs: number; bootstrapCompleteMs: number; loopStartMs: number };
  modulesCompiled: number;
  requireMs: number;
  spans: Span[];
}

const f = (ms: number) => `${ms.toFixed(0).padStart(5)} ms`;

/** Totals by kind and the engine steps in start order, e.g. for bench/README.md. */
export function traceSummary(tr: Trace, wallMs: number): string {
  const lines: string[] = [];
  const first = tr.spans.length ? Math.min(...tr.spans.map((s) => s.t)) : tr.exitAtMs;
  lines.push(`    wall (spawn → exit)            ${f(wallMs)}`);
  lines.push(`    node bootstrap                 ${f(tr.node.bootstrapCompleteMs)}  (process start → bootstrap complete)`);
  lines.push(`    module loading (require)       ${f(tr.requireMs)}  (${tr.modulesCompiled} files compiled)`);
  lines.push(`    first traced call at           ${f(first)}  after process start`);
  const by = (kind: Span['kind']) => tr.spans.filter((s) => s.kind === kind);
  const qmp = by('qmp');
  lines.push(`    QMP commands                   ${f(qmp.reduce((n, s) => n + s.ms, 0))}  (${qmp.length} commands, sum of round trips)`);
  const groups = new Map<string, { n: number; ms: number }>();
  for (const s of qmp) {
    const g = groups.get(s.what) ?? { n: 0, ms: 0 };
    g.n++;
    g.ms += s.ms;
    groups.set(s.what, g);
  }
  const top = [...groups.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 6);
  lines.push(`      ${top.map(([k, g]) => `${k.replace('qmp ', '')} ×${g.n} ${g.ms.toFixed(0)}`).join(', ')}`);
  const procs = by('process');
  lines.push(`    child processes                ${f(procs.reduce((n, s) => n + s.ms, 0))}  (${procs.length}: ${procs.map((p) => `${p.what.trim()} ${p.ms.toFixed(0)}`).join('; ')})`);
  const fsyncs = by('fsync');
  lines.push(`    fsync/fdatasync                ${f(fsyncs.reduce((n, s) => n + s.ms, 0))}  (${fsyncs.length} calls)`);
  lines.push('    engine steps (start offset, duration):');
  // A step called many times (e.g. one allocation request per 4 GiB window) is one line: first start, count, sum.
  const steps = new Map<string, { t: number; n: number; ms: number }>();
  for (const s of by('step')) {
    const g = steps.get(s.what) ?? { t: s.t, n: 0, ms: 0 };
    g.n++;
    g.ms += s.ms;
    steps.set(s.what, g);
  }
  for (const [what, g] of steps) lines.push(`      @${g.t.toFixed(0).padStart(5)}  ${f(g.ms)}  ${what}${g.n > 1 ? ` (×${g.n}, summed)` : ''}`);
  lines.push(`    exit at                        ${f(tr.exitAtMs)}`);
  return lines.join('\n');
}

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

/** Self time of a V8 .cpuprofile by where the code lives: Node internals, a package, Tidemark's files, GC, idle. */
export function cpuProfileSummary(file: string, topN = 8): string {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: CpuNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const buckets = new Map<string, number>();
  const fns = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    const url = n.callFrame.url;
    const where = !url
      ? n.callFrame.functionName || '(native)'
      : url.startsWith('node:')
        ? 'node internals'
        : url.includes('/node_modules/')
          ? `node_modules/${url.split('/node_modules/')[1]!.split('/').slice(0, url.includes('/node_modules/@') ? 2 : 1).join('/')}`
          : url.includes('/out/node/')
            ? 'tidemark (out/node)'
            : url;
    buckets.set(where, (buckets.get(where) ?? 0) + ms);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}`;
    fns.set(fn, (fns.get(fn) ?? 0) + ms);
  }
  const fmt = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, topN).map(([k, v]) => `${v.toFixed(0)} ${k}`).join('; ');
  return `    CPU self time by place: ${fmt(buckets)}\n    top functions: ${fmt(fns)}`;
}

/** The top lines of `strace -c -f -o FILE` (by time), plus fsync-family counts. */
export function straceSummary(file: string, topN = 6): string {
  const text = fs.readFileSync(file, 'utf8');
  const rows = text.split('\n').filter((l) => /^\s*\d/.test(l)).map((l) => l.trim().split(/\s+/));
  // % time, seconds, usecs/call, calls, [errors], syscall
  const parsed = rows.map((r) => ({ secs: Number(r[1]), calls: Number(r[3]), name: r[r.length - 1]! })).filter((r) => r.name !== 'total');
  const top = parsed.sort((a, b) => b.secs - a.secs).slice(0, topN).map((r) => `${r.name} ${(r.secs * 1000).toFixed(0)} ms/${r.calls}`);
  const syncs = parsed.filter((r) => /sync/.test(r.name)).map((r) => `${r.name} ×${r.calls}`);
  const total = rows.find((r) => r[r.length - 1] === 'total');
  return `    strace -c -f: ${total ? `${(Number(total[1]) * 1000).toFixed(0)} ms in ${total[3]} syscalls (all processes); ` : ''}top: ${top.join(', ')}; sync calls: ${syncs.join(', ') || 'none'}`;
}
