// `npm start` (bin/start.js) both ways: with an Electron binary and a display it launches the
// desktop app; without one it says so in one line and serves the web host with the real demo VM.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labStatus, stopLab } from '../electron/engine/lab/labvm';

const root = path.resolve(__dirname, '..');
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-start-'));
});
afterAll(async () => {
  await stopLab(path.join(dir, 'state', 'lab'));
  fs.rmSync(dir, { recursive: true, force: true });
});

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.ELECTRON_EXEC_PATH;
  delete env.TIDEMARK_STATE_DIR;
  return env;
}

describe('npm start', () => {
  it('launches Electron on the project with the arguments when a binary and a display exist', async () => {
    const record = path.join(dir, 'electron-args.json');
    const fake = path.join(dir, 'electron');
    fs.writeFileSync(fake, `#!/usr/bin/env node\nrequire('fs').writeFileSync(${JSON.stringify(record)}, JSON.stringify({ argv: process.argv.slice(2), runAsNode: process.env.ELECTRON_RUN_AS_NODE ?? null, cwd: process.cwd() }));\nprocess.exit(3);\n`, { mode: 0o755 });
    const child = spawn(process.execPath, [path.join(root, 'bin/start.js'), '--state-dir', path.join(dir, 'x')], {
      env: cleanEnv({ ELECTRON_BINARY: fake, DISPLAY: ':99', ELECTRON_RUN_AS_NODE: '1' }),
      stdio: 'ignore',
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(3); // Electron's exit code is passed on
    expect(JSON.parse(fs.readFileSync(record, 'utf8'))).toEqual({ argv: [root, '--state-dir', path.join(dir, 'x')], runAsNode: null, cwd: root });
  });

  it('without Electron, says so in one line, serves the UI with the demo VM, and stops both on Ctrl+C', async () => {
    const state = path.join(dir, 'state');
    const child = spawn(process.execPath, [path.join(root, 'bin/start.js'), '--state-dir', state, '--no-open'], {
      env: cleanEnv({ ELECTRON_BINARY: path.join(dir, 'no-such-electron'), DISPLAY: '', WAYLAND_DISPLAY: '' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        // The banner's last line: its lines are separate writes and may arrive in separate chunks.
        const m = /serving on (\S+)/.exec(out);
        if (m && out.includes('Press Ctrl+C to stop.')) {
          clearInterval(t);
          resolve(m[1]!);
        }
      }, 50);
      child.once('exit', (c) => (clearInterval(t), reject(new Error(`start.js exited ${c}:\n${out}`))));
    });
    const lines = out.split('\n').filter((l) => l.startsWith('tidemark: '));
    expect(lines.at(-1)).toBe(`tidemark: ELECTRON_BINARY=${path.join(dir, 'no-such-electron')} does not exist; starting the web host instead.`);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#code=[\w-]{43}$/);
    expect(out).toContain('demo VM: started');
    expect(labStatus(path.join(state, 'lab')).running).toBe(true);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Tidemark</title>');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(labStatus(path.join(state, 'lab')).running).toBe(false);
  });
});
