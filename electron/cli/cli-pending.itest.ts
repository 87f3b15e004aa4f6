// `tidemark domain-info` while `tidemark backup-begin` runs in another process: the bitmaps of the
// backup's new checkpoint exist before its metadata does. They are reported as being created by
// that backup (a note), never as foreign bitmaps; once the backup is cancelled they are gone and
// nothing is left over. Real CLI processes, real demo VM. (The engine tests cover the commit.)

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthIssue } from '../../shared/domain';
import { stopLab } from '../engine/lab/labvm';
import { runTidemark, TIDEMARK_BIN as BIN } from './run-cli';

let dir: string;

const tidemark = (args: string[]) => runTidemark(dir, args);

async function ok(args: string[]): Promise<string> {
  const r = await tidemark(args);
  if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return r.out;
}

const health = async (): Promise<HealthIssue[]> => JSON.parse(await ok(['domain-info', '--json'])).health;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmp-'));
  await ok(['lab', 'start']);
  await ok(['checkpoint-create-as', 'base']);
  await ok(['lab', 'write', '--disk', 'vdb', '--pattern', 'sequential', '--mib', '6']);
});

afterAll(async () => {
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('domain-info during a backup in another process', () => {
  it('shows the new checkpoint\'s bitmaps as being created by that backup; after a cancel nothing is left', async () => {
    // 6 MiB at 0.1 MiB/s: it runs for a minute unless cancelled, so the checks below happen during it
    const backup = spawn('node', [BIN, '--state-dir', dir, 'backup-begin', '--full', '--disk', 'vdb', '--speed', '0.1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const finished = new Promise<{ code: number | null; err: string }>((resolve) => {
      let err = '';
      backup.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      backup.on('exit', (code) => resolve({ code, err }));
    });
    try {
      // wait until its transaction ran (the backup's status says "running")
      let status: { running: boolean; phase?: string; checkpoint?: string; pid?: number } = { running: false };
      for (let i = 0; i < 200 && status.phase !== 'running'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = JSON.parse(await ok(['backup-status', '--json']));
      }
      expect(status).toMatchObject({ running: true, phase: 'running' });
      const cp = status.checkpoint!;
      const during = await health();
      expect(during.filter((i) => i.state !== 'disk-incapable').map((i) => [i.state, i.severity, i.disk, i.bitmap])).toEqual([['checkpoint-pending', 'info', 'vdb', cp]]);
      expect(during.find((i) => i.state === 'checkpoint-pending')!.message).toMatch(new RegExp(`^bitmap ${cp} on vdb belongs to checkpoint ${cp}, being created by backup \\S+ \\(pid ${status.pid}\\)$`));
      const text = await ok(['domain-info']);
      expect(text).toMatch(/\nHealth: +2 notes\n/);
      expect(text).toContain(`being created by backup`);
      expect(text).not.toContain('foreign');
      const listed = await tidemark(['checkpoint-list', '--name']);
      expect([listed.code, listed.out, listed.err]).toEqual([0, 'base\n\n', '']); // a note is no warning
      // all of the above happened while the backup ran
      expect(JSON.parse(await ok(['backup-status', '--json']))).toMatchObject({ running: true, checkpoint: cp });

      expect(JSON.parse(await ok(['backup-cancel', '--json']))).toMatchObject({ how: 'cancelled' });
      const done = await finished;
      expect(done.code).toBe(1);
      expect(done.err).toMatch(/was cancelled; checkpoint \S+ rolled back/);
      expect((await health()).map((i) => i.state)).toEqual(['disk-incapable']);
      expect(await ok(['checkpoint-list', '--name'])).toBe('base\n\n');
      expect(fs.readdirSync(path.join(dir, 'vms', fs.readdirSync(path.join(dir, 'vms'))[0]!, 'pending'))).toEqual([]);
    } finally {
      backup.kill('SIGKILL');
    }
  });
});
