// No source file over 400 lines (tests, e2e and bench excepted): a file that grows past it has more
// than one job and gets split (DEVELOPERS.md, "Layering"). Counted on the files git tracks.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const LIMIT = 400;

export function isSource(file: string): boolean {
  if (!/^(electron|shared|renderer)\//.test(file)) return false;
  if (!/\.(ts|tsx|mts|cts|js|mjs|cjs)$/.test(file)) return false;
  return !/\.(test|itest)\.(ts|tsx)$/.test(file) && !/(^|\/)(itest-helpers?|fake-[^/]*)\.ts$/.test(file);
}

describe('source file size', () => {
  it(`no source file is over ${LIMIT} lines`, () => {
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(isSource);
    expect(files.length).toBeGreaterThan(100);
    const over = files
      .filter((f) => fs.existsSync(path.join(ROOT, f)))
      .map((f) => ({ f, lines: fs.readFileSync(path.join(ROOT, f), 'utf8').split('\n').length - 1 }))
      .filter((x) => x.lines > LIMIT)
      .map((x) => `${x.f}: ${x.lines} lines`);
    expect(over).toEqual([]);
  });

  it('counts what it should', () => {
    expect(isSource('electron/host/service.ts')).toBe(true);
    expect(isSource('renderer/src/App.tsx')).toBe(true);
    expect(isSource('electron/host/service.test.ts')).toBe(false);
    expect(isSource('electron/engine/backup/model.itest.ts')).toBe(false);
    expect(isSource('bench/peers.ts')).toBe(false);
  });
});
