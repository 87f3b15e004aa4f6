// The layering rule (eslint.config.mjs) must reject each forbidden import and accept the allowed ones.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: process.cwd() });

async function layeringErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('layering lint rule', () => {
  it('keeps Node built-ins and electron out of shared/', async () => {
    expect(await layeringErrors('shared/x.ts', "import * as fs from 'node:fs';\nexport const a = fs;\n")).toEqual([
      expect.stringMatching(/shared\/ must not import Node built-ins/),
    ]);
    expect(await layeringErrors('shared/x.ts', "import * as fs from 'fs';\nexport const a = fs;\n")).toHaveLength(1);
    expect(await layeringErrors('shared/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toHaveLength(1);
    expect(await layeringErrors('shared/x.ts', "import { QmpClient } from '../electron/qmp/client';\nexport const a = QmpClient;\n")).toEqual([
      expect.stringMatching(/must not import electron\/ or renderer\//),
    ]);
  });

  it('keeps the renderer on the contract', async () => {
    expect(await layeringErrors('renderer/src/x.ts', "import { QmpClient } from '../../electron/qmp/client';\nexport const a = QmpClient;\n")).toEqual([
      expect.stringMatching(/renderer\/ must not import electron\/ code/),
    ]);
    expect(await layeringErrors('renderer/src/x.ts', "import * as p from 'node:path';\nexport const a = p;\n")).toHaveLength(1);
    expect(await layeringErrors('renderer/src/x.ts', "import { dispatch } from '../../shared/contract';\nexport const a = dispatch;\n")).toEqual([]);
  });

  it('keeps electron out of the engine but allows it in main.ts and preload.ts', async () => {
    expect(await layeringErrors('electron/engine/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toEqual([
      expect.stringMatching(/Only electron\/main.ts and electron\/preload.ts may import electron/),
    ]);
    expect(await layeringErrors('electron/main.ts', "import { app } from 'electron';\nexport const a = app;\n")).toEqual([]);
    expect(await layeringErrors('electron/preload.ts', "import { contextBridge } from 'electron';\nexport const a = contextBridge;\n")).toEqual([]);
    expect(await layeringErrors('electron/engine/x.ts', "import * as fs from 'node:fs';\nexport const a = fs;\n")).toEqual([]);
  });
});
