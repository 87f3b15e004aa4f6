// Timeline rendering at scale, in Debian's Chromium (playwright-core): 1,000 checkpoints × 8 disks
// of synthetic data, for each bitmap layout. The REAL built renderer (out/renderer) is served by a
// tiny static server; a synthetic AppApi is injected as window.api (the Electron preload's slot),
// so no engine or QEMU is involved. Prints figures, decides nothing:
//   - time to first render and the page's DOM size: the synthetic API holds the VM's data until the
//     page is idle, so the figures split into before the data (navigation → the app waiting for it)
//     and the timeline's own first render (data released → timeline drawn; bench/timeline/first-render.ts)
//   - per zoom step: React render + commit + layout, measured from the wheel event to the commit
//   - frame interval while zooming continuously (one wheel event per animation frame), and each
//     frame's own work (its callback until its style, layout and paint are done)
//   - a drag of the plot (a pan): each frame's work (bench/timeline/pan.ts)
//   - the render when the view settles after that zoom (a build that moves the plot by one
//     transform during a gesture renders the new window only then; data-live-span-ms is the
//     window the gesture has reached)
//   - ingest of one vm:bitmaps event carrying all 8,000 bitmaps
//   - main-thread CPU time of each of those (CDP Performance metrics in the threadTicks domain):
//     unlike wall-clock times they do not grow when other processes load the machine
//   - renderer JS heap (CDP Performance.getMetrics), and over --live-events vm:bitmaps events
//     (default 1,200: ten minutes at two a second, sent back to back) whether it stays flat
//   - with --profile: the functions that took the most CPU (CDP Profiler, self time) during the
//     first render and during the zoom steps — build with --minify false to read the names
//   - with --ab DIR,DIR[,…] --rounds N: only the first render, of each build in turn (order
//     alternating per round), each on a fresh browser context (cold caches), as the page from
//     navigation and as the timeline's own first render (--kinds page,own; bench/timeline/ab.ts);
//     CPU to the first drawn frame and until the page is idle (work deferred past the first frame
//     counts there), medians [min..max], paired ratios against the first build, and the load
//     average. --trace DIR also writes a Chrome trace of each build's first round there
//     (chrome://tracing, Perfetto), or with --profile a V8 CPU profile (.cpuprofile: Chrome
//     DevTools' Performance panel opens it); for 'own', from the data's release on. --third-start:
//     each measurement at the third start of a browser on one profile folder (its HTTP and V8 code
//     caches) instead of a fresh incognito context.
//     --answer-ms N: in 'page', the VM's data answers N ms after it is asked (the host's time).
//   - --json FILE: also write the figures there (bench/goals.ts reads them)
//   - BENCH_FRAME_TRACE=PREFIX: a Chrome trace of the continuous zoom, PREFIX-<layout>.json
// Run: npx tsx bench/timeline-render.ts [--checkpoints N] [--disks N] [--steps N] [--live-events N] [--screenshots DIR] [--profile] [--json FILE]
//      npx tsx bench/timeline-render.ts --ab MAIN_BUILD,out/renderer[,floor] [--rounds 6] [--kinds page,own] [--third-start] [--answer-ms N] [--layout independent|chained] [--trace DIR] [--screenshots DIR] [--json FILE]

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { abRun } from './timeline/ab';
import { panFrames, settled, type PanFrames } from './timeline/pan';
import type { FirstRenderKind } from './timeline/first-render';
import { median, p95, serve } from './timeline/serve';
import { HELD_CHANNELS, installSyntheticApi } from './timeline/synthetic-api';

const root = path.resolve(__dirname, '..');
/** BENCH_RENDERER_DIR: measure another build (e.g. of main, for before/after figures). */
const rendererDir = process.env.BENCH_RENDERER_DIR ? path.resolve(process.env.BENCH_RENDERER_DIR) : path.join(root, 'out/renderer');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}
const N = arg('checkpoints', 1000);
const DISKS = arg('disks', 8);
const STEPS = arg('steps', 40);
const LIVE = arg('live-events', 1200);
const PROFILE = process.argv.includes('--profile');

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }

/** The top functions by self time of a CDP CPU profile, as lines. */
function topSelf(profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] }, n = 18): string[] {
  const self = new Map<string, number>();
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  samples.forEach((id, i) => {
    const node = byId.get(id)!;
    const f = node.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
    const dt = (deltas[i] ?? 0) / 1000;
    total += dt;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, ms]) => `${ms.toFixed(1).padStart(8)} ms ${(100 * ms / total).toFixed(1).padStart(5)} %  ${k}`);
}
/** --screenshots DIR: also save what each layout looks like, fitted and zoomed in. */
const SHOTS = process.argv.includes('--screenshots') ? process.argv[process.argv.indexOf('--screenshots') + 1] : undefined;

