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
