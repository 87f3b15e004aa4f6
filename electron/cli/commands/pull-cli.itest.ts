// Pull mode through the real CLI, under the name issue 5 gives it: `backup-begin --mode pull`
// (Tidemark copies the dirty extents into the repository; the points restore byte-identical to a
// shadow copy), and `--mode pull --export-only` (nbdinfo reads the printed URI and its dirty map,
// then `backup-end` decides whether the checkpoint counts).

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupRecord } from '../../../shared/contract';
import { compareWith, MiB, Shadow } from '../../engine/backup/itest-helpers';
import { startLab, stopLab } from '../../engine/lab/labvm';
import { QmpClient } from '../../qmp/client';
import { runTidemark, TIDEMARK_BIN as BIN } from '../run-cli';

const DISKS = [{ name: 'vda', sizeBytes: 32 * MiB }];

describe('backup-begin --mode pull through the CLI', () => {
  let dir = '';
  let repo = '';
  let client: QmpClient;
  let shadow: Shadow;
  let exporter: ChildProcess | undefined;

  const tidemark = (args: string[]) => runTidemark(dir, args, { timeoutMs: 120_000 });
  const ok = async (args: string[]): Promise<string> => {
    const r = await tidemark(args);
    if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
    return r.out;
  };
  const checkpoints = async (): Promise<string[]> => (JSON.parse(await ok(['checkpoint-list', '--json'])) as { name: string }[]).map((c) => c.name);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmpc-'));
    repo = path.join(dir, 'repo');
    const lab = await startLab({ dir: path.join(dir, 'lab'), disks: DISKS });
    client = await QmpClient.connect(lab.qmp);
    shadow = new Shadow(path.join(dir, 'shadow'), client, lab.log, DISKS);
  });
  afterAll(async () => {
    exporter?.kill('SIGKILL');
    shadow?.close();
    await client?.close();
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('copies full and incremental points into the repository; both restore byte-identical', async () => {
    await shadow.write('vda', 0, 3 * MiB, 0x41);
    const full = JSON.parse(await ok(['backup-begin', '--mode', 'pull', '--repo', repo, '--full', '--json'])) as { backup: BackupRecord };
    shadow.snapshot(full.backup.id);
    await shadow.write('vda', 8 * MiB, 4096, 0x42);
    await shadow.write('vda', 1 * MiB, 64 * 1024, 'zero');
    const inc = JSON.parse(await ok(['backup-begin', '--mode', 'pull', '--repo', repo, '--json'])) as { backup: BackupRecord };
    shadow.snapshot(inc.backup.id);
    expect(inc.backup.kind).toBe('incremental');
    expect(inc.backup.since).toBe(full.backup.checkpoint);
    for (const b of [full.backup, inc.backup]) {
      const to = path.join(dir, `r-${b.id}.qcow2`);
      await ok(['restore', '--repo', repo, '--backup', b.id, '--disk', 'vda', '--to', to]);
      expect(compareWith(to, 'qcow2', shadow.snapFile(b.id, 'vda')), b.id).toBe('');
    }
    // negative control: the full point is not the incremental one
    expect(compareWith(path.join(dir, `r-${full.backup.id}.qcow2`), 'qcow2', shadow.snapFile(inc.backup.id, 'vda'))).not.toBe('');
  });

  it('--export-only prints URIs that nbdinfo reads; backup-end --failure drops the checkpoint, --success keeps it', async () => {
    const before = await checkpoints();
    for (const outcome of ['failure', 'success'] as const) {
      await shadow.write('vda', 16 * MiB, 128 * 1024, outcome === 'success' ? 0x51 : 0x52);
      exporter = spawn('node', [BIN, '--state-dir', dir, 'backup-begin', '--mode', 'pull', '--export-only', '--repo', repo], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      exporter.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => exporter!.once('exit', (code) => resolve(code)));
      const deadline = Date.now() + 30_000;
      while (!out.includes('Exports open') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const uri = /nbd\+unix:\/\/\/\S+/.exec(out)?.[0];
      const context = /qemu:dirty-bitmap:\S+/.exec(out)?.[0];
      expect(uri, out).toBeDefined();
      expect(context, out).toBeDefined();
      const map = execFileSync('nbdinfo', ['--map=' + context!, '--totals', uri!], { encoding: 'utf8' });
      // 128 KiB written since the previous point, at 64 KiB granularity: exactly 131072 dirty bytes
      expect(map).toMatch(/^\s*131072\s+\S+\s+1\s+dirty/m);
      await ok(['backup-end', '--repo', repo, `--${outcome}`]);
      const code = await exited;
      exporter = undefined;
      expect(code).toBe(outcome === 'success' ? 0 : 1);
      const now = await checkpoints();
      if (outcome === 'failure') expect(now.sort()).toEqual([...before].sort());
      else expect(now.length).toBe(before.length + 1);
    }
  });
});
