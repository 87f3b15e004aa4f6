// Pull-mode failures against a real QEMU (issue 5): the NBD export vanishes mid-read (block-export-del
// or nbd-server-stop from a second QMP connection), QEMU killed mid-pull, the pulling process killed
// mid-copy, and an export-only client that disconnects mid-copy before backup-end --failure.
// Each must fail clearly and leave nothing half-done: no manifest, no partial layer, no writer, no
// fleece file, nothing left in QEMU, the new checkpoint rolled back; earlier backups verify and
// restore byte-identical and earlier checkpoints' bitmaps are unchanged (sha256 of their bits).
//
// "Mid-copy" is made deterministic without test hooks in the engine: the pull copies 64 KiB pieces
// one at a time and reports progress after each; the test's progress listener runs the fault
// *synchronously* (a child process talking QMP, or a signal) as soon as the first piece was copied,
// so the copy cannot advance until the fault has happened, and hundreds of pieces remain.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../../shared/contract';
import { NbdClient } from '../../nbd/client';
import { BASE_ALLOCATION } from '../../nbd/protocol';
import { QmpClient } from '../../qmp/client';
import { type BackupRig, backupRigPerSuite, compareWith, KiB, MiB, startBackupRig, stopBackupRig } from '../backup/itest-helpers';
import { requestExportEnd } from '../backup/control';
import { readLock } from '../backup/lock';
import type { BackupManifest } from '../backup/manifest';
import { restoreTo } from '../backup/restore';
import { BackupFailedError } from '../backup/session';
import { describeFailures, verifyBackups } from '../backup/verify';
import { CheckpointEngine } from '../checkpoints/engine';
import { isQemuAlive, startLab, stopLab } from '../lab/labvm';
import { TEMP_BITMAP_PREFIX } from '../names';
import { RecordingReporter } from '../operation';
import { runPull, type RunPullOptions } from './pull';
import { runBackup } from './push';
import { qmpStateOf } from './recovery';

const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 16 * MiB },
];
/** Dirty data the faulty pulls copy: 384 pieces of 64 KiB on vda, so the fault always lands mid-copy. */
const DIRTY = 24 * MiB;
const PIECE = 64 * KiB;

// ---------------------------------------------------------------- helpers

/** Runs QMP commands on a second monitor from a child process, synchronously (the caller's event loop is frozen meanwhile). */
function qmpSync(endpoint: string, action: 'delete-exports' | 'nbd-server-stop'): string[] {
  const script = `
    const net = require('node:net');
    const [sock, action] = process.argv.slice(1);
    const s = net.connect(sock);
    const msgs = [], waiters = [];
    let buf = '', n = 0;
    const flush = () => { for (let k = 0; k < waiters.length; k++) { const i = msgs.findIndex(waiters[k].pred); if (i >= 0) { const [m] = msgs.splice(i, 1); waiters.splice(k--, 1)[0].res(m); } } };
    s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); if (l.trim()) { msgs.push(JSON.parse(l)); flush(); } } });
    const next = (pred) => new Promise((res) => { waiters.push({ pred, res }); flush(); });
    const exec = async (execute, args) => { const id = 'c' + ++n; s.write(JSON.stringify({ execute, arguments: args, id }) + '\\n'); const r = await next((m) => m.id === id); if (r.error) throw new Error(execute + ': ' + r.error.desc); return r.return; };
    setTimeout(() => { console.error('timed out'); process.exit(2); }, 10000);
    (async () => {
      await next((m) => m.QMP);
      await exec('qmp_capabilities', {});
      const ids = (await exec('query-block-exports', {})).map((e) => e.id);
      const gone = ids.map((id) => next((m) => m.event === 'BLOCK_EXPORT_DELETED' && m.data.id === id));
      if (action === 'nbd-server-stop') await exec('nbd-server-stop', {});
      else for (const id of ids) await exec('block-export-del', { id, mode: 'hard' });
      await Promise.all(gone);
      process.stdout.write(JSON.stringify(ids));
      process.exit(0);
    })().catch((e) => { console.error(e.message); process.exit(1); });
  `;
  const r = spawnSync(process.execPath, ['-e', script, endpoint.replace(/^unix:/, ''), action], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) throw new Error(`QMP ${action} on the second monitor failed: ${r.stderr || r.error?.message}`);
  return JSON.parse(r.stdout) as string[];
}

/** Blocks the event loop (so the copy cannot advance) until `cond` holds. */
function blockUntil(cond: () => boolean, what: string, timeoutMs = 5_000): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    Atomics.wait(sleeper, 0, 0, 10);
  }
}

