import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findOnPath } from './find-on-path';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-find-on-path-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function folder(name: string, files: Record<string, number>): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  for (const [file, mode] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), '#!/bin/sh\n', { mode });
  return dir;
}

const empty = folder('empty', {});
const notExecutable = folder('not-executable', { tool: 0o644 });
const first = folder('first', { tool: 0o755 });
const second = folder('second', { tool: 0o755, other: 0o755 });

describe('findOnPath', () => {
  it('finds the first executable one in PATH order, as an absolute path', () => {
    const PATH = [empty, notExecutable, first, second].join(':');
    expect(findOnPath('tool', { PATH })).toBe(path.join(first, 'tool'));
    expect(findOnPath('other', { PATH })).toBe(path.join(second, 'other'));
  });

  it('is undefined when no folder has it, when PATH is empty or unset', () => {
    expect(findOnPath('tidemark-no-such-program', { PATH: [empty, first].join(':') })).toBeUndefined();
    expect(findOnPath('tool', { PATH: '' })).toBeUndefined();
    expect(findOnPath('tool', {})).toBeUndefined();
  });

  it('passes over a file it may not execute', () => {
    expect(findOnPath('tool', { PATH: notExecutable })).toBeUndefined();
  });

  it('passes over empty and relative entries (the current folder)', () => {
    const relative = path.relative(process.cwd(), first);
    expect(fs.existsSync(path.join(relative, 'tool'))).toBe(true);
    expect(findOnPath('tool', { PATH: `:${relative}:./${relative}` })).toBeUndefined();
    expect(findOnPath('tool', { PATH: `${relative}::${second}` })).toBe(path.join(second, 'tool'));
  });

  it('reads process.env.PATH by default', () => {
    expect(findOnPath('sh')).toMatch(/^\/.*\/sh$/);
  });
});
