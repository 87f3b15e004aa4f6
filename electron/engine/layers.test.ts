// Imports go downwards only (DEVELOPERS.md, "Layering"): checked on the source files themselves,
// so a new import that breaks the restructuring's seams fails here with the file that has it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');

/** Every non-test source file under electron/`dir`, with the electron/-relative paths it imports. */
function importsUnder(dir: string): { file: string; imports: string[] }[] {
  const out: { file: string; imports: string[] }[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ts$/.test(e.name) && !/\.(test|itest)\.ts$/.test(e.name)) {
        const text = fs.readFileSync(p, 'utf8');
        const specs = [...text.matchAll(/(?:from|import\(|require\()\s*['"](\.[^'"]+)['"]/g)].map((m) => m[1]!);
        out.push({ file: path.relative(root, p), imports: specs.map((s) => path.relative(root, path.resolve(path.dirname(p), s))) });
      }
    }
  };
  walk(path.join(root, dir));
  return out;
}

function offenders(dir: string, forbidden: RegExp): string[] {
  return importsUnder(dir).flatMap((f) => f.imports.filter((i) => forbidden.test(i)).map((i) => `${f.file} imports ${i}`));
}

describe('import directions', () => {
  it('the engine imports neither the host nor the CLI; the host not the CLI', () => {
    expect(offenders('engine', /^(host|cli|shell)\//)).toEqual([]);
    expect(offenders('host', /^(cli|shell)\//)).toEqual([]);
  });

  it('backup and pull do not import each other, nor any driver', () => {
    expect(offenders('engine/backup', /^engine\/(pull|qmp-driver)\//)).toEqual([]);
    expect(offenders('engine/pull', /^engine\/(backup|qmp-driver)\//)).toEqual([]);
  });

  it('the qcow2 format, which backup and pull both write, imports nothing else of the engine', () => {
    expect(offenders('engine/qcow2', /^engine\/(?!qcow2\/)/)).toEqual([]);
  });

  it('the backup session and its strategy seam know no QMP', () => {
    const session = importsUnder('engine/backup').filter((f) => /(session|strategy|record|control|lock)\.ts$/.test(f.file));
    expect(session.flatMap((f) => f.imports.filter((i) => /^(qmp|nbd)\//.test(i) || /checkpoints\/(api|engine)$/.test(i)).map((i) => `${f.file} imports ${i}`))).toEqual([]);
  });

  it('only the demo VM\'s connection reaches into the QMP driver from elsewhere in the engine', () => {
    const outside = ['engine/backup', 'engine/pull', 'engine/checkpoints', 'engine/vm', 'engine/dirtymap'].flatMap((d) => offenders(d, /^engine\/qmp-driver\//));
    expect(outside).toEqual([]);
  });

  it('the scan sees imports (a check that can fail)', () => {
    expect(offenders('host', /^engine\/driver$/).length).toBeGreaterThan(0);
  });
});