/** A progress listener that runs `fault` once, synchronously, after the first piece was copied. */
function afterFirstPiece(fault: (progress: JobInfo['progress']) => void): { reporter: RecordingReporter; fired: () => JobInfo['progress'] | undefined } {
  let at: JobInfo['progress'] | undefined;
  return {
    reporter: new RecordingReporter({ onChange: (job) => {
      if (at || !job.progress.some((p) => p.done > 0)) return;
      at = job.progress.map((p) => ({ ...p }));
      fault(at);
    } }),
    fired: () => at,
  };
}

function repoFiles(r: BackupRig): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!p.includes(`${path.sep}logs${path.sep}`)) out.push(path.relative(r.repo.root, p));
    }
  };
  walk(r.repo.root);
  return out.sort();
}

interface State {
  checkpoints: string[];
  current?: string;
  /** Per disk: name, recording, granularity, count and sha256 of every named bitmap. */
  bitmaps: Record<string, string[]>;
  backups: string[];
  files: string[];
}

async function stateOf(r: BackupRig): Promise<State> {
  const nodes = await r.client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; recording: boolean; granularity: number; count: number }[] }[]>('query-named-block-nodes', { flat: true });
  const bitmaps: Record<string, string[]> = {};
  for (const d of DISKS) {
    const rows: string[] = [];
    for (const b of nodes.find((n) => n['node-name'] === `${d.name}-fmt`)?.['dirty-bitmaps'] ?? []) {
      const sha = b.name ? (await r.client.execute<{ sha256: string }>('x-debug-block-dirty-bitmap-sha256', { node: `${d.name}-fmt`, name: b.name })).sha256 : '-';
      rows.push(`${b.name ?? '(anonymous)'} recording=${b.recording} granularity=${b.granularity} count=${b.count} sha256=${sha}`);
    }
    bitmaps[d.name] = rows.sort();
  }
  return {
    checkpoints: r.engine.list().map((c) => c.name), current: r.engine.current()?.name, bitmaps,
    backups: r.repo.list(r.engine.vmId).map((m) => m.id), files: repoFiles(r),
  };
}

/** Nothing of a pull outlives it: in QEMU, in the state dir's fleece directory, or in the repository. */
async function expectNothingLeft(r: BackupRig): Promise<void> {
  const c = r.client;
  const nodes = await c.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; busy: boolean }[] }[]>('query-named-block-nodes', { flat: true });
  expect(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('tidemark-'))).toEqual([]);
  expect(nodes.flatMap((n) => n['dirty-bitmaps'] ?? []).filter((b) => b.busy || b.name?.startsWith(TEMP_BITMAP_PREFIX))).toEqual([]);
  expect(await c.execute('query-block-exports')).toEqual([]);
  expect(await c.execute('query-jobs')).toEqual([]);
  const fleece = path.join(r.stateDir, 'run', 'fleece');
  expect(fs.existsSync(fleece) ? fs.readdirSync(fleece) : []).toEqual([]);
  expect(readLock(r.repo, r.engine.vmId)).toBeUndefined();
  expect(r.repo.orphanImages(r.engine.vmId)).toEqual([]);
  expect(repoFiles(r).filter((f) => f.endsWith('.partial'))).toEqual([]);
}

/** Every earlier backup verifies and every one of its disks restores byte-identical to its shadow snapshot. */
async function expectEarlierBackupsIntact(r: BackupRig, earlier: BackupManifest[]): Promise<void> {
  const rep = await verifyBackups(r.repo, { ids: earlier.map((m) => m.id) });
  expect(describeFailures(rep)).toEqual([]);
  expect(rep.ok).toBe(true);
  for (const m of earlier) {
    for (const d of m.disks) {
      const to = path.join(r.root, `check-${m.id}-${d.name}.qcow2`);
      await restoreTo({ repo: r.repo, backup: m.id, disk: d.name, to });
      expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, d.name)), `restore of ${m.id} ${d.name}`).toBe('');
      fs.rmSync(to, { force: true });
    }
  }
}

/** A pull into the repository that must succeed; its point is kept in the shadow. */
async function pull(r: BackupRig, opts: Partial<RunPullOptions> = {}): Promise<BackupManifest> {
  const res = await runPull(r.engine, r.client, { repo: r.repo, stateDir: r.stateDir, ...opts });
  if (res.mode !== 'repository') throw new Error('expected a repository pull');
  r.shadow.snapshot(res.backupId, res.manifest.disks.map((d) => d.name));
  return res.manifest;
}

