// Pull-mode failures against a real QEMU (issue 5): the NBD export vanishes mid-read (block-export-del
// or nbd-server-stop from a second QMP connection), QEMU killed mid-pull, the pulling process killed
// mid-copy, and an export-only client that disconnects mid-copy before backup-end --failure
// (QEMU killed: pull-faults-kill.itest.ts; shared helpers: pull-fault-rig.ts).
// Each must fail clearly and leave nothing half-done: no manifest, no partial layer, no writer, no
// fleece file, nothing left in QEMU, the new checkpoint rolled back; earlier backups verify and
// restore byte-identical and earlier checkpoints' bitmaps are unchanged (sha256 of their bits).
//
// "Mid-copy" is made deterministic without test hooks in the engine: the pull copies 64 KiB pieces
// one at a time and reports progress after each; the test's progress listener runs the fault
// *synchronously* (a child process talking QMP, or a signal) as soon as the first piece was copied,
// so the copy cannot advance until the fault has happened, and hundreds of pieces remain.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from '../../nbd/client';
import { BASE_ALLOCATION } from '../../nbd/protocol';
import { type BackupRig, compareWith, KiB, MiB, startBackupRig, stopBackupRig } from '../backup/itest-helpers';
import { requestExportEnd } from '../backup/control';
import { readLock } from '../backup/lock';
import type { BackupManifest } from '../backup/manifest';
import { restoreTo } from '../backup/restore';
import { BackupFailedError } from '../backup/session';
import { RecordingReporter } from '../operation';
import { runPull } from './pull';
import { runBackup } from './push';
import { qmpStateOf } from './recovery';
import { DIRTY, DISKS, expectEarlierBackupsIntact, expectNothingLeft, faultyPull, PIECE, pull, qmpSync, type State, stateOf } from './pull-fault-rig';