function newest(p: string): number {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...fs.readdirSync(p).map((n) => newest(path.join(p, n))));
}

function ensureBuilt(): void {
  if (process.env.BENCH_RENDERER_DIR) return;
  const built = fs.statSync(path.join(rendererDir, 'index.html'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (built >= Math.max(newest(path.join(root, 'renderer/src')), newest(path.join(root, 'shared')))) return;
  console.log('building out/renderer …');
  execFileSync(process.execPath, [path.join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'renderer/vite.config.mts', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' });
}

interface Figures {
  layout: string;
  /** Wall: navigation → the app has asked for the VM's data (held until the page is idle). */
  toDataAskedMs: number;
  /** Wall: the data released → the timeline drawn. */
  loadToDrawnMs: number;
  domNodes: number;
  svgElements: number;
  stepMs: number[];
  stepInMs: number[];
  frameMs: number[];
  /** Per frame of the continuous zoom: its callback → its style, layout and paint done (wall). */
  frameWorkMs: number[];
  /** A drag of the plot: per frame with a move, its work and the intervals (bench/timeline/pan.ts). */
  pan: PanFrames;
  ingestMs: number[];
  heapMiB: number;
  /** Main-thread CPU (ms): navigation → drawn (held data: before + own), per zoom step, per frame of continuous zoom. */
  cpuFirstMs: number;
  /** Main-thread CPU of the timeline's own first render: the data released → drawn. */
  cpuOwnMs: number;
  cpuStepMs: number;
  cpuFrameMs: number;
  /** Main-thread CPU from the last wheel event of the continuous zoom until the view settled. */
  cpuSettleMs: number;
  /** JS heap after GC (MiB) every quarter of the live-update run. */
  liveHeapMiB: number[];
  /** CPU per zoom step by kind: Script, RecalcStyle, Layout (ms). */
  stepParts: Record<string, number>;
  /** CPU of the first render by kind. */
  firstParts: Record<string, number>;
}

/** BENCH_FRAME_TRACE: what a frame's trace holds (its tasks, style, layout, paint, V8 and GC). */
const FRAME_TRACE_CATEGORIES = ['devtools.timeline', 'v8', 'v8.execute', 'blink', 'cc', 'disabled-by-default-devtools.timeline', 'disabled-by-default-v8.gc'];

async function measure(page: Page, url: string, layout: 'independent' | 'chained'): Promise<Figures> {
  // tsx (esbuild) wraps named functions in __name(); functions shipped to the page need it too.
  await page.addInitScript({ content: 'window.__name = (f) => f;' });
  await page.addInitScript(installSyntheticApi, { layout, n: N, disks: DISKS, hold: true });
  const cdp = await page.context().newCDPSession(page);
  // threadTicks: TaskDuration is the main thread's CPU time, not wall time.
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
  const metric = async (name: string) => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === name)?.value ?? NaN;
  const cpu = async () => (await metric('TaskDuration')) * 1000;
  const cpu0 = await cpu();
  const parts = async () => Object.fromEntries(await Promise.all(['ScriptDuration', 'RecalcStyleDuration', 'LayoutDuration'].map(async (k) => [k, (await metric(k)) * 1000] as const)));
  const first0 = await parts();
  if (PROFILE) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
  }
  await page.goto(url);
  // The VM's data waits until the page is idle: what follows its release is the timeline's own.
  await page.waitForFunction((n) => (window as unknown as { __heldAsked: number }).__heldAsked === n, HELD_CHANNELS.length, { polling: 20, timeout: 60_000 });
  for (let quiet = 0, last = await cpu(), t = 0; quiet < 2 && t < 50; t++) {
    await page.waitForTimeout(100);
    const now = await cpu();
    quiet = now - last < 1.5 ? quiet + 1 : 0;
    last = now;
  }
  const cpuHeld = await cpu();
  await page.evaluate(() => (window as unknown as { __releaseData(): void }).__releaseData());
  await page.waitForFunction((disks) => document.querySelectorAll('g.band').length === disks && document.querySelectorAll('[role="treeitem"]').length > 0, DISKS, { polling: 'raf', timeout: 120_000 });
  const first = await page.evaluate(() => ({ at: performance.now(), ...(window as unknown as { __dataAskedAt: number; __dataReleasedAt: number }) }));
  const cpuFirstMs = (await cpu()) - cpu0;
  const cpuOwnMs = (await cpu()) - cpuHeld;
  const first1 = await parts();
  const firstParts = Object.fromEntries(Object.keys(first1).map((k) => [k.replace('Duration', ''), first1[k]! - first0[k]!]));
  if (PROFILE) {
    const { profile } = await cdp.send('Profiler.stop');
    console.log(`\n[${layout}] first render, top self time:\n${topSelf(profile).join('\n')}`);
  }

  // Live samples: 30 events, each with every bitmap of every disk (as the host sends them).
  const ingestMs = await page.evaluate(async () => {
    const w = window as unknown as { __emitBitmaps(at: number, extra: number): void };
    const out: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      w.__emitBitmaps(Date.now() - (30 - i) * 10_000, i * 65536 * 16);
      out.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 0));
    }
    return out;
  });
  await page.waitForTimeout(300);
  if (SHOTS) {
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, `timeline-bench-${layout}.png`) });
  }
  const size = await page.evaluate(() => ({ dom: document.getElementsByTagName('*').length, svg: document.querySelectorAll('svg.timeline-svg *').length }));
  if (process.env.BENCH_DEBUG) {
    // Which parts of the timeline the elements belong to.
    console.log(layout, await page.evaluate(() => {
      const out: Record<string, number> = {};
      for (const el of document.querySelectorAll('svg.timeline-svg *')) {
        const owner = el.closest('.tree-layer, .backup-mark, .span, .missing-mark, .dirty-area, .heatmap, .band-gutter, .axis, .hm-gutter, .band') as Element | null;
        const key = owner ? (owner.getAttribute('class') ?? '').split(' ')[0]! : 'other';
        out[key] = (out[key] ?? 0) + 1;
      }
      return out;
    }));
  }

  // Zoom steps: wheel → React render → commit (data-span-ms changes, or during a gesture the
  // plot's data-live-span-ms) → forced layout.
  const cpuSteps0 = await cpu();
  const parts0 = await parts();
  if (PROFILE) await cdp.send('Profiler.start');
  const steps = await page.evaluate(async (n) => {
    const svg = document.querySelector('svg.timeline-svg') as SVGSVGElement;
    const r = svg.getBoundingClientRect();
    const at = { clientX: r.left + r.width * 0.6, clientY: r.top + 60 };
    const step = (deltaY: number) => new Promise<number>((resolve) => {
      const t = performance.now();
      const mo = new MutationObserver(() => {
        mo.disconnect();
        svg.getBoundingClientRect(); // include style + layout
        void document.body.offsetHeight;
        resolve(performance.now() - t);
      });
      mo.observe(svg, { attributes: true, subtree: true, attributeFilter: ['data-span-ms', 'data-live-span-ms'] });
      svg.dispatchEvent(new WheelEvent('wheel', { deltaY, bubbles: true, cancelable: true, ...at }));
    });
    const zoomIn: number[] = [];
    const all: number[] = [];
    const span = () => Number(svg.querySelector('[data-live-span-ms]')?.getAttribute('data-live-span-ms') ?? svg.getAttribute('data-span-ms'));
    const before = span();
    for (let i = 0; i < n; i++) zoomIn.push(await step(-120)); // in: fewer elements on screen
    // A bench that measures nothing is worse than none: the wheel must really have zoomed.
    if (!(span() < before * 0.5)) throw new Error(`wheel zoom did not zoom (span ${before} → ${span()})`);
    for (let i = 0; i < n; i++) all.push(await step(120)); // back out to everything
    return { zoomIn, zoomOut: all };
  }, STEPS);
  const cpuStepMs = ((await cpu()) - cpuSteps0) / (2 * STEPS);
  const parts1 = await parts();
  const stepParts = Object.fromEntries(Object.keys(parts1).map((k) => [k.replace('Duration', ''), (parts1[k]! - parts0[k]!) / (2 * STEPS)]));
  if (PROFILE) {
    const { profile } = await cdp.send('Profiler.stop');
    console.log(`\n[${layout}] zoom steps, top self time:\n${topSelf(profile).join('\n')}`);
  }

  // Continuous zoom: one wheel event per animation frame; the interval between frames.
  const cpuFrames0 = await cpu();
  const frameTrace = process.env.BENCH_FRAME_TRACE;
  if (frameTrace) await page.context().browser()!.startTracing(page, { path: `${frameTrace}-${layout}.json`, categories: FRAME_TRACE_CATEGORIES });
  const frames = await page.evaluate(async (n) => {
    const svg = document.querySelector('svg.timeline-svg') as SVGSVGElement;
    const r = svg.getBoundingClientRect();
    const at = { clientX: r.left + r.width * 0.5, clientY: r.top + 60 };
    const times: number[] = [];
    // A frame's own work: from its animation-frame callback to a message posted there, which runs once
    // the frame's style, layout and paint (and React's task the wheel event queued first) are done.
    const work: number[] = [];
    const channel = new MessageChannel();
    let started = 0;
    channel.port1.onmessage = () => work.push(performance.now() - started);
    await new Promise<void>((done) => {
      let i = 0;
      const tick = (ts: number) => {
        times.push(ts);
        if (i >= n * 2) return done();
        started = performance.now();
        svg.dispatchEvent(new WheelEvent('wheel', { deltaY: i < n ? -60 : 60, bubbles: true, cancelable: true, ...at }));
        channel.port2.postMessage(0);
        i++;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    channel.port1.close();
    return { intervals: times.slice(1).map((t, k) => t - times[k]!), work };
  }, STEPS);
  if (frameTrace) await page.context().browser()!.stopTracing();
  const frameMs = frames.intervals;
  const frameWorkMs = frames.work;
  const cpuFrameMs = ((await cpu()) - cpuFrames0) / frameMs.length;
  // The view settles (labels back; with a gesture transform, the new window rendered): CPU from the
  // last wheel event until it has, idle wait included.
  const cpuSettle0 = await cpu();
  await settled(page);
  const cpuSettleMs = (await cpu()) - cpuSettle0;
  const pan = await panFrames(page, STEPS, cpu);

  if (SHOTS) {
    await page.mouse.move(900, 300);
    for (let i = 0; i < 12; i++) await page.mouse.wheel(0, -240);
    // During the gesture (before it settles), then settled.
    const live = await page.evaluate(() => document.querySelector('[data-live-span-ms]') !== null);
    await page.screenshot({ path: path.join(SHOTS, `timeline-bench-${layout}-zooming.png`) });
    console.log(layout, `zooming screenshot: ${live ? 'during the gesture' : 'already settled'}`);
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(SHOTS, `timeline-bench-${layout}-zoomed.png`) });
    // Bands far from the view are drawn without lanes (visible-rows.ts): scrolled to the last band,
    // it must be drawn in full.
    await page.evaluate(() => document.querySelector('.timeline-scroll')!.scrollTo({ top: 1e6 }));
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(SHOTS, `timeline-bench-${layout}-scrolled.png`) });
    if (process.env.BENCH_DEBUG) {
      console.log(layout, 'scrolled to the end, backup marks and spans per band:', await page.evaluate(() => [...document.querySelectorAll('g.band')].map((b) => `${b.getAttribute('data-disk')} ${b.querySelectorAll('.backup-mark').length}/${b.querySelectorAll('.span').length}`).join(', ')));
    }
  }
  const heapNow = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    return (await metric('JSHeapUsedSize')) / 1024 / 1024;
  };
  const heap = await heapNow();

  // Live updates: LIVE events, half a second apart in event time (ten minutes by default), every
  // count growing; the heap after GC every quarter. Flat means the history is bounded.
  const liveHeapMiB = [heap];
  const t0 = Date.now();
  for (let q = 0; q < 4; q++) {
    await page.evaluate(async ({ from, n, t0 }) => {
      const w = window as unknown as { __emitBitmaps(at: number, extra: number): void };
      for (let i = from; i < from + n; i++) {
        w.__emitBitmaps(t0 + i * 500, (i + 40) * 65536 * 16);
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 0));
      }
    }, { from: Math.floor((q * LIVE) / 4), n: Math.floor(((q + 1) * LIVE) / 4) - Math.floor((q * LIVE) / 4), t0 });
    liveHeapMiB.push(await heapNow());
  }
  return {
    layout, toDataAskedMs: first.__dataAskedAt, loadToDrawnMs: first.at - first.__dataReleasedAt, cpuOwnMs, domNodes: size.dom, svgElements: size.svg,
    stepMs: steps.zoomOut, stepInMs: steps.zoomIn, frameMs, frameWorkMs, pan, ingestMs, heapMiB: heap, cpuFirstMs, cpuStepMs, cpuFrameMs, cpuSettleMs, liveHeapMiB, stepParts, firstParts,
  };
}