/** A pull whose copy is broken by `fault` after its first piece; resolves with the error and where the copy was. */
async function faultyPull(r: BackupRig, checkpoint: string, fault: (progress: JobInfo['progress']) => void): Promise<{ err: Error; at: JobInfo['progress'] }> {
  const hook = afterFirstPiece(fault);
  const err = await runPull(r.engine, r.client, {
    repo: r.repo, stateDir: r.stateDir, checkpoint, pieceBytes: PIECE, parallel: 1, reporter: hook.reporter,
  }).then(() => new Error('the pull succeeded although its copy was broken'), (e: Error) => e);
  const at = hook.fired();
  expect(at, 'the fault never ran: the copy made no progress').toBeDefined();
  const vda = at!.find((p) => p.disk === 'vda')!;
  expect(vda.done).toBeGreaterThan(0);
  expect(vda.done).toBeLessThan(vda.total); // mid-copy
  return { err, at: at! };
}

/** Stops QEMU with `stop`, starts it again on the same disks, and reconnects the rig. */
async function restart(r: BackupRig, stop: () => Promise<unknown>): Promise<void> {
  await r.engine.close().catch(() => undefined);
  await r.client.close().catch(() => undefined);
  await stop();
  const lab = await startLab({ dir: r.labDir });
  r.lab = lab;
  r.client = await QmpClient.connect(lab.qmp);
  r.shadow.reconnect(r.client);
  r.engine = await CheckpointEngine.open(r.client, { endpoint: lab.qmp, stateDir: r.stateDir });
}

// ---------------------------------------------------------------- the export vanishes, the client goes away

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

// ---------------------------------------------------------------- QEMU killed

describe('pull faults: QEMU killed mid-pull (real QEMU)', () => {
  const rigOf = backupRigPerSuite(DISKS, 60_000);

  it('fails clearly, leaves nothing half-done, keeps earlier backups; the next backup falls back to full with the reason recorded', async () => {
    const r = rigOf();
    await r.engine.create({ name: 'c0', layout: 'independent' });
    await r.shadow.write('vda', 0, 2 * MiB, 0x61);
    await r.shadow.write('vdb', 0, 1 * MiB, 0x62);
    const first = await pull(r, { full: true, checkpoint: 'p1' });
    // A clean restart stores the bitmaps in the images; the crash below then leaves them in-use (inconsistent).
    await restart(r, () => stopLab(r.labDir));
    await r.shadow.write('vda', 4 * MiB, DIRTY, 0x63);
    await r.shadow.write('vdb', 4 * MiB, 256 * KiB, 0x64);
    for (const d of DISKS) await r.client.hmp(`qemu-io drive-${d.name} "flush"`); // the guest's data is on disk; only QEMU's own state dies
    const files = repoFiles(r);
    const checkpoints = r.engine.list().map((c) => c.name);
    const pid = r.lab.pid!;
    const { err } = await faultyPull(r, 'doomed', () => {
      process.kill(pid, 'SIGKILL');
      blockUntil(() => !isQemuAlive(pid), 'QEMU to die');
    });
    expect(err).toBeInstanceOf(BackupFailedError);
    expect(err.message).toMatch(/failed: the QMP connection closed/);
    expect(err.message).toMatch(/checkpoint doomed was never recorded \(QEMU is gone, and with it the bitmaps it created\)/);
    // Nothing half-done: the repository as before (the layer QEMU was writing is gone), no fleece file; the journal
    // stays, stale (QEMU could have lived on with only the connection gone): the next pull cleans up.
    expect(repoFiles(r).filter((f) => !f.endsWith('backup.lock'))).toEqual(files);
    expect(r.repo.orphanImages(r.engine.vmId)).toEqual([]);
    expect(fs.readdirSync(path.join(r.stateDir, 'run', 'fleece'))).toEqual([]);
    expect(readLock(r.repo, r.engine.vmId)).toMatchObject({ alive: false, journal: { abandoned: expect.stringMatching(/connection to the hypervisor was lost/) as unknown } });
    expect(r.engine.list().map((c) => c.name)).toEqual(checkpoints);
    await expectEarlierBackupsIntact(r, [first]);

    // QEMU comes back: its bitmaps are inconsistent (G13), so the next pull falls back to full, saying why.
    await restart(r, async () => undefined);
    expect((await r.engine.health()).issues.some((i) => i.state === 'bitmap-inconsistent' && i.checkpoint === 'p1')).toBe(true);
    const m = await pull(r);
    for (const d of m.disks) {
      expect(d.kind).toBe('full');
      expect(d.fallbackReason).toMatch(/inconsistent/);
    }
    expect(r.repo.list(r.engine.vmId).find((x) => x.id === m.id)!.disks.map((d) => d.fallbackReason)).toEqual(m.disks.map((d) => d.fallbackReason));
    expect(m.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(2 * MiB + DIRTY);
    await expectEarlierBackupsIntact(r, [first, m]);
    await expectNothingLeft(r);
  }, 120_000);
});
