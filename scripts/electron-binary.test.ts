import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findElectronBinary } from './electron-binary';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-eb-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('findElectronBinary', () => {
  it('uses ELECTRON_BINARY when it exists, and says so when it does not', () => {
    const exe = path.join(dir, 'electron');
    fs.writeFileSync(exe, '#!/bin/sh\n', { mode: 0o755 });
    expect(findElectronBinary({ ELECTRON_BINARY: exe }, dir)).toEqual({ path: exe, reason: `ELECTRON_BINARY=${exe}` });
    expect(findElectronBinary({ ELECTRON_BINARY: '/nope/electron' }, dir)).toEqual({ reason: 'ELECTRON_BINARY=/nope/electron does not exist' });
  });
  it('without path.txt (package installed without its download) there is none', () => {
    fs.mkdirSync(path.join(dir, 'node_modules', 'electron'), { recursive: true });
    expect(findElectronBinary({}, dir).path).toBeUndefined();
    expect(findElectronBinary({}, dir).reason).toMatch(/no Electron binary/);
  });
  it('reads path.txt + dist like the electron package does', () => {
    const pkg = path.join(dir, 'node_modules', 'electron');
    fs.writeFileSync(path.join(pkg, 'path.txt'), 'electron');
    expect(findElectronBinary({}, dir)).toEqual({ reason: `Electron binary ${path.join(pkg, 'dist', 'electron')} is missing` });
    fs.mkdirSync(path.join(pkg, 'dist'));
    fs.writeFileSync(path.join(pkg, 'dist', 'electron'), '');
    expect(findElectronBinary({}, dir).path).toBe(path.join(pkg, 'dist', 'electron'));
  });
});