describe('pull faults: the export vanishes, the client goes away (real QEMU)', () => {
  let rig: BackupRig | undefined;
  const earlier: BackupManifest[] = [];
  let seq = 0;

  beforeAll(async () => {
    rig = await startBackupRig(DISKS);
    const r = rig;
    await r.engine.create({ name: 'c0', layout: 'chained' });
    await r.shadow.write('vda', 0, 2 * MiB, 0x10);
    await r.shadow.write('vdb', 0, 1 * MiB, 0x20);
    const full = await runBackup(r.engine, r.client, { repo: r.repo, full: true, checkpoint: 'b1' });
    r.shadow.snapshot(full.id);
    earlier.push(full);
    await r.shadow.write('vda', 40 * MiB, 1 * MiB, 0x11);
    await r.shadow.write('vdb', 8 * MiB, 256 * KiB, 0x21);
    earlier.push(await pull(r, { checkpoint: 'b2' }));
    expect(earlier[1]!.disks.map((d) => d.kind)).toEqual(['incremental', 'incremental']);
  }, 60_000);
  afterAll(async () => {
    await stopBackupRig(rig);
  });

  /** Dirties DIRTY bytes of vda (and a little of vdb) for the next pull to copy. */
  async function dirty(r: BackupRig): Promise<void> {
    seq++;
    await r.shadow.write('vda', 4 * MiB, DIRTY, 0x30 + seq);
    await r.shadow.write('vdb', 12 * MiB, 64 * KiB, 0x40 + seq);
  }

  /** After a failed pull: the same pull done again has every change (nothing lost), and restores byte-identical. */
  async function nextPullHasEverything(r: BackupRig, before: State): Promise<void> {
    const m = await pull(r);
    expect(m.disks.map((d) => [d.name, d.kind, d.since])).toEqual([['vda', 'incremental', before.current], ['vdb', 'incremental', before.current]]);
    expect(m.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(DIRTY);
    for (const d of m.disks) {
      const to = path.join(r.root, `next-${d.name}.qcow2`);
      await restoreTo({ repo: r.repo, backup: m.id, disk: d.name, to });
      expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, d.name))).toBe('');
      fs.rmSync(to);
    }
    earlier.push(m);
  }

  for (const how of ['delete-exports', 'nbd-server-stop'] as const) {
    it(`the export vanishes mid-read (${how === 'delete-exports' ? 'block-export-del' : 'nbd-server-stop'} from a second QMP connection): clear error, rolled back, earlier state intact`, async () => {
      const r = rig!;
      await dirty(r);
      const before = await stateOf(r);
      let removed: string[] = [];
      const { err } = await faultyPull(r, `vanish-${how}`, () => (removed = qmpSync(r.lab.qmpSecondary, how)));
      expect(removed).toHaveLength(2); // both disks' exports were open (Tidemark writes the layer file itself: no export of it)
      expect(err).toBeInstanceOf(BackupFailedError);
      expect((err as BackupFailedError).cancelled).toBe(false);
      expect(err.message).toMatch(/failed: copying vda: .*closed the connection/);
      expect(err.message).toMatch(new RegExp(`checkpoint vanish-${how} rolled back`));
      await expectNothingLeft(r);
      expect(await stateOf(r)).toEqual(before);
      await expectEarlierBackupsIntact(r, earlier);
      await nextPullHasEverything(r, before);
    }, 90_000);
  }

  it('the pulling process is killed mid-copy: its partial layer, exports, fleece nodes and checkpoint are cleaned up by the next backup', async () => {
    const r = rig!;
    await dirty(r);
    const before = await stateOf(r);
    // A child process pulls through the lab's second QMP socket and freezes after its first piece (as a
    // process can be stopped anywhere); it is killed there.
    const script = path.join(r.root, 'dying-pull.ts');
    fs.writeFileSync(script, `
      import * as fs from 'node:fs';
      import { QmpClient } from '${path.resolve(__dirname, '../../qmp/client')}';
      import { CheckpointEngine } from '${path.resolve(__dirname, '../checkpoints/engine')}';
      import { BackupRepository } from '${path.resolve(__dirname, '../backup/repository')}';
      import { runPull } from '${path.resolve(__dirname, './pull')}';
      import { RecordingReporter } from '${path.resolve(__dirname, '../operation')}';
      (async () => {
        const client = await QmpClient.connect(${JSON.stringify(r.lab.qmpSecondary)});
        const engine = await CheckpointEngine.open(client, { endpoint: ${JSON.stringify(r.lab.qmp)}, stateDir: ${JSON.stringify(r.stateDir)} });
        await runPull(engine, client, { repo: BackupRepository.open(${JSON.stringify(r.repo.root)}), stateDir: ${JSON.stringify(r.stateDir)}, checkpoint: 'killed',
          pieceBytes: ${PIECE}, parallel: 1,
          reporter: new RecordingReporter({ onChange: (job) => {
            const p = job.progress.find((x) => x.disk === 'vda');
            if (!p || p.done === 0) return;
            fs.writeSync(1, 'COPYING ' + p.done + '/' + p.total + '\\n');
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000);
          } }) });
        console.log('FINISHED');
      })().catch((e) => { console.error(e); process.exit(1); });
    `);
    const child = spawn(path.resolve(__dirname, '../../../node_modules/.bin/tsx'), [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('COPYING ')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`the child pull exited (${code}) before it copied: ${out}`)));
      });
      const [done, total] = /COPYING (\d+)\/(\d+)/.exec(out)!.slice(1).map(Number);
      expect(done).toBeGreaterThan(0);
      expect(done).toBeLessThan(total!);
      const held = readLock(r.repo, r.engine.vmId)!;
      const journal = held.journal;
      // Tidemark writes the layer file itself (pull/qcow2-layer.ts): QEMU holds no node of it.
      expect(qmpStateOf(journal.strategy)?.pull?.layerNodes ?? []).toEqual([]);
      const nodeNames = async () => (await r.client.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true })).map((n) => n['node-name']);
      const partial = journal.disks.find((d) => d.disk === 'vda')!.partialImage;
      expect(fs.existsSync(partial)).toBe(true);
      // tsx runs the script in a child node process: that one holds the lock. Kill it, then tsx.
      process.kill(journal.pid, 'SIGKILL');
      child.kill('SIGKILL');
      await new Promise((res) => child.once('exit', res));
      for (let i = 0; i < 100 && readLock(r.repo, r.engine.vmId)?.alive; i++) await new Promise((res) => setTimeout(res, 20));
      expect(readLock(r.repo, r.engine.vmId)).toMatchObject({ alive: false });
      // What the dead pull left: the point-in-time exports and fleece nodes, the checkpoint bitmap, the partial layer.
      const fleeceNodes = (await nodeNames()).filter((n) => n.startsWith('tidemark-bkt-'));
      expect(fleeceNodes).toHaveLength(2);
      expect(await r.client.execute<unknown[]>('query-block-exports')).toHaveLength(2);

      // The next backup (a pull) cleans all that up, then has every change since the last good checkpoint.
      const updates: string[] = [];
      const m = await runPull(r.engine, r.client, { repo: r.repo, stateDir: r.stateDir, reporter: new RecordingReporter({ onChange: (j) => updates.splice(0, updates.length, ...j.log) }) });
      if (m.mode !== 'repository') throw new Error('expected a repository pull');
      r.shadow.snapshot(m.backupId, m.manifest.disks.map((d) => d.name));
      expect(updates.some((l) => l.includes(`cleaning up after an earlier backup that did not finish (${journal.backupId})`))).toBe(true);
      expect(updates.some((l) => /checkpoint killed of unfinished backup \S+ rolled back/.test(l))).toBe(true);
      for (const n of fleeceNodes) expect(await nodeNames()).not.toContain(n);
      expect(fs.existsSync(partial)).toBe(false);
      expect(r.engine.list().map((c) => c.name)).toEqual([...before.checkpoints, m.backupId]);
      expect(m.manifest.disks.map((d) => [d.name, d.kind, d.since])).toEqual([['vda', 'incremental', before.current], ['vdb', 'incremental', before.current]]);
      expect(m.manifest.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(DIRTY);
      await expectEarlierBackupsIntact(r, [...earlier, m.manifest]);
      earlier.push(m.manifest);
      await expectNothingLeft(r);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 90_000);

  it('an export-only client disconnects mid-copy, then backup-end --failure: the export survived it, everything is rolled back', async () => {
    const r = rig!;
    await dirty(r);
    const before = await stateOf(r);
    r.shadow.snapshot('export-point');
    const checks: Promise<void>[] = [];
    const err = await runPull(r.engine, r.client, {
      repo: r.repo, stateDir: r.stateDir, disks: ['vda'], checkpoint: 'ext',
      exportOnly: {
        onReady: (exports) => void checks.push((async () => {
          try {
            const e = exports[0]!;
            // An outside tool reads the first extents, then drops the connection with a read in flight.
            const c = await NbdClient.connect(e.uri, { metaContexts: [BASE_ALLOCATION, e.dirtyContext!] });
            const first = await c.read(4 * MiB, PIECE);
            expect(first.equals(Buffer.alloc(PIECE, 0x30 + seq))).toBe(true);
            const inFlight = c.read(8 * MiB, 4 * MiB).then(() => undefined, (x: Error) => x);
            c.destroy(new Error('the backup tool crashed'));
            expect((await inFlight)?.message).toMatch(/the backup tool crashed/);
            // The export is still there and still shows the point in time to a new client.
            expect(await r.client.execute<unknown[]>('query-block-exports')).toHaveLength(1);
            const again = await NbdClient.connect(e.uri);
            const snap = fs.readFileSync(r.shadow.snapFile('export-point', 'vda'));
            expect((await again.read(0, e.size)).equals(snap)).toBe(true);
            await again.close();
          } finally {
            // The tool gives up and says so (backup-end --failure).
            await requestExportEnd(r.repo, r.engine.vmId, 'failure');
          }
        })()),
      },
    }).then(() => new Error('the export-only pull succeeded'), (e: Error) => e);
    await Promise.all(checks);
    expect(err).toBeInstanceOf(BackupFailedError);
    expect(err.message).toMatch(/backup-end reported that the outside copy failed; checkpoint ext rolled back/);
    r.shadow.dropSnapshot('export-point');
    await expectNothingLeft(r);
    expect(await stateOf(r)).toEqual(before);
    await expectEarlierBackupsIntact(r, earlier);
    await nextPullHasEverything(r, before);
  }, 90_000);
});
