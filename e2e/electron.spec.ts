// The real desktop shell, when an Electron binary exists (never on the offline build machine:
// the electron package could not download one). Run with ELECTRON_BINARY=/path/to/electron; with
// no DISPLAY it gets a private Xvfb display. Checks what only a real Electron can show: the page
// is app://, the preload bridge is the transport, Node is absent from the page, the demo VM appears.
import { _electron as electron } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AppApi } from '../shared/contract';
import { findElectronBinary } from '../scripts/electron-binary';
import { labStatus, stopLab } from '../electron/engine/lab/labvm';
import { expect, test } from './fixtures';
import { startXvfb, type VirtualDisplay } from './xvfb';

const found = findElectronBinary();
const root = path.resolve(__dirname, '..');

test.describe('real Electron shell', () => {
  test.skip(!found.path, `skipped: ${found.reason}`);
  test.skip(!fs.existsSync(path.join(root, 'out/main/main.js')), 'skipped: run npm run build first (out/main/main.js is missing)');

  let xvfb: VirtualDisplay | undefined;
  test.beforeAll(async () => {
    if (process.platform === 'linux' && !process.env.DISPLAY) xvfb = await startXvfb();
  });
  test.afterAll(async () => {
    await xvfb?.stop();
  });

  test('the window uses the preload bridge on app://, without Node, and shows the demo VM', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-el-'));
    const env = { ...process.env, ...(xvfb ? { DISPLAY: xvfb.display } : {}) } as Record<string, string>;
    delete env.ELECTRON_RUN_AS_NODE;
    const app = await electron.launch({ executablePath: found.path!, args: [root, '--state-dir', stateDir], cwd: root, env });
    try {
      const win = await app.firstWindow();
      expect(win.url()).toBe('app://tidemark/index.html');
      const page = await win.evaluate(() => ({
        transport: (window as unknown as { api?: AppApi }).api?.transport,
        keys: Object.keys((window as unknown as { api?: AppApi }).api ?? {}).sort(),
        require: typeof (globalThis as { require?: unknown }).require,
        process: typeof (globalThis as { process?: unknown }).process,
      }));
      expect(page).toEqual({ transport: 'electron', keys: ['invoke', 'on', 'transport'], require: 'undefined', process: 'undefined' });
      await expect(win.getByRole('region', { name: 'Disks' }).getByText('vda', { exact: true })).toBeVisible({ timeout: 30_000 });
      const refused = await win.evaluate(() => ((window as unknown as { api: AppApi }).api.invoke as (c: string) => Promise<unknown>)('shell:exec').then(() => 'allowed', (e: Error) => e.message));
      expect(refused).toBe('unknown channel "shell:exec"');
    } finally {
      await app.close();
      await stopLab(path.join(stateDir, 'lab'));
      expect(labStatus(path.join(stateDir, 'lab')).running).toBe(false);
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