const ARG = (name: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : undefined);

async function main() {
  const ab = ARG('ab');
  const json = ARG('json');
  if (ab) {
    const runs = await abRun({
      dirs: ab.split(','), rounds: Number(ARG('rounds') ?? 6), layout: (ARG('layout') ?? 'independent') as 'independent' | 'chained',
      kinds: (ARG('kinds') ?? 'page,own').split(',') as FirstRenderKind[], n: N, disks: DISKS, traceDir: ARG('trace'), shotsDir: SHOTS, profile: PROFILE,
      ...(ARG('answer-ms') ? { answerMs: Number(ARG('answer-ms')) } : {}), thirdStart: process.argv.includes('--third-start'),
    });
    // The first build's own first renders, for bench/goals.ts.
    if (json) writeJson(json, { firstRenderCpuMs: runs.get('own')?.[0]?.map((r) => r.cpuMs), runs: Object.fromEntries(runs) });
    return;
  }
  ensureBuilt();
  const server = await serve(rendererDir);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--enable-precise-memory-info'],
  });
  const results: Figures[] = [];
  try {
    for (const layout of ['independent', 'chained'] as const) {
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      results.push(await measure(page, url, layout));
      if (errors.length) console.log(`  page errors (${layout}): ${errors.join(' | ')}`);
      await page.close();
    }
  } finally {
    await browser.close();
    server.close();
  }
  const f = (x: number) => x.toFixed(1);
  console.log(`\ntimeline render bench: ${N} checkpoints × ${DISKS} disks, Chromium ${browser.version()}, viewport 1440×900`);
  console.log('layout       nav→data asked  data→drawn  DOM nodes  SVG elems  zoom step med/p95 (all|zoomed in)  frame med/p95  ingest/event med  JS heap');
  for (const r of results) {
    console.log(
      `${r.layout.padEnd(12)} ${f(r.toDataAskedMs).padStart(11)} ms ${f(r.loadToDrawnMs).padStart(8)} ms ${String(r.domNodes).padStart(10)} ${String(r.svgElements).padStart(10)}` +
      `   ${f(median(r.stepMs))}/${f(p95(r.stepMs))} | ${f(median(r.stepInMs))}/${f(p95(r.stepInMs))} ms`.padEnd(40) +
      `${f(median(r.frameMs))}/${f(p95(r.frameMs))} ms`.padEnd(15) + `${f(median(r.ingestMs))} ms`.padStart(12) + `${f(r.heapMiB).padStart(10)} MiB`,
    );
  }
  console.log('(wall; the data is held until the page is idle, then released: data→drawn is the timeline\'s own first render; zoom step: wheel event → React commit + layout, paint excluded; frame: rAF interval during continuous zoom)');
  console.log('\nmain-thread CPU time (not inflated by other load on the machine) and the heap over live updates');
  console.log('layout       first render (own)   zoom step   zoom frame   settle   heap after GC, every quarter of the live events');
  for (const r of results) {
    console.log(`${r.layout.padEnd(12)} ${f(r.cpuFirstMs).padStart(9)} (${f(r.cpuOwnMs)}) ms ${f(r.cpuStepMs).padStart(8)} ms ${f(r.cpuFrameMs).padStart(9)} ms ${f(r.cpuSettleMs).padStart(6)} ms   ${r.liveHeapMiB.map(f).join(' → ')} MiB (${LIVE} events)`);
    console.log(`${''.padEnd(12)} first render: ${Object.entries(r.firstParts).map(([k, v]) => `${k} ${f(v)} ms`).join(', ')}; a zoom step: ${Object.entries(r.stepParts).map(([k, v]) => `${k} ${f(v)} ms`).join(', ')}`);
    console.log(`${''.padEnd(12)} a zoom frame's own work (its callback → its paint done, wall): median ${f(median(r.frameWorkMs))} ms, p95 ${f(p95(r.frameWorkMs))} ms`);
    console.log(`${''.padEnd(12)} a pan frame's (a drag, ${r.pan.workMs.length} frames with a move; start → paint done, wall): median ${f(median(r.pan.workMs))} ms, p95 ${f(p95(r.pan.workMs))} ms; CPU ${f(r.pan.cpuPerFrameMs)} ms a frame`);
  }
  if (json) writeJson(json, { layouts: results, liveEvents: LIVE });
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  console.log(`\nfigures: ${file}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
