// The backup session without a hypervisor: a scripted source and strategy show what the session
// plans from, what it journals before the one operation, and how it rolls back, cancels, and ends
// an export-only pull. (Recording real layers needs qemu-img: the QMP itests cover that.)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Checkpoint, CreateCheckpointOptions, DiskInfo, VmInfo } from '../../../shared/domain';
import { RecordingReporter } from '../operation';
import { requestExportEnd } from './control';
import { readLock } from './lock';
import { BackupRepository } from './repository';
import { BackupFailedError, runBackupSession } from './session';
import type { BackupSource, BackupStrategy, StrategyRun } from './strategy';

const GiB = 1024 ** 3;
const disk = (name: string, over: Partial<DiskInfo> = {}): DiskInfo => ({
  name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: GiB, imageFile: `/img/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [], ...over,
});
const vm: VmInfo = { id: 'uuid-1', name: 'vm1', endpoint: 'unix:/q', status: 'running', qemuVersion: '7.2.22', disks: [disk('vda'), disk('vdb')] };
const c1: Checkpoint = { name: 'c1', creationTime: 0, createdAtMs: 0, layout: 'independent', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'bitmap' }] };

let dir: string;
let repo: BackupRepository;
const calls: string[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-session-'));
  repo = BackupRepository.open(path.join(dir, 'repo'), { create: true });
  calls.length = 0;
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function source(over: Partial<BackupSource> = {}): BackupSource {
  return {
    identity: { key: 'uuid-1' },
    withLock: async (fn, command) => {
      calls.push(`lock ${command}`);
      return fn();
    },
    inspect: async () => ({
      vm, checkpoints: [c1], current: 'c1', layout: 'independent',
      changesUnusable: (since, d) => (d === 'vdb' ? `bitmap ${since} on vdb is inconsistent` : undefined),
    }),
    prepareCheckpoint: async (o: CreateCheckpointOptions) => {
      calls.push(`prepare ${o.name} ${JSON.stringify(o.disks)}`);
      return { checkpoint: { ...c1, name: o.name!, parent: 'c1' } };
    },
    commitCheckpoint: async (p) => void calls.push(`commit ${p.checkpoint.name}`),
    rollbackCheckpoint: async (p) => void calls.push(`rollback ${p.checkpoint.name}`),
    checkpointNames: async () => new Set(['c1']),
    isAlive: () => true,
    recover: async () => void calls.push('recover'),
    ...over,
  };
}

/** A strategy whose steps record themselves; `fail` names the step that throws. */
function strategy(o: { fail?: string; exportOnly?: boolean; onTransfer?: (run: StrategyRun) => Promise<void> } = {}): BackupStrategy & { seen?: StrategyRun } {
  const s: BackupStrategy & { seen?: StrategyRun } = {
    mode: o.exportOnly ? 'pull' : 'push', name: 'test', tool: 'tidemark test', exportOnly: Boolean(o.exportOnly), rollbackNote: 'partial images deleted',
    check: async () => void calls.push('check'),
    setup: async (run) => {
      s.seen = run;
      calls.push('setup');
      if (o.fail === 'setup') throw new Error('no room for the targets');
    },
    start: async (run) => {
      calls.push(`start ${JSON.stringify(readLock(repo, 'uuid-1')?.journal.prepared?.checkpoint.name)}`);
      if (o.fail === 'start') throw new Error('QEMU refused the transaction');
      run.markExecuted();
    },
    exports: (run) => run.targets.map((t) => ({ disk: t.plan.disk.name, kind: t.plan.kind, uri: `nbd://x/${t.plan.disk.name}`, exportName: t.plan.disk.name, size: GiB })),
    transfer: async (run) => {
      calls.push('transfer');
      await o.onTransfer?.(run);
      if (o.fail === 'transfer') throw new Error('the backup job of vda failed: No space left on device');
      return new Map();
    },
    finish: async () => void calls.push('finish'),
    rollback: async () => void calls.push('strategy rollback'),
  };
  return s;
}

const failure = (p: Promise<unknown>) => p.then(() => new Error('it succeeded'), (e: Error) => e);

