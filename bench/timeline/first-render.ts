// One cold first render of one build on a fresh browser context (no HTTP or V8 code cache), measured
// in one of two ways:
//   - 'page': from before navigation to the animation frame where the timeline is drawn (the whole
//     page: Chromium, the bench's own script, the app's start, the data, the timeline);
//   - 'own': the timeline's own first render. The synthetic API holds the VM's data (it is generated
//     and cloned when asked, then waits); once the page has asked for all of it and its main thread
//     is quiet, the CPU counters are read and the data released: from there to the drawn frame is the
//     store's intake, buildModel, React's render and commit of the timeline, style, layout and paint.
// CPU is CDP's TaskDuration in the threadTicks domain (main-thread CPU, not inflated by other load).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { HELD_CHANNELS, installSyntheticApi } from './synthetic-api';

export type Layout = 'independent' | 'chained';
export type FirstRenderKind = 'page' | 'own';

export interface FirstRender {
  kind: FirstRenderKind;
  /** CPU from the start ('page': before navigation; 'own': the data's release) to the drawn frame. */
  cpuMs: number;
  /** Same start, until 300 ms pass without a main-thread task (work put off past the frame counts). */
  idleCpuMs: number;
  /** Script, RecalcStyle, Layout CPU in the same window as cpuMs. */
  parts: Record<string, number>;
  dom: number;
  svg: number;
  load: number;
  /** Wall: 'page' navigation → drawn; 'own' release → drawn. */
  wallMs: number;
  /** 'own' only: CPU from before navigation until the data was released (the app idle, waiting). */
  beforeCpuMs?: number;
}

export interface FirstRenderOptions {
  kind: FirstRenderKind;
  layout: Layout;
  n: number;
  disks: number;
  /** Chrome trace of the run ('own': from the release on). */
  trace?: string;
  shot?: string;
  /** V8 CPU profile of the run ('own': from the release on). */
  cpuProfile?: string;
  /** At an admin's third start of the app (openContext), not on a fresh incognito context. */
  thirdStart?: boolean;
  /** 'page': the VM's data answers this long after it is asked (the host's time; default at once). */
  answerMs?: number;
}

const COMMIT_HOOK = `window.__commits = [];
window.__REACT_DEVTOOLS_GLOBAL_HOOK__ = { supportsFiber: true, renderers: new Map(), isDisabled: false, checkDCE() {}, inject() { return 1; },
  onCommitFiberUnmount() {}, onPostCommitFiberRoot() {},
  onCommitFiberRoot(id, root) {
    const names = new Map();
    const walk = (f) => { for (let c = f; c; c = c.sibling) {
      const n = typeof c.type === 'function' ? c.type.name : c.type && typeof c.type === 'object' ? (c.type.type?.name ?? c.type.render?.name ?? '') : '';
      const a = c.alternate;
      if (n && /^[A-Z]/.test(n) && (!a || a.memoizedProps !== c.memoizedProps || a.memoizedState !== c.memoizedState)) names.set(n, (names.get(n) ?? 0) + 1);
      walk(c.child);
    } };
    walk(root.current.child);
    window.__commits.push(performance.now().toFixed(0) + ' ms: ' + [...names].map(([n, k]) => k > 1 ? n + '×' + k : n).join(' '));
  } };`;

const METRIC_KEYS = ['TaskDuration', 'ScriptDuration', 'RecalcStyleDuration', 'LayoutDuration'];

/** Waits until no main-thread task ran for `quietTicks` × 100 ms (at most 5 s); the last TaskDuration. */
async function untilQuiet(page: Page, taskMs: () => Promise<number>, quietTicks: number): Promise<number> {
  let last = await taskMs();
  for (let quiet = 0, t = 0; quiet < quietTicks && t < 50; t++) {
    await page.waitForTimeout(100);
    const now = await taskMs();
    quiet = now - last < 1.5 ? quiet + 1 : 0;
    last = now;
  }
  return last;
}

async function startRecording(browser: Browser, page: Page, cdp: CDPSession, opts: FirstRenderOptions): Promise<void> {
  if (opts.cpuProfile) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
    await cdp.send('Profiler.start');
  } else if (opts.trace) {
    await browser.startTracing(page, { path: opts.trace, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'v8', 'blink', 'loading', 'disabled-by-default-v8.compile', 'disabled-by-default-devtools.timeline.frame'] });
  }
}

/** 'own': until the page has asked for all of the held data (synthetic-api.ts). */
async function untilDataAsked(page: Page): Promise<void> {
  await page.waitForFunction((n) => (window as unknown as { __heldAsked: number }).__heldAsked === n, HELD_CHANNELS.length, { polling: 20, timeout: 60_000 });
}

async function releaseData(page: Page): Promise<void> {
  await page.evaluate(() => (window as unknown as { __releaseData(): void }).__releaseData());
}

async function earlierStart(context: BrowserContext, url: string, opts: FirstRenderOptions): Promise<void> {
  const page = await context.newPage();
  await page.goto(url);
  if (opts.kind === 'own') {
    await untilDataAsked(page);
    await releaseData(page);
  }
  await page.waitForFunction((d) => document.querySelectorAll('g.band').length === d, opts.disks, { polling: 'raf', timeout: 120_000 });
  await page.waitForTimeout(1000); // Chromium writes the code cache after the script has run, at idle
  await page.close();
}

/** The browser the bench runs: Debian's Chromium, headless. */
export const LAUNCH = {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
};
const VIEWPORT = { width: 1440, height: 900 };

