// Small helpers the benchmarks share: timing and medians. Figures are printed, never asserted.

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** "  1234 ms [1000..2000]": median and range, whole milliseconds. */
export function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${median(xs).toFixed(0).padStart(6)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}]`;
}

/** Milliseconds `fn` takes. */
export async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Wall and CPU (user + system) milliseconds of one variant, a figure per round. */
export interface WallAndCpu {
  wall: number[];
  cpu: number[];
}

/**
 * The start-up table (bench/cli-start.ts, bench/startup.ts): a row per variant, in the map's order,
 * with its wall median [min..max] and CPU median, each also as a ratio to the `base` row's median;
 * `ratioLabel` heads both ratio columns ("÷ node -e 0", "vs today").
 */
export function printWallAndCpu(rows: ReadonlyMap<string, WallAndCpu>, base: string, ratioLabel: string): void {
  const b = rows.get(base);
  if (!b) throw new Error(`no row named ${JSON.stringify(base)} to compare with`);
  const [baseWall, baseCpu] = [median(b.wall), median(b.cpu)];
  const nameWidth = Math.max(...[...rows.keys()].map((n) => n.length));
  const ratioWidth = Math.max(ratioLabel.length, 6);
  console.log(`  ${''.padEnd(nameWidth)} ${'wall median [min..max]'.padStart(24)}  ${ratioLabel.padEnd(ratioWidth)}  CPU (user+sys)  ${ratioLabel}`);
  for (const [name, { wall, cpu }] of rows) {
    const ratio = (x: number, of: number) => `×${(x / of).toFixed(2)}`;
    console.log(`  ${name.padEnd(nameWidth)} ${stats(wall).padEnd(24)}  ${ratio(median(wall), baseWall).padEnd(ratioWidth)}  ${`${median(cpu).toFixed(0)} ms`.padStart(14)}  ${ratio(median(cpu), baseCpu)}`);
  }
}
