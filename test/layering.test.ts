// The layering rules (eslint.config.mjs, eslint.layers.mjs) must reject each forbidden import and
// accept the allowed ones: the environment rules (no Node or Electron where a page runs the code)
// and the layers (shared/ < os, qmp, nbd < engine < host < cli, shell, main; renderer → shared only).
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: process.cwd() });

async function messages(filePath: string, code: string, ruleId: string): Promise<{ message: string; severity: number }[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.filter((m) => m.ruleId === ruleId).map(({ message, severity }) => ({ message, severity }));
}

const restrictedImports = async (filePath: string, code: string) => (await messages(filePath, code, 'no-restricted-imports')).map((m) => m.message);
const layerErrors = async (filePath: string, code: string) => (await messages(filePath, code, 'tidemark/layers')).map((m) => m.message);
const importOf = (from: string) => `import { x } from '${from}';\nexport const a = x;\n`;

describe('environment rules', () => {
  it('keep Node built-ins and electron out of shared/', async () => {
    expect(await restrictedImports('shared/x.ts', "import * as fs from 'node:fs';\nexport const a = fs;\n")).toEqual([
      expect.stringMatching(/shared\/ must not import Node built-ins/),
    ]);
    expect(await restrictedImports('shared/x.ts', "import * as fs from 'fs';\nexport const a = fs;\n")).toHaveLength(1);
    expect(await restrictedImports('shared/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toHaveLength(1);
    expect(await restrictedImports('shared/x.ts', "import * as v from 'valibot';\nexport const a = v;\n")).toEqual([]);
  });

  it('keep Node built-ins out of the renderer', async () => {
    expect(await restrictedImports('renderer/src/x.ts', "import * as p from 'node:path';\nexport const a = p;\n")).toHaveLength(1);
  });

  it('keep electron out of the engine but allow it in main.ts and preload.ts', async () => {
    expect(await restrictedImports('electron/engine/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toEqual([
      expect.stringMatching(/Only electron\/main.ts and electron\/preload.ts may import electron/),
    ]);
    expect(await restrictedImports('electron/main.ts', "import { app } from 'electron';\nexport const a = app;\n")).toEqual([]);
    expect(await restrictedImports('electron/preload.ts', "import { contextBridge } from 'electron';\nexport const a = contextBridge;\n")).toEqual([]);
    expect(await restrictedImports('electron/engine/x.ts', "import * as fs from 'node:fs';\nexport const a = fs;\n")).toEqual([]);
  });
});

describe('layers', () => {
  // One case per boundary: an import that runs up a layer is an error naming both ends.
  it.each([
    ['shared/x.ts', '../electron/os/atomic-file', /^shared\/x\.ts \(shared\) must not import electron\/os\/atomic-file \(os\/qmp\/nbd\): shared\/ is below every layer/],
    ['shared/contract/x.ts', '../../renderer/src/api/index', /\(shared\) must not import renderer\/src\/api\/index \(renderer\)/],
    ['electron/os/x.ts', '../engine/names', /^electron\/os\/x\.ts \(os\/qmp\/nbd\) must not import electron\/engine\/names \(engine\): layers import only downwards/],
    ['electron/qmp/x.ts', '../engine/checkpoints/engine', /\(os\/qmp\/nbd\) must not import electron\/engine\/checkpoints\/engine \(engine\)/],
    ['electron/nbd/x.ts', '../host/service', /\(os\/qmp\/nbd\) must not import electron\/host\/service \(host\)/],
    ['electron/engine/x.ts', '../host/service', /^electron\/engine\/x\.ts \(engine\) must not import electron\/host\/service \(host\)/],
    ['electron/engine/backup/x.ts', '../../cli/args', /\(engine\) must not import electron\/cli\/args \(cli\/shell\/main\)/],
    ['electron/host/x.ts', '../cli/args', /^electron\/host\/x\.ts \(host\) must not import electron\/cli\/args \(cli\/shell\/main\)/],
    ['electron/host/x.ts', '../shell/ipc', /\(host\) must not import electron\/shell\/ipc \(cli\/shell\/main\)/],
    ['electron/host/x.ts', '../main', /\(host\) must not import electron\/main \(cli\/shell\/main\)/],
    ['electron/engine/x.ts', '../preload', /\(engine\) must not import electron\/preload \(cli\/shell\/main\)/],
    ['renderer/src/x.ts', '../../electron/qmp/client', /^renderer\/src\/x\.ts \(renderer\) must not import electron\/qmp\/client \(os\/qmp\/nbd\): the renderer reaches the engine only through the contract/],
    ['electron/engine/x.ts', '../../renderer/src/store/store', /\(engine\) must not import renderer\/src\/store\/store \(renderer\)/],
  ])('%s importing %s is an error', async (file, from, message) => {
    expect(await layerErrors(file, importOf(from))).toEqual([expect.stringMatching(message)]);
  });

  it.each([
    ['electron/cli/x.ts', '../host/service'],
    ['electron/shell/x.ts', '../host/static-files'],
    ['electron/main.ts', './shell/ipc'],
    ['electron/main.ts', './host/service'],
    ['electron/preload.ts', '../shared/contract'],
    ['electron/host/x.ts', '../engine/checkpoints/engine'],
    ['electron/engine/x.ts', '../qmp/client'],
    ['electron/engine/backup/x.ts', '../checkpoints/store'],
    ['electron/qmp/x.ts', '../os/atomic-file'],
    ['electron/nbd/x.ts', '../qmp/errors'],
    ['electron/os/x.ts', '../../shared/contract'],
    ['shared/contract/x.ts', '../schema'],
    ['renderer/src/x.ts', '../../shared/contract'],
    ['electron/engine/x.ts', 'valibot'],
  ])('%s importing %s is allowed', async (file, from) => {
    expect(await layerErrors(file, importOf(from))).toEqual([]);
  });

  it('counts type-only imports, re-exports, import() and require() too', async () => {
    const up = '../host/service';
    for (const code of [
      `import type { X } from '${up}';\nexport type A = X;\n`,
      `export { x } from '${up}';\n`,
      `export * from '${up}';\n`,
      `export async function f() { return import('${up}'); }\n`,
      `export const s = require('${up}');\n`,
    ]) expect(await layerErrors('electron/engine/x.ts', code), code).toHaveLength(1);
  });

  it('lets integration tests of any layer start the demo VM, and nothing else above them', async () => {
    expect(await layerErrors('electron/qmp/x.itest.ts', importOf('../engine/lab/labvm'))).toEqual([]);
    expect(await layerErrors('electron/nbd/x.itest.ts', importOf('../engine/lab/labvm'))).toEqual([]);
    expect(await layerErrors('electron/qmp/x.test.ts', importOf('../engine/lab/labvm'))).toHaveLength(1);
    expect(await layerErrors('electron/qmp/x.itest.ts', importOf('../engine/names'))).toHaveLength(1);
    expect(await layerErrors('electron/engine/x.itest.ts', importOf('../host/service'))).toHaveLength(1);
  });
});