async function withScripts(context: BrowserContext, opts: FirstRenderOptions): Promise<BrowserContext> {
  // tsx (esbuild) wraps named functions in __name(); functions shipped to the page need it too.
  await context.addInitScript({ content: 'window.__name = (f) => f;' });
  await context.addInitScript(installSyntheticApi, { layout: opts.layout, n: opts.n, disks: opts.disks, hold: opts.kind === 'own', answerMs: opts.answerMs });
  return context;
}

/**
 * thirdStart: an admin's third start of the app. Two earlier starts of a browser on one profile folder,
 * each drawn, then the browser closed: what the third start finds is the disk's HTTP cache and V8's
 * code cache (Chromium makes it at the second load and uses it from the third; an incognito context
 * keeps none), not a warm process. Else a fresh incognito context: nothing cached.
 */
async function openContext(browser: Browser, url: string, opts: FirstRenderOptions): Promise<{ context: BrowserContext; done(): Promise<void> }> {
  if (!opts.thirdStart) {
    const context = await withScripts(await browser.newContext({ viewport: VIEWPORT }), opts);
    return { context, done: () => context.close() };
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-profile-'));
  const start = async () => withScripts(await chromium.launchPersistentContext(profile, { ...LAUNCH, viewport: VIEWPORT }), opts);
  for (let k = 0; k < 2; k++) {
    const earlier = await start();
    await earlierStart(earlier, url, opts);
    await earlier.close();
  }
  const context = await start();
  return { context, done: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); } };
}

export async function firstRender(browser: Browser, url: string, opts: FirstRenderOptions): Promise<FirstRender> {
  if (opts.thirdStart && (opts.trace || opts.cpuProfile)) throw new Error('--trace and --profile are for a cold start');
  const { context, done } = await openContext(browser, url, opts);
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // BENCH_DEBUG: every React commit (time, and the components that rendered: the PerformedWork
    // flag) through the slot React DevTools use; names need a --minify false build.
    if (process.env.BENCH_DEBUG) await page.addInitScript({ content: COMMIT_HOOK });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
    const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value * 1000]));
    const taskMs = async () => (await metrics()).TaskDuration!;
    const m0 = await metrics();
    if (opts.kind === 'page') await startRecording(browser, page, cdp, opts);
    const load = os.loadavg()[0]!;
    await page.goto(url);
    let start = m0;
    if (opts.kind === 'own') {
      await untilDataAsked(page);
      await untilQuiet(page, taskMs, 2);
      await startRecording(browser, page, cdp, opts);
      start = await metrics();
      await releaseData(page);
    }
    // The page's size when the predicate first holds (a build may add more at idle time).
    const drawn = await page.waitForFunction((disks) => document.querySelectorAll('g.band').length === disks && document.querySelectorAll('[role="treeitem"]').length > 0
      && { dom: document.getElementsByTagName('*').length, svg: document.querySelectorAll('svg.timeline-svg *').length, at: performance.now() }, opts.disks, { polling: 'raf', timeout: 120_000 });
    const m1 = await metrics();
    const size = (await drawn.jsonValue()) as { dom: number; svg: number; at: number };
    const released = opts.kind === 'own' ? await page.evaluate(() => (window as unknown as { __dataReleasedAt: number }).__dataReleasedAt) : 0;
    const idle = await untilQuiet(page, taskMs, 3);
    if (opts.trace && !opts.cpuProfile) await browser.stopTracing();
    if (opts.cpuProfile) fs.writeFileSync(opts.cpuProfile, JSON.stringify((await cdp.send('Profiler.stop')).profile));
    if (opts.shot) await page.screenshot({ path: opts.shot });
    if (errors.length) throw new Error(`page errors: ${errors.join(' | ')}`);
    if (process.env.BENCH_DEBUG) {
      console.log(await page.evaluate(() => (window as unknown as { __commits: string[] }).__commits.join('\n')));
      console.log(`released at ${released.toFixed(0)} ms, drawn at ${size.at.toFixed(0)} ms`);
    }
    const parts = Object.fromEntries(METRIC_KEYS.slice(1).map((k) => [k.replace('Duration', ''), m1[k]! - start[k]!]));
    return {
      kind: opts.kind, cpuMs: m1.TaskDuration! - start.TaskDuration!, idleCpuMs: idle - start.TaskDuration!, parts, dom: size.dom, svg: size.svg, load,
      wallMs: size.at - released, ...(opts.kind === 'own' ? { beforeCpuMs: start.TaskDuration! - m0.TaskDuration! } : {}),
    };
  } finally {
    await done();
  }
}

/**
 * `--ab floor,…`: what the bench itself costs, with no app: a page that asks the synthetic API what the
 * app asks on its first render (its data generated and cloned as for the app), then draws the elements
 * the bench waits for.
 */
export function floorPage(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-floor-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><html><body><div id="root"></div><script type="module" src="./floor.js"></script></body></html>');
  fs.writeFileSync(path.join(dir, 'floor.js'), `const api = window.api;
const [vms] = await Promise.all([api.invoke('vm:list'), api.invoke('lab:status'), api.invoke('job:list')]);
const id = vms[0].id;
const [info] = await Promise.all([api.invoke('vm:info', id), api.invoke('checkpoint:list', id), api.invoke('checkpoint:current', id), api.invoke('vm:health', id)]);
await api.invoke('backup:list', id);
const ns = 'http://www.w3.org/2000/svg';
const svg = document.createElementNS(ns, 'svg');
for (const d of info.disks) { const g = document.createElementNS(ns, 'g'); g.setAttribute('class', 'band'); svg.append(g); }
const item = document.createElementNS(ns, 'g');
item.setAttribute('role', 'treeitem');
svg.append(item);
document.getElementById('root').append(svg);
`);
  return dir;
}
