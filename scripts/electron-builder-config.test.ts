// The packaging config, read as electron-builder would (offline: no build is run here; the
// dry run is scripts/check-package.sh). Covers security checklist #19 (fuses).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');

function loadConfig(env: Record<string, string> = {}): Record<string, unknown> {
  const clean = { ...process.env };
  delete clean.EB_OFFLINE_DRY_RUN;
  delete clean.EB_ELECTRON_DIST;
  const out = execFileSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify(require("./electron-builder.config.cjs")))'], {
    cwd: root,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.toString()) as Record<string, unknown>;
}

/** Width and height from a PNG's IHDR. */
function pngSize(file: string): [number, number] {
  const b = fs.readFileSync(file);
  expect(b.subarray(1, 4).toString('ascii')).toBe('PNG');
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

describe('electron-builder config', () => {
  it('sets every fuse of checklist #19 for real builds', () => {
    expect(loadConfig().electronFuses).toEqual({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      grantFileProtocolExtraPrivileges: false,
    });
    expect(loadConfig()).not.toHaveProperty('electronDist');
  });

  it('leaves fuses out only in the offline dry run, which must name its stand-in Electron', () => {
    const dry = loadConfig({ EB_OFFLINE_DRY_RUN: '1', EB_ELECTRON_DIST: '/tmp/stand-in' });
    expect(dry).not.toHaveProperty('electronFuses');
    expect(dry.electronDist).toBe('/tmp/stand-in');
    expect(() => loadConfig({ EB_OFFLINE_DRY_RUN: '1' })).toThrow(/EB_OFFLINE_DRY_RUN=1 needs EB_ELECTRON_DIST/);
  });

  it('packages only the built app, for AppImage and deb, with the desktop entry', () => {
    const c = loadConfig() as { files: string[]; linux: { target: string[]; icon: string; desktop: { entry: Record<string, string> } }; asar: boolean };
    expect(c.files).toEqual(['out/main/**', 'out/preload/**', 'out/renderer/**', 'package.json', '!**/*.map', '!node_modules/**']);
    expect(c.asar).toBe(true);
    expect(c.linux.target).toEqual(['AppImage', 'deb']);
    expect(c.linux.desktop.entry).toMatchObject({ Name: 'Tidemark', Type: 'Application', Categories: 'System;Utility;', Terminal: 'false' });
    expect(c.linux.desktop.entry).not.toHaveProperty('Exec');
  });

  it('has icons of the sizes their names say', () => {
    const dir = path.join(root, 'build', 'icons');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.png'));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) {
      const n = Number(/^(\d+)x\1\.png$/.exec(f)![1]);
      expect(pngSize(path.join(dir, f))).toEqual([n, n]);
    }
    expect(pngSize(path.join(root, 'build', 'icon.png'))).toEqual([512, 512]);
  });

  it('keeps renderer-only libraries and Electron out of the runtime dependencies', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; type?: string; main: string };
    for (const lib of ['react', 'react-dom', 'zustand', 'electron']) expect(pkg.dependencies).not.toHaveProperty(lib);
    expect(pkg.type).toBeUndefined(); // the preload must stay CommonJS
    expect(pkg.main).toBe('out/main/main.js');
  });
});
