// A clean clone with nothing beside it must pass its own tests: no tracked file (Markdown aside,
// which may point readers to notes) may refer to a `shared` folder outside the repository.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
/** Files whose `../shared` strings are source text of other (virtual) files, not paths they open. */
const VIRTUAL_PATHS = new Set(['test/layering.test.ts', 'test/self-contained.test.ts']);

function trackedFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
}

/** Every `../…/shared` reference in `text` that leaves the repository (relative to `file`'s folder; for shell scripts also to the root). */
export function outsideReferences(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\.\.[/\\]|['"]\.\.['"],\s*)+(?:['"])?shared\b/g)) {
    const rel = m[0].replace(/['"]/g, '').replace(/,\s*/g, '/');
    // Code and configs resolve paths from their own folder; shell scripts run from the repository root.
    const script = /\.sh$/.test(file) || file.startsWith('.ci/');
    for (const base of script ? [path.dirname(path.join(ROOT, file)), ROOT] : [path.dirname(path.join(ROOT, file))]) {
      const target = path.resolve(base, rel);
      if (!target.startsWith(ROOT + path.sep)) {
        found.push(m[0]);
        break;
      }
    }
  }
  if (/\/work\/shared\b/.test(text)) found.push('/work/shared');
  return found;
}

describe('the repository is self-contained', () => {
  it('finds the pattern it looks for (the check can fail)', () => {
    expect(outsideReferences('electron/engine/x.itest.ts', "path.resolve(__dirname, '../../../../shared/fixtures')")).toHaveLength(1);
    expect(outsideReferences('a.ts', "path.join(__dirname, '..', '..', 'shared', 'notes')")).toHaveLength(1);
    expect(outsideReferences('renderer/src/api/x.ts', "from '../../../shared/contract'")).toHaveLength(0);
  });

  it('no tracked file other than Markdown refers to ../shared outside the checkout', () => {
    const offenders: string[] = [];
    let checked = 0;
    for (const f of trackedFiles()) {
      if (f.endsWith('.md') || VIRTUAL_PATHS.has(f) || !fs.existsSync(path.join(ROOT, f))) continue;
      const buf = fs.readFileSync(path.join(ROOT, f));
      if (buf.includes(0)) continue; // binary
      checked++;
      for (const r of outsideReferences(f, buf.toString('utf8'))) offenders.push(`${f}: ${r}`);
    }
    expect(checked).toBeGreaterThan(100);
    expect(offenders).toEqual([]);
  });
});
