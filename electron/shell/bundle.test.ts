// Builds main and preload with the project's electron-vite config into a temp dir and checks
// what a sandboxed Electron needs (#4): the preload is ONE CommonJS file that requires only
// 'electron'; main needs no node_modules at run time (the asar carries none).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
let out: string;

function requires(file: string): string[] {
  return [...fs.readFileSync(file, 'utf8').matchAll(/require\((["'])([^"']+)\1\)/g)].map((m) => m[2]!);
}

beforeAll(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bundle-'));
  execFileSync(process.execPath, [path.join(root, 'node_modules/electron-vite/bin/electron-vite.js'), 'build', '--config', 'electron.vite.config.mts', '--outDir', out, '--logLevel', 'error', '--ignoreConfigWarning'], {
    cwd: root,
    stdio: 'pipe',
  });
}, 120_000);
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

describe('Electron bundles', () => {
  it('the preload is a single CommonJS file that requires only electron', () => {
    expect(fs.readdirSync(path.join(out, 'preload'))).toEqual(['preload.js']);
    const file = path.join(out, 'preload', 'preload.js');
    const text = fs.readFileSync(file, 'utf8');
    expect(requires(file)).toEqual(['electron']);
    expect(text).not.toMatch(/^\s*(import|export)\s/m);
    expect(text).toContain('exposeInMainWorld("api"');
  });

  it('main requires only electron and Node built-ins', () => {
    const mods = requires(path.join(out, 'main', 'main.js'));
    expect(mods).toContain('electron');
    expect(mods.filter((m) => m !== 'electron' && !m.startsWith('node:'))).toEqual([]);
  });
});
