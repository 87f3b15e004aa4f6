import { createPackage } from '@electron/asar';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without type declarations
import { checkAsar } from './verify-asar.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-asar-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function pack(name: string, files: Record<string, string>): Promise<string> {
  const src = path.join(tmp, name);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, f)), { recursive: true });
    fs.writeFileSync(path.join(src, f), text);
  }
  const archive = path.join(tmp, `${name}.asar`);
  await createPackage(src, archive);
  return archive;
}

const GOOD = {
  'package.json': JSON.stringify({ name: 'tidemark', main: 'out/main/main.js' }),
  'out/main/main.js': '',
  'out/preload/preload.js': '',
  'out/renderer/index.html': '',
  'out/renderer/assets/index.js': '',
};

describe('checkAsar', () => {
  it('accepts exactly the built app', async () => {
    expect(checkAsar(await pack('good', GOOD)).problems).toEqual([]);
  });
  it('names every unexpected, missing or leaking entry', async () => {
    const { 'out/preload/preload.js': _dropped, ...withoutPreload } = GOOD;
    const r = checkAsar(await pack('bad', {
      ...withoutPreload,
      'out/main/main.js.map': '',
      'node_modules/ws/index.js': '',
      'electron/main.ts': '',
      'out/node/electron/cli.js': '',
    }));
    expect(r.problems).toEqual(expect.arrayContaining([
      'missing /out/preload/preload.js',
      'source map shipped: /out/main/main.js.map',
      'unexpected entry /node_modules/ws/index.js',
      'unexpected entry /electron/main.ts',
      'unexpected entry /out/node/electron/cli.js',
    ]));
  });
  it('checks the packaged package.json', async () => {
    const r = checkAsar(await pack('pkg', { ...GOOD, 'package.json': JSON.stringify({ main: 'index.js', dependencies: { ws: '8' } }) }));
    expect(r.problems).toEqual(['package.json "main" is "index.js", expected "out/main/main.js"', 'package.json still lists dependencies: ws']);
  });
});
