// A checkpoint prepared for a caller's transaction (a backup) and not recorded yet, seen from a
// second engine on the lab's other QMP socket: "being created by …" while its operation runs, a
// left-over once that operation gave up or its process was killed (kill -9 of a real child
// process), and cleaned up by the next checkpoint change or by the next backup (push.ts's
// recovery of a dead backup). Real QEMU, both bitmap layouts.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BitmapLayout, HealthIssue } from '../../../shared/domain';
import { QmpClient } from '../../qmp/client';
import { RecordingReporter } from '../operation';
import { runBackup } from '../qmp-driver/push';
import { BackupRepository } from '../backup/repository';
import { CheckpointEngine } from './engine';
import { KiB, MiB, bitmap, startRig, stopRig, summary, write, type Rig } from './itest-helpers';

const brief = (issues: HealthIssue[]) => issues.filter((i) => i.state !== 'disk-incapable').map((i) => [i.state, i.disk, i.bitmap ?? i.checkpoint]);

/** Runs `body` in a child process (tsx) with `engine`, `client`, `runBackup`, `BackupRepository` in scope, on the lab's second socket. */
function child(rig: Rig, body: string): { proc: ChildProcess; ready: Promise<string> } {
  const here = __dirname;
  const script = `
    require(${JSON.stringify(require.resolve('tsx/cjs'))});
    const { QmpClient } = require(${JSON.stringify(path.join(here, '../../qmp/client.ts'))});
    const { CheckpointEngine } = require(${JSON.stringify(path.join(here, 'engine.ts'))});
    const { runBackup } = require(${JSON.stringify(path.join(here, '../qmp-driver/push.ts'))});
    const { RecordingReporter } = require(${JSON.stringify(path.join(here, '../operation.ts'))});
    const { BackupRepository } = require(${JSON.stringify(path.join(here, '../backup/repository.ts'))});
    (async () => {
      const client = await QmpClient.connect(${JSON.stringify(rig.lab.qmpSecondary)});
      const engine = await CheckpointEngine.open(client, { endpoint: ${JSON.stringify(rig.lab.qmpSecondary)}, stateDir: ${JSON.stringify(rig.stateDir)} });
      ${body}
    })().catch((e) => { console.log('FAILED ' + e.message); process.exit(3); });`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const ready = new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('READY')) resolve(out);
      if (out.includes('FAILED')) reject(new Error(out));
    });
    proc.on('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
  return { proc, ready };
}

async function kill9(proc: ChildProcess): Promise<void> {
  const gone = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGKILL');
  await gone;
}

