// Backups and restores through the real `tidemark` CLI (bin/tidemark.js as a child process) against
// a real demo VM, in both layouts: full, incremental and differential restore byte-identical to a
// shadow copy of each point; in-place restore of every checkpointed disk opens a new branch whose
// next incremental builds on the restored backup; a partial in-place restore forces a full backup.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupRecord } from '../../../shared/contract';
import type { Checkpoint } from '../../../shared/domain';
import { compareWith, MiB, Shadow } from '../../engine/backup/itest-helpers';
import { startLab, stopLab } from '../../engine/lab/labvm';
import { QmpClient } from '../../qmp/client';
import { runTidemark, TIDEMARK_BIN as BIN, type CliRun as Run } from '../run-cli';

const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 32 * MiB },
  { name: 'vdc', sizeBytes: 16 * MiB, legacy: true },
];

for (const layout of ['independent', 'chained'] as const) {
  describe(`backups through the CLI (${layout} layout)`, () => {
    let dir = '';
    let repo = '';
    let client: QmpClient | undefined;
    let shadow: Shadow;
    const labDir = () => path.join(dir, 'lab');
    const image = (disk: string) => path.join(labDir(), 'disks', `${disk}.qcow2`);

    const tidemark = (args: string[]): Promise<Run> => runTidemark(dir, args, { timeoutMs: 120_000 });
    const ok = async (args: string[]): Promise<string> => {
      const r = await tidemark(args);
      if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
      expect(r.err).toBe('');
      return r.out;
    };
    const backup = async (...extra: string[]): Promise<BackupRecord> => JSON.parse(await ok(['backup-begin', '--repo', repo, '--json', ...extra])) as BackupRecord;
    const start = async () => {
      const lab = await startLab({ dir: labDir(), disks: DISKS });
      client = await QmpClient.connect(lab.qmp); // the CLI takes the second socket
      if (shadow) shadow.reconnect(client);
      else shadow = new Shadow(path.join(dir, 'shadow'), client, lab.log, DISKS);
    };
    const stop = async () => {
      await client?.close();
      client = undefined;
      await stopLab(labDir());
    };
    /** Restores every disk of `b` through the CLI and compares it with the shadow at that point. */
    const restoreAll = async (b: BackupRecord) => {
      for (const d of b.disks) {
        const to = path.join(dir, `r-${b.id}-${d.name}.${d.name === 'vdb' ? 'raw' : 'qcow2'}`);
        const out = await ok(['restore', '--repo', repo, '--backup', b.id, '--disk', d.name, '--to', to]);
        expect(out).toContain(`Restored ${d.name} from backup ${b.id} to ${to}`);
        expect(compareWith(to, d.name === 'vdb' ? 'raw' : 'qcow2', shadow.snapFile(b.id, d.name)), `${b.id} ${d.name}`).toBe('');
        fs.rmSync(to);
      }
    };
    const points: BackupRecord[] = [];

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmcb-'));
      repo = path.join(dir, 'repo');
      await start();
    });
    afterAll(async () => {
      shadow?.close();
      await stop().catch(() => undefined);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('full, incremental and differential backups', async () => {
      await ok(['checkpoint-create-as', 'c0', '--layout', layout]);
      await shadow.write('vda', 0, 4 * MiB, 0x11);
      await shadow.write('vdb', 1 * MiB, 3 * MiB, 0x12);
      await shadow.write('vdc', 0, 1 * MiB, 0x13);
      const full = await backup();
      shadow.snapshot(full.id);
      expect([full.kind, full.checkpoint]).toEqual(['full', full.id]);

      await shadow.write('vda', 2 * MiB, 64 * 1024, 'zero');
      await shadow.write('vda', 10 * MiB, 1 * MiB + 4096, 0x21);
      await shadow.write('vdb', 1 * MiB, 512, 0x22);
      const inc = await backup();
      shadow.snapshot(inc.id);
      expect([inc.kind, inc.since]).toEqual(['incremental', full.checkpoint]);

      await shadow.write('vda', 30 * MiB, 2 * MiB, 0x31);
      await shadow.write('vdb', 20 * MiB, 128 * 1024, 0x32);
      const diff = await backup('--since', full.checkpoint!);
      shadow.snapshot(diff.id);
      expect(diff.kind).toBe('differential');
      expect(diff.disks.filter((d) => d.name !== 'vdc').map((d) => [d.kind, d.base])).toEqual([['differential', full.id], ['differential', full.id]]);
      points.push(full, inc, diff);

      const listed = JSON.parse(await ok(['backup-list', '--repo', repo, '--json'])) as BackupRecord[];
      expect(listed.map((b) => [b.id, b.kind, b.since, b.checkpoint])).toEqual(points.map((b) => [b.id, b.kind, b.since, b.checkpoint]));
      expect(listed[1]!.disks.map((d) => [d.name, d.bytesCopied])).toEqual([['vda', 1152 * 1024], ['vdb', 64 * 1024], ['vdc', 1 * MiB]]);
      const text = await ok(['backup-list', '--repo', repo]);
      for (const b of points) expect(text).toContain(b.id);
    });

    it('every point restores byte-identical through the CLI; verify passes; chains are protected', async () => {
      expect(await ok(['backup-verify', '--repo', repo])).toContain('All 3 backup(s) verified');
      for (const b of points) await restoreAll(b);
      const del = await tidemark(['backup-delete', points[0]!.id, '--repo', repo]);
      expect(del.code).toBe(1);
      expect(del.err).toContain(`backup ${points[0]!.id} is the base of ${points[1]!.id}, ${points[2]!.id}`);
      expect(await ok(['backup-status', '--repo', repo])).toBe('No backup is running\n');
      const info = await ok(['backup-info', points[1]!.id, '--repo', repo]);
      expect(info).toContain(`${points[1]!.id} <- ${points[0]!.id}`);
    });

    it('in place, every checkpointed disk: a new branch, and the next incremental builds on the restored backup', async () => {
      const inc = points[1]!;
      await stop();
      const out = await ok(['restore', '--repo', repo, '--backup', inc.id, '--disk', 'vda', '--in-place', image('vda'), '--disk', 'vdb', '--in-place', image('vdb')]);
      const branch = /New branch: checkpoint (\S+) under (\S+);/.exec(out);
      expect(branch?.[2]).toBe(inc.checkpoint);
      expect(fs.readdirSync(path.join(labDir(), 'disks')).filter((f) => f.includes('.pre-restore-')).length).toBe(2);
      for (const d of ['vda', 'vdb']) fs.copyFileSync(shadow.snapFile(inc.id, d), shadow.file(d)); // the disks are back at inc's point
      await start();
      const cps = JSON.parse(await ok(['checkpoint-list', '--json'])) as Checkpoint[];
      expect(cps.find((c) => c.name === branch![1])?.parent).toBe(inc.checkpoint);
      // the old checkpoints' bitmaps are not in the restored images: they no longer track vda/vdb (no health errors)
      for (const c of cps.filter((x) => x.name !== branch![1])) {
        expect(c.disks.filter((d) => d.name !== 'vdc').map((d) => [d.name, d.checkpoint])).toEqual([['vda', 'no'], ['vdb', 'no']]);
      }
      await shadow.write('vda', 5 * MiB, 256 * 1024, 0x41);
      const next = await backup();
      shadow.snapshot(next.id);
      expect([next.kind, next.since]).toEqual(['incremental', branch![1]]);
      const vda = next.disks.find((d) => d.name === 'vda')!;
      expect([vda.kind, vda.base, vda.bytesCopied]).toEqual(['incremental', inc.id, 256 * 1024]);
      expect(next.disks.find((d) => d.name === 'vdb')!.bytesCopied).toBe(0);
      await restoreAll(next);
      points.push(next);
    });

    it('in place, one disk only: that disk is marked for a full backup', async () => {
      const last = points[points.length - 1]!;
      await shadow.write('vda', 40 * MiB, 1 * MiB, 0x51); // lost by the restore below
      await stop();
      const bad = await tidemark(['restore', '--repo', repo, '--backup', last.id, '--disk', 'vda', '--to', image('vda')]);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('already exists; restore --to never overwrites');
      const out = await ok(['restore', '--repo', repo, '--backup', last.id, '--disk', 'vda', '--in-place', image('vda'), '--no-safety-copy']);
      expect(out).toMatch(/The next backup of vda will be full: restored in place from backup \S+ .* without the VM's other checkpointed disks \(vdb\)/);
      fs.copyFileSync(shadow.snapFile(last.id, 'vda'), shadow.file('vda'));
      await start();
      await shadow.write('vdb', 0, 64 * 1024, 0x52);
      const next = await backup();
      shadow.snapshot(next.id);
      const vda = next.disks.find((d) => d.name === 'vda')!;
      expect(vda.kind).toBe('full');
      expect(vda.fallbackReason).toMatch(/restored in place from backup/);
      expect(next.disks.find((d) => d.name === 'vdb')!.kind).toBe('incremental');
      await restoreAll(next);
      // the mark is cleared by that full backup
      const again = await backup();
      expect(again.disks.find((d) => d.name === 'vda')!.kind).toBe('incremental');
    });

    if (layout === 'chained') {
      it('backup-status and backup-cancel from other processes, and Ctrl-C, stop a running backup and roll it back', async () => {
        await shadow.write('vda', 8 * MiB, 8 * MiB, 0x61);
        const checkpoints = JSON.parse(await ok(['checkpoint-list', '--json'])) as Checkpoint[];
        const manifests = () => (JSON.parse(fs.readFileSync(path.join(dir, 'list.json'), 'utf8')) as BackupRecord[]).length;
        const countBackups = async () => {
          fs.writeFileSync(path.join(dir, 'list.json'), await ok(['backup-list', '--repo', repo, '--json']));
          return manifests();
        };
        const before = await countBackups();
        await client!.close(); // the running backup holds the second socket; status and cancel need the first
        client = undefined;
        const waitRunning = async () => {
          for (let i = 0; i < 100; i++) {
            const st = JSON.parse(await ok(['backup-status', '--repo', repo, '--json'])) as { running: boolean; phase?: string; progress: { done: number }[] };
            if (st.running && st.phase === 'running' && st.progress.some((p) => p.done > 0)) return st;
            await new Promise((r) => setTimeout(r, 100));
          }
          throw new Error('the backup never showed as running');
        };
        // 1. backup-cancel from another process
        // --full: 1 GiB at 1 MiB/s still runs when the checks below reach it, however loaded the machine (an
        // incremental of a few MiB could end first: the busy check then got 0, not 75)
        const first = tidemark(['backup-begin', '--repo', repo, '--full', '--speed', '1']);
        const st = await waitRunning();
        expect(st.progress.find((p) => p.done > 0)).toBeDefined();
        const busy = await tidemark(['backup-begin', '--repo', repo]);
        expect(busy.code).toBe(75); // EX_TEMPFAIL: a backup is running, the same run later may work
        expect(busy.err).toMatch(/error: a backup of VM .* is already running: backup \S+/);
        expect(await ok(['backup-cancel', '--repo', repo])).toMatch(/^Backup \S+ cancelled\n/);
        const r1 = await first;
        expect(r1.code).toBe(1);
        expect(r1.err).toMatch(/error: backup \S+ was cancelled; checkpoint \S+ rolled back; partial images deleted/);
        // 2. Ctrl-C
        const child = execFile('node', [BIN, '--state-dir', dir, 'backup-begin', '--repo', repo, '--full', '--speed', '1']);
        let err = '';
        child.stderr!.on('data', (d: string) => (err += d));
        await waitRunning();
        child.kill('SIGINT');
        const code = await new Promise<number | null>((r) => child.once('exit', r));
        expect(code).toBe(1);
        expect(err).toMatch(/was cancelled; checkpoint \S+ rolled back/);
        expect(JSON.parse(await ok(['checkpoint-list', '--json']))).toEqual(checkpoints);
        expect(await countBackups()).toBe(before);
        expect(await ok(['backup-status', '--repo', repo])).toBe('No backup is running\n');
        client = await QmpClient.connect(path.join(labDir(), 'qmp.sock'));
        shadow.reconnect(client);
      });
    }

    it('an in-place restore of a running VM\'s image is refused', async () => {
      const r = await tidemark(['restore', '--repo', repo, '--backup', points[0]!.id, '--disk', 'vda', '--in-place', image('vda')]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/is in use by another process \(is the VM running\?\)/);
    });
  });
}
