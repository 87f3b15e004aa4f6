// The corpus's case counter, per entry point: test/hostile-corpus.test.ts prints it when all ran.

export const counts = new Map<string, number>();

/** Records one hostile case rejected with a reason at `entry`. */
export function tally(entry: string): void {
  counts.set(entry, (counts.get(entry) ?? 0) + 1);
}

/** "entry: n, …; total N", in the order the entry points first counted. */
export function summary(): string {
  let total = 0;
  for (const n of counts.values()) total += n;
  return `${[...counts].map(([k, n]) => `${k}: ${n}`).join(', ')}; total ${total}`;
}
