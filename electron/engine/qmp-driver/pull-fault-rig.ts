// What the pull-fault tests share (pull-faults.itest.ts, pull-faults-kill.itest.ts): the disks, the
// faults run synchronously from the progress listener, and the checks that nothing was left half-done.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { JobInfo } from '../../../shared/contract';
import { QmpClient } from '../../qmp/client';
import { type BackupRig, compareWith, KiB, MiB } from '../backup/itest-helpers';
import { readLock } from '../backup/lock';
import type { BackupManifest } from '../backup/manifest';
import { restoreTo } from '../backup/restore';
import { describeFailures, verifyBackups } from '../backup/verify';
import { CheckpointEngine } from '../checkpoints/engine';
import { startLab } from '../lab/labvm';
import { TEMP_BITMAP_PREFIX } from '../names';
import { RecordingReporter } from '../operation';
import { runPull, type RunPullOptions } from './pull';

export const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 16 * MiB },
];
/** Dirty data the faulty pulls copy: 384 pieces of 64 KiB on vda, so the fault always lands mid-copy. */
export const DIRTY = 24 * MiB;
export const PIECE = 64 * KiB;

/** Runs QMP commands on a second monitor from a child process, synchronously (the caller's event loop is frozen meanwhile). */
export function qmpSync(endpoint: string, action: 'delete-exports' | 'nbd-server-stop'): string[] {
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
export function blockUntil(cond: () => boolean, what: string, timeoutMs = 5_000): void {
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

export function repoFiles(r: BackupRig): string[] {
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

export interface State {
  checkpoints: string[];
  current?: string;
  /** Per disk: name, recording, granularity, count and sha256 of every named bitmap. */
  bitmaps: Record<string, string[]>;
  backups: string[];
  files: string[];
}

export async function stateOf(r: BackupRig): Promise<State> {
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
export async function expectNothingLeft(r: BackupRig): Promise<void> {
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
export async function expectEarlierBackupsIntact(r: BackupRig, earlier: BackupManifest[]): Promise<void> {
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
export async function pull(r: BackupRig, opts: Partial<RunPullOptions> = {}): Promise<BackupManifest> {
  const res = await runPull(r.engine, r.client, { repo: r.repo, stateDir: r.stateDir, ...opts });
  if (res.mode !== 'repository') throw new Error('expected a repository pull');
  r.shadow.snapshot(res.backupId, res.manifest.disks.map((d) => d.name));
  return res.manifest;
}

/** A pull whose copy is broken by `fault` after its first piece; resolves with the error and where the copy was. */
export async function faultyPull(r: BackupRig, checkpoint: string, fault: (progress: JobInfo['progress']) => void): Promise<{ err: Error; at: JobInfo['progress'] }> {
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
export async function restart(r: BackupRig, stop: () => Promise<unknown>): Promise<void> {
  await r.engine.close().catch(() => undefined);
  await r.client.close().catch(() => undefined);
  await stop();
  const lab = await startLab({ dir: r.labDir });
  r.lab = lab;
  r.client = await QmpClient.connect(lab.qmp);
  r.shadow.reconnect(r.client);
  r.engine = await CheckpointEngine.open(r.client, { endpoint: lab.qmp, stateDir: r.stateDir });
}
