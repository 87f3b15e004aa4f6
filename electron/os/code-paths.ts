// Which optional parts of the code this process ran, by name. The CLI's launcher (bin/tidemark.js) keeps
// one V8 code cache per command, holding the functions that the run which wrote it compiled; a run that
// used a part the cache was written without (the NBD client of a pull or of a large disk's push map, an
// incremental backup after the first full one) has it rewritten with that part added, so later runs do
// not compile it again (~20 ms of a 1 TiB push: bench/README.md, "Phase 18").

const used = new Set<string>();

/** Notes that this process ran the part named `name` (a short word: "nbd", "pull"). */
export function usedCodePath(name: string): void {
  used.add(name);
}

/** Every part noted so far. */
export function codePaths(): string[] {
  return [...used];
}