describe.each(['independent', 'chained'] as BitmapLayout[])('pending checkpoints seen from another engine (%s)', (layout) => {
  let rig: Rig | undefined;
  let clientB: QmpClient | undefined;
  let B: CheckpointEngine | undefined;
  const openB = async () => {
    clientB = await QmpClient.connect(rig!.lab.qmpSecondary);
    B = await CheckpointEngine.open(clientB, { endpoint: rig!.lab.qmpSecondary, stateDir: rig!.stateDir });
  };
  const closeB = async () => {
    await B?.close();
    await clientB?.close();
  };
  const pendingFiles = () => (fs.existsSync(path.join(rig!.stateDir, 'vms')) ? fs.readdirSync(path.join(rig!.stateDir, 'vms', fs.readdirSync(path.join(rig!.stateDir, 'vms'))[0]!, 'pending')) : []);

  beforeAll(async () => {
    rig = await startRig();
    await rig.engine.create({ name: 'base', layout });
    await write(rig.client, 'vda', 0, 128 * KiB);
    await openB();
  });
  afterAll(async () => {
    await closeB().catch(() => undefined);
    await stopRig(rig);
  });

  it('while A runs a prepared checkpoint, B reports its bitmaps as being created (not foreign); after commit both agree', async () => {
    const A = rig!.engine;
    let during: HealthIssue[] = [];
    await A.withLock(async () => {
      const prepared = await A.prepareCreate({ name: 'bk1' });
      await rig!.client.execute('transaction', { actions: prepared.actions });
      during = (await B!.health()).issues;
      expect(B!.list().map((c) => c.name)).toEqual(['base']);
      await A.commitCreate(prepared);
    }, 'backup test-1');
    expect(brief(during)).toEqual([['checkpoint-pending', 'vda', 'bk1'], ['checkpoint-pending', 'vdb', 'bk1']]);
    expect(during[0]).toMatchObject({
      severity: 'info', checkpoint: 'bk1',
      message: `bitmap bk1 on vda belongs to checkpoint bk1, being created by backup test-1 (pid ${process.pid})`,
    });
    // after the commit: recorded, no marker, and both engines see the same healthy state
    expect(pendingFiles()).toEqual([]);
    expect(brief((await B!.health()).issues)).toEqual([]);
    expect(brief((await A.health()).issues)).toEqual([]);
    expect(B!.list().map((c) => c.name)).toEqual(['base', 'bk1']);
    expect(B!.current()?.name).toBe('bk1');
  });

  it('a prepared checkpoint whose transaction never ran leaves nothing behind when the lock is released', async () => {
    const A = rig!.engine;
    await A.withLock(async () => {
      await A.prepareCreate({ name: 'never' });
      expect(pendingFiles()).toEqual(['never.json']);
    }, 'backup test-never');
    expect(pendingFiles()).toEqual([]);
    expect(brief((await B!.health()).issues)).toEqual([]);
  });

  it('an operation that ends without commit or rollback leaves an abandoned checkpoint; checkpoint-delete rolls it back', async () => {
    const A = rig!.engine;
    await A.withLock(async () => {
      const prepared = await A.prepareCreate({ name: 'bk2' });
      await rig!.client.execute('transaction', { actions: prepared.actions });
    }, 'backup test-2');
    await write(rig!.client, 'vda', 1 * MiB, 64 * KiB); // lands in bk2 (and, independent, in base and bk1)
    const issues = (await B!.health()).issues;
    expect(brief(issues)).toEqual([['checkpoint-left-over', 'vda', 'bk2'], ['checkpoint-left-over', 'vdb', 'bk2']]);
    expect(issues[0]).toMatchObject({
      severity: 'warning',
      message: `bitmap bk2 on vda was left by an unfinished backup test-2 (pid ${process.pid}); checkpoint bk2 was never recorded`,
    });
    if (layout === 'chained') expect(issues[0]!.consequence).toMatch(/^writes to vda since checkpoint bk1 are tracked in it rather than in bk1's bitmap; .* merges it back into bk1/);
    const bk1Before = (await bitmap(rig!.client, 'vda', 'bk1'))!;
    expect(bk1Before.recording).toBe(layout === 'independent');

    expect(await B!.delete('bk2')).toEqual({ deleted: ['bk2'], reparented: [] });
    expect(await bitmap(rig!.client, 'vda', 'bk2')).toBeUndefined();
    expect(await bitmap(rig!.client, 'vdb', 'bk2')).toBeUndefined();
    // chained: merged back, so bk1 holds the write made while bk2 recorded, and records again
    expect(await bitmap(rig!.client, 'vda', 'bk1')).toMatchObject({ recording: true, count: 64 * KiB });
    expect(pendingFiles()).toEqual([]);
    expect(brief((await A.health()).issues)).toEqual([]);
    expect(A.list().map((c) => c.name)).toEqual(['base', 'bk1']);
  });

  it('a process killed between its transaction and the commit: B says so, and the next create cleans up', async () => {
    await closeB(); // the child takes the second socket
    const { proc, ready } = child(rig!, `
      await engine.withLock(async () => {
        const prepared = await engine.prepareCreate({ name: 'bk3' });
        await client.execute('transaction', { actions: prepared.actions });
        console.log('READY');
        await new Promise(() => undefined);
      }, 'backup crash-test');`);
    await ready;
    const pid = proc.pid!;
    await kill9(proc);
    await openB();
    await write(rig!.client, 'vda', 2 * MiB, 64 * KiB);
    const issues = (await B!.health()).issues;
    expect(brief(issues)).toEqual([['checkpoint-left-over', 'vda', 'bk3'], ['checkpoint-left-over', 'vdb', 'bk3']]);
    expect(issues[0]!.message).toBe(`bitmap bk3 on vda was left by an interrupted backup crash-test (pid ${pid}); checkpoint bk3 was never recorded`);
    expect(issues.some((i) => i.state === 'foreign-bitmap' || i.state === 'bitmap-not-recording')).toBe(false);

    // the dead process's metadata lock is stale: B takes it, rolls bk3 back, then creates
    const next = await B!.create({ name: 'after-crash' });
    expect(next.parent).toBe('bk1');
    expect(Object.keys(await summary(rig!.client, 'vda')).sort()).toEqual(['after-crash', 'base', 'bk1']);
    const bk1 = (await bitmap(rig!.client, 'vda', 'bk1'))!;
    // both writes since bk1: chained through the merge of bk3 back into bk1, independent because bk1 kept recording
    expect(bk1).toMatchObject({ recording: layout === 'independent', count: 2 * 64 * KiB });
    expect(pendingFiles()).toEqual([]);
    expect(brief((await B!.health()).issues)).toEqual([]);
    await B!.delete('after-crash');
  });

  it('a backup killed mid-copy: B reports the left-over, and the next backup (push.ts recovery) rolls it back', async () => {
    await write(rig!.client, 'vda', 4 * MiB, 4 * MiB);
    const repoDir = path.join(rig!.root, 'repo');
    await closeB();
    const { proc, ready } = child(rig!, `
      const repo = BackupRepository.open(${JSON.stringify(repoDir)}, { create: true });
      await runBackup(engine, client, { repo, full: true, checkpoint: 'bkp', disks: ['vda'], speedMiBps: 0.25,
        reporter: new RecordingReporter({ onChange: (j) => { if (j.log.some((l) => l.includes('transaction done'))) console.log('READY'); } }) });
      console.log('FAILED the backup finished before it could be killed');`);
    await ready;
    const pid = proc.pid!;
    await kill9(proc);
    await openB();
    const issues = (await B!.health()).issues;
    expect(brief(issues)).toEqual([['checkpoint-left-over', 'vda', 'bkp']]);
    expect(issues[0]!.message).toMatch(new RegExp(`^bitmap bkp on vda was left by an interrupted backup \\S+ \\(pid ${pid}\\); checkpoint bkp was never recorded$`));

    const repo = BackupRepository.open(repoDir);
    const lines: string[] = [];
    const m = await runBackup(B!, clientB!, { repo, full: true, checkpoint: 'bkq', disks: ['vda'], reporter: new RecordingReporter({ onChange: (j) => lines.splice(0, lines.length, ...j.log) }) });
    expect(m.checkpoint).toBe('bkq');
    // push.ts's recovery rolled the dead backup's checkpoint back through rollbackCreate (which forgot the marker)
    expect(lines.some((l) => /checkpoint bkp of unfinished backup \S+ rolled back/.test(l))).toBe(true);
    expect(await bitmap(rig!.client, 'vda', 'bkp')).toBeUndefined();
    expect(pendingFiles()).toEqual([]);
    expect(brief((await B!.health()).issues)).toEqual([]);
    expect(B!.list().map((c) => c.name)).toEqual(['base', 'bk1', 'bkq']);
    if (layout === 'chained') {
      expect((await bitmap(rig!.client, 'vda', 'bk1'))!.recording).toBe(false);
      expect((await bitmap(rig!.client, 'vdb', 'bk1'))!.recording).toBe(true); // vdb was not part of bkq
    }
  });
});
