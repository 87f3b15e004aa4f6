import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProcessAlive, processStartTime } from './process-liveness';
import { tiedCommand, tiedProgramMissing, tiedToThisProcess } from './tied-child';

const here = __dirname;

describe('tiedToThisProcess', () => {
  it('a child started through it is killed when its parent is killed with SIGKILL', async () => {
    const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tm-tied-')), 'pid');
    // The parent: starts a tied `sleep 30`, writes its pid, then is killed -9 (no chance to clean up).
    const script = `
      const { spawn } = require('node:child_process');
      const { tiedToThisProcess } = require(${JSON.stringify(path.join(here, 'tied-child.ts'))});
      const run = tiedToThisProcess('sleep', ['30']);
      const c = spawn(run.cmd, run.args, { stdio: 'ignore' });
      c.once('spawn', () => { require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200); });
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: 'ignore', cwd: path.join(here, '..', '..') });
    await new Promise((r) => parent.once('exit', r));
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(pid).toBeGreaterThan(0);
    const deadline = Date.now() + 5_000;
    while (isProcessAlive(pid) && processStartTime(pid) !== 'zombie' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const left = processStartTime(pid);
    expect(left === undefined || left === 'zombie', `sleep (pid ${pid}) outlived its killed parent`).toBe(true);
  });

  it('runs the program only while the parent it was started for is alive: an orphan never starts it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-tied-'));
    // A parent that died before the death signal was armed: the child's parent is no longer it.
    const orphan = tiedCommand('touch', [path.join(dir, 'orphan')], 1);
    expect(orphan.cmd).toMatch(/setpriv$/);
    spawnSync(orphan.cmd, orphan.args);
    expect(fs.existsSync(path.join(dir, 'orphan'))).toBe(false);
    const mine = tiedToThisProcess('touch', [path.join(dir, 'mine')]);
    expect(spawnSync(mine.cmd, mine.args).status).toBe(0);
    expect(fs.existsSync(path.join(dir, 'mine'))).toBe(true);
  });

  it('says when the program itself is missing (setpriv exits 127), and only then', () => {
    const run = tiedToThisProcess('tidemark-no-such-program', []);
    const r = spawnSync(run.cmd, run.args, { encoding: 'utf8' });
    expect(tiedProgramMissing(r.status, r.stderr)).toBe(true);
    const ok = tiedToThisProcess('sh', ['-c', 'echo oops >&2; exit 127']);
    const r2 = spawnSync(ok.cmd, ok.args, { encoding: 'utf8' });
    expect(tiedProgramMissing(r2.status, r2.stderr)).toBe(false);
  });
});