describe('backup session', () => {
  it('plans from what the source reports: per-disk fallbacks with the driver\'s reason, the checkpoint on the backed-up disks', async () => {
    const s = strategy({ fail: 'setup' });
    const err = await failure(runBackupSession(source(), s, { repo, since: 'c1', disks: ['vda', 'vdb'], checkpoint: 'b2' }, new RecordingReporter()));
    expect(err).toBeInstanceOf(BackupFailedError);
    const plan = s.seen!.plan;
    // no backup holds c1 yet: both disks full, each with its reason
    expect(plan.disks.map((d) => [d.disk.name, d.kind])).toEqual([['vda', 'full'], ['vdb', 'full']]);
    expect(plan.disks[0]!.fallbackReason).toMatch(/no backup in this repository holds vda at checkpoint c1/);
    expect(plan.checkpointDisks).toEqual([{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'bitmap' }]);
    expect(s.seen!.targets.map((t) => path.relative(repo.root, t.partial))).toEqual([
      `vms/uuid-1/disks/vda/${s.seen!.backupId}.qcow2.partial`, `vms/uuid-1/disks/vdb/${s.seen!.backupId}.qcow2.partial`,
    ]);
    // the failure came before the checkpoint: nothing to roll back but the strategy's own work
    expect(calls).toEqual(['check', `lock backup ${s.seen!.backupId}`, 'check', 'setup', 'strategy rollback']);
    expect(err.message).toBe(`backup ${s.seen!.backupId} failed: no room for the targets; partial images deleted`);
    expect(readLock(repo, 'uuid-1')).toBeUndefined();
  });

  it('the driver\'s "changes unusable" reason makes that disk full once its base exists', async () => {
    const s = strategy({ fail: 'setup' });
    const changes = (since: string, d: string) => (d === 'vdb' ? `bitmap ${since} on vdb is inconsistent` : undefined);
    const view = { vm, checkpoints: [c1], current: 'c1', layout: 'independent' as const, changesUnusable: changes };
    const b1 = '20260101-000000-000-0001';
    repo.writeManifest({
      format: 'tidemark-backup', version: 1, id: b1, vm: { id: 'uuid-1' }, kind: 'full', checkpoint: 'c1', startedAt: 1, completedAt: 2, qemuVersion: '7.2.22', tool: 't',
      disks: ['vda', 'vdb'].map((name) => ({ name, kind: 'full', image: `disks/${name}/${b1}.qcow2`, virtualSize: GiB, bytesCopied: 0, fileSize: 0, sha256: '0'.repeat(64), sourceImage: '', sourceFormat: 'qcow2', checkpointBitmap: true })),
    });
    for (const d of ['vda', 'vdb']) {
      fs.mkdirSync(path.dirname(repo.imagePath('uuid-1', d, b1)), { recursive: true });
      fs.writeFileSync(repo.imagePath('uuid-1', d, b1), '');
    }
    await failure(runBackupSession(source({ inspect: async () => view }), s, { repo }, new RecordingReporter()));
    expect(s.seen!.plan.disks.map((d) => [d.disk.name, d.kind, d.base ?? null, d.fallbackReason ?? null])).toEqual([
      ['vda', 'incremental', b1, null],
      ['vdb', 'full', null, 'bitmap c1 on vdb is inconsistent'],
    ]);
  });

  it('journals the prepared checkpoint before the one operation; a refused operation leaves it uncreated', async () => {
    const s = strategy({ fail: 'start' });
    const err = await failure(runBackupSession(source(), s, { repo, full: true, checkpoint: 'b2' }, new RecordingReporter()));
    expect(calls).toContain('start "b2"'); // on disk when the operation began
    expect(calls).not.toContain('rollback b2');
    expect(err.message).toMatch(/failed: QEMU refused the transaction; checkpoint b2 was not created; partial images deleted$/);
  });

  it('the disks to delete are in the journal on disk before the strategy creates anything, and before the checkpoint is prepared', async () => {
    const seen: Record<string, unknown> = {};
    const onDisk = () => readLock(repo, 'uuid-1')?.journal;
    const s = strategy({ fail: 'start' });
    // a strategy that journals its own state first (as the QMP ones do): that one write carries the plan's disks
    const setup = s.setup.bind(s);
    s.setup = async (run) => {
      seen.before = onDisk()?.disks.length;
      run.journal({ nodes: ['n1'] });
      seen.first = { disks: onDisk()?.disks.map((d) => d.disk), state: onDisk()?.strategy?.state };
      await setup(run);
    };
    const src = source({ prepareCheckpoint: async (o) => ((seen.prepare = onDisk()?.disks.length), { checkpoint: { ...c1, name: o.name!, parent: 'c1' } }) });
    await failure(runBackupSession(src, s, { repo, full: true, checkpoint: 'b2' }, new RecordingReporter()));
    expect(seen).toEqual({ before: 0, first: { disks: ['vda', 'vdb'], state: { nodes: ['n1'] } }, prepare: 2 });
    // a strategy that journals nothing in setup: the disks are written right after it, still before the checkpoint
    calls.length = 0;
    const quiet = strategy({ fail: 'start' });
    await failure(runBackupSession(source({ prepareCheckpoint: async (o) => ((seen.quiet = onDisk()?.disks.map((d) => d.disk)), { checkpoint: { ...c1, name: o.name!, parent: 'c1' } }) }), quiet, { repo, full: true, checkpoint: 'b3' }, new RecordingReporter()));
    expect(seen.quiet).toEqual(['vda', 'vdb']);
  });

  it('a failure after the operation rolls the checkpoint back and deletes the partial layers', async () => {
    const s = strategy({
      fail: 'transfer',
      onTransfer: async (run) => {
        for (const t of run.targets) {
          fs.mkdirSync(path.dirname(t.partial), { recursive: true });
          fs.writeFileSync(t.partial, 'partial');
        }
        expect(readLock(repo, 'uuid-1')?.journal).toMatchObject({ executed: true, phase: 'running', strategy: { name: 'test' } });
      },
    });
    const err = (await failure(runBackupSession(source(), s, { repo, full: true, checkpoint: 'b2' }, new RecordingReporter()))) as BackupFailedError;
    expect(err.cancelled).toBe(false);
    expect(err.message).toMatch(/failed: the backup job of vda failed: No space left on device; checkpoint b2 rolled back; partial images deleted$/);
    expect(calls.slice(-2)).toEqual(['strategy rollback', 'rollback b2']);
    for (const t of s.seen!.targets) expect(fs.existsSync(t.partial)).toBe(false);
    // the log of a failed backup is kept in the repository
    expect(fs.readFileSync(repo.logPath('uuid-1', s.seen!.backupId), 'utf8')).toMatch(/rolling back/);
  });

  it('a failed writeback of a layer during the copy fails the backup: no manifest, rolled back, partial layers deleted', async () => {
    const s = strategy({
      onTransfer: async (run) => {
        for (const t of run.targets) {
          fs.mkdirSync(path.dirname(t.partial), { recursive: true });
          fs.writeFileSync(t.partial, 'layer bytes');
        }
      },
    });
    // The layer facts spare qemu-img; the record step's own sync and hash succeed on these files.
    s.layerFacts = () => ({ virtualSize: GiB });
    s.earlyWriteback = (name) => (name === 'vda' ? Promise.reject(new Error('writing vda.qcow2.partial to disk failed: EIO')) : Promise.resolve());
    const err = (await failure(runBackupSession(source(), s, { repo, full: true, checkpoint: 'b2' }, new RecordingReporter()))) as BackupFailedError;
    expect(err.message).toMatch(/writing vda\.qcow2\.partial to disk failed: EIO; checkpoint b2 rolled back; partial images deleted$/);
    expect(calls).not.toContain('commit b2');
    expect(repo.list('uuid-1')).toEqual([]);
    for (const t of s.seen!.targets) {
      expect(fs.existsSync(t.partial)).toBe(false);
      expect(fs.existsSync(t.final)).toBe(false);
    }
  });

  it('a cancel (the reporter\'s signal) rolls back and says "cancelled"', async () => {
    const ac = new AbortController();
    const s = strategy({ onTransfer: async (run) => {
      ac.abort();
      if (run.signal.aborted) throw run.signal.reason;
    } });
    const err = (await failure(runBackupSession(source(), s, { repo, full: true, checkpoint: 'b2' }, new RecordingReporter({ signal: ac.signal })))) as BackupFailedError;
    expect(err.cancelled).toBe(true);
    expect(err.message).toMatch(/ was cancelled; checkpoint b2 rolled back; partial images deleted$/);
  });

  it('backup-cancel from another process (the marker) stops it at the strategy\'s next check', async () => {
    const s = strategy({ onTransfer: async (run) => {
      fs.writeFileSync(path.join(repo.vmDir('uuid-1'), 'backup.cancel'), run.backupId);
      expect(run.cancelRequested()).toBe(true);
      throw run.signal.reason;
    } });
    const log = new RecordingReporter();
    const err = (await failure(runBackupSession(source(), s, { repo, full: true }, log))) as BackupFailedError;
    expect(err.cancelled).toBe(true);
    expect(log.lines).toContain('cancel requested (backup-cancel)');
  });

  it('export-only: publishes the exports, waits for backup-end, then records only the checkpoint', async () => {
    const s = strategy({ exportOnly: true });
    const ended: string[] = [];
    const r = await runBackupSession(source(), s, {
      repo, full: true, checkpoint: 'e1',
      onExports: (list) => {
        ended.push(...list.map((e) => e.uri));
        void requestExportEnd(repo, 'uuid-1', 'success').then((x) => ended.push(`ended ${x.backupId}`));
      },
    }, new RecordingReporter());
    await new Promise((res) => setTimeout(res, 150));
    expect(r).toEqual({ backupId: r.backupId, checkpoint: 'e1', scratchPeakBytes: 0 });
    expect(ended).toEqual(['nbd://x/vda', 'nbd://x/vdb', `ended ${r.backupId}`]);
    expect(calls).toContain('finish');
    expect(calls).toContain('commit e1');
    expect(calls).not.toContain('transfer');
    expect(repo.list('uuid-1')).toEqual([]);
  });
});
