// --ab: first renders of several builds, alternating per round (A B C, C B A, …), on one browser,
// each on a fresh context. Per build and round one measurement of each kind asked for (--kinds
// page,own: the page from navigation, and the timeline's own first render from the data's release;
// see first-render.ts). Prints medians [min..max], paired ratios against the first build, and the
// load average.

import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { firstRender, floorPage, LAUNCH, type FirstRender, type FirstRenderKind, type Layout } from './first-render';
import { medianRange, serve } from './serve';

export interface AbOptions {
  dirs: string[];
  rounds: number;
  layout: Layout;
  kinds: FirstRenderKind[];
  n: number;
  disks: number;
  traceDir?: string;
  shotsDir?: string;
  profile: boolean;
  answerMs?: number;
  thirdStart?: boolean;
}

/** Every measurement, by kind, then by build (in `dirs` order), then by round. */
export type AbRuns = Map<FirstRenderKind, FirstRender[][]>;

export async function abRun(o: AbOptions): Promise<AbRuns> {
  const made: string[] = [];
  const dirs = o.dirs.map((d) => (d === 'floor' ? made[made.push(floorPage()) - 1]! : d));
  const servers = await Promise.all(dirs.map((d) => serve(path.resolve(d))));
  const urls = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/`);
  const browser = await chromium.launch(LAUNCH);
  const runs = new Map(o.kinds.map((k) => [k, dirs.map(() => [] as FirstRender[])]));
  const loads: number[] = [];
  for (const dir of [o.traceDir, o.shotsDir]) if (dir) fs.mkdirSync(dir, { recursive: true });
  try {
    for (let r = 0; r < o.rounds; r++) {
      const order = dirs.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) {
        for (const kind of o.kinds) {
          const name = `first-render-${i}-${path.basename(dirs[i]!)}-${kind}`;
          const trace = o.traceDir && r === 0 ? path.join(o.traceDir, `${name}.json`) : undefined;
          const cpuProfile = o.profile && o.traceDir && r === 0 ? path.join(o.traceDir, `${name}.cpuprofile`) : undefined;
          const shot = o.shotsDir && r === 0 ? path.join(o.shotsDir, `${name}-${o.layout}.png`) : undefined;
          const run = await firstRender(browser, urls[i]!, { kind, layout: o.layout, n: o.n, disks: o.disks, trace, shot, cpuProfile, answerMs: o.answerMs, thirdStart: o.thirdStart });
          runs.get(kind)![i]!.push(run);
          loads.push(run.load);
        }
      }
      const line = dirs.map((d, i) => `${path.basename(d)} ${o.kinds.map((k) => `${k} ${runs.get(k)![i]!.at(-1)!.cpuMs.toFixed(0)}`).join(' ')} ms`).join(', ');
      console.log(`round ${r + 1}: ${line}, load ${os.loadavg()[0]!.toFixed(1)}`);
    }
  } finally {
    await browser.close();
    for (const s of servers) s.close();
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nfirst render only: ${o.n} checkpoints × ${o.disks} disks, ${o.layout}, ${o.rounds} rounds, Chromium ${browser.version()}, 1440×900, main-thread CPU (ms)`);
  console.log(`load average during the rounds: ${medianRange(loads, 1)}${o.thirdStart ? '; every measurement at the third start of a browser on one profile (HTTP and V8 code caches)' : ''}`);
  for (const kind of o.kinds) {
    const byBuild = runs.get(kind)!;
    console.log(kind === 'page'
      ? `\npage: before navigation → the drawn frame (wall: navigation → drawn); the VM's data answered ${o.answerMs ? `${o.answerMs} ms after it was asked` : 'at once'}`
      : '\nown: the timeline\'s own first render, the data released → the drawn frame (wall: release → drawn; before: navigation → release, the app waiting)');
    for (const [i, d] of dirs.entries()) {
      const xs = byBuild[i]!;
      const base = byBuild[0]!;
      const ratio = i === 0 ? '' : `\n  paired ÷ ${path.basename(dirs[0]!)}: drawn ${medianRange(xs.map((x, k) => x.cpuMs / base[k]!.cpuMs), 2)}, idle ${medianRange(xs.map((x, k) => x.idleCpuMs / base[k]!.idleCpuMs), 2)}, wall ${medianRange(xs.map((x, k) => x.wallMs / base[k]!.wallMs), 2)}`;
      const before = kind === 'own' ? `; before ${medianRange(xs.map((x) => x.beforeCpuMs!))}` : '';
      console.log(`${d}\n  to drawn ${medianRange(xs.map((x) => x.cpuMs))} (script ${medianRange(xs.map((x) => x.parts.Script!))}, style ${medianRange(xs.map((x) => x.parts.RecalcStyle!), 1)}, layout ${medianRange(xs.map((x) => x.parts.Layout!), 1)}); to idle ${medianRange(xs.map((x) => x.idleCpuMs))}; wall ${medianRange(xs.map((x) => x.wallMs))}${before}; DOM ${xs[0]!.dom}, SVG ${xs[0]!.svg}${ratio}`);
    }
  }
  return runs;
}
