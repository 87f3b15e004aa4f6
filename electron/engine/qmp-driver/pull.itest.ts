// Pull-mode backups against a real lab VM. The oracle is a shadow copy of each disk that receives
// the same writes as the guest; a backup must equal the shadow at its point in time, even while
// writes race the copy.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from '../../nbd/client';
import { makeTlsCreds, freePort, nbdinfoMap } from '../../nbd/testkit';
import { imageInfo } from '../backup/qemuimg';
import { BackupRepository } from '../backup/repository';
import { requestExportEnd as requestPullEnd } from '../backup/control';
import { readLock } from '../backup/lock';
import { BackupFailedError } from '../backup/session';
import { RecordingReporter } from '../operation';
import { bitmaps, KiB, MiB, startRig, stopRig, type Rig } from '../checkpoints/itest-helpers';
import { TEMP_BITMAP_PREFIX } from '../names';
import { runPull, type PullExport } from './pull';
import { runBackup } from './push';

let rig: Rig;
let repo: BackupRepository;
const shadow: Record<string, Buffer> = {};

beforeAll(async () => {
  rig = await startRig({ disks: [{ name: 'vda', sizeBytes: 32 * MiB }, { name: 'vdb', sizeBytes: 16 * MiB, clusterSize: 4096 }] });
  repo = BackupRepository.open(path.join(rig.root, 'repo'), { create: true });
  shadow.vda = Buffer.alloc(32 * MiB);
  shadow.vdb = Buffer.alloc(16 * MiB);
});
afterAll(async () => {
  await stopRig(rig);
});

/** A guest write, mirrored into the shadow. */
async function write(disk: string, offset: number, length: number, pattern: number): Promise<void> {
  const out = await rig.client.hmp(`qemu-io drive-${disk} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
  if (out.trim()) throw new Error(out);
  shadow[disk]!.fill(pattern, offset, offset + length);
}
async function writeZeroes(disk: string, offset: number, length: number): Promise<void> {
  const out = await rig.client.hmp(`qemu-io drive-${disk} "write -z ${offset} ${length}"`);
  if (out.trim()) throw new Error(out);
  shadow[disk]!.fill(0, offset, offset + length);
}

/** Runs checks against a waiting export-only pull; if one fails, the pull is ended as failed (not left waiting). */
async function endOnFailure(checks: () => Promise<void>): Promise<void> {
  try {
    await checks();
  } catch (e) {
    await requestPullEnd(repo, rig.engine.vmId, 'failure').catch(() => undefined);
    throw e;
  }
}

/** The content of a backup's disk (its chain flattened by qemu-img convert). */
function restore(backupId: string, disk: string): Buffer {
  const out = path.join(rig.root, `restore-${backupId}-${disk}.raw`);
  execFileSync('qemu-img', ['convert', '-O', 'raw', repo.imagePath(rig.engine.vmId, disk, backupId), out]);
  const b = fs.readFileSync(out);
  fs.rmSync(out);
  return b;
}

/** Nothing of a pull may outlive it in QEMU or on disk. */
async function expectClean(): Promise<void> {
  const c = rig.client;
  for (const disk of ['vda', 'vdb']) expect((await bitmaps(c, disk)).filter((b) => b.name?.startsWith(TEMP_BITMAP_PREFIX) || b.busy)).toEqual([]);
  expect(await c.execute('query-block-exports')).toEqual([]);
  expect(await c.execute('query-jobs')).toEqual([]);
  const nodes = await c.execute<{ 'node-name': string }[]>('query-named-block-nodes');
  expect(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('tidemark-'))).toEqual([]);
  const fleece = path.join(rig.stateDir, 'run', 'fleece');
  expect(fs.existsSync(fleece) ? fs.readdirSync(fleece) : []).toEqual([]);
  expect(readLock(repo, rig.engine.vmId)).toBeUndefined();
  expect(repo.orphanImages(rig.engine.vmId)).toEqual([]);
}

describe('pull backups into the repository', () => {
  it('full, then incremental with writes racing the copy: each restores to the shadow at its point in time', async () => {
    await rig.engine.create({ name: 'c0', layout: 'chained' });
    await write('vda', 0, 4 * MiB, 0x11);
    await write('vda', 20 * MiB, MiB, 0x12);
    await write('vdb', 0, 16 * MiB, 0x21);
    const full = await runPull(rig.engine, rig.client, { repo, stateDir: rig.stateDir, full: true, checkpoint: 'p1' });
    expect(full.mode).toBe('repository');
    if (full.mode !== 'repository') return;
    expect(full.manifest.disks.map((d) => [d.name, d.kind])).toEqual([['vda', 'full'], ['vdb', 'full']]);
    // A full copies allocated data only: 5 MiB of vda, all 16 MiB of vdb.
    expect(full.manifest.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(5 * MiB);
    expect(rig.engine.current()?.name).toBe('p1');
    expect(restore(full.backupId, 'vda').equals(shadow.vda!)).toBe(true);
    expect(restore(full.backupId, 'vdb').equals(shadow.vdb!)).toBe(true);

    // Changes since p1: data, a 4 KiB write on the 4 KiB-granularity disk, and zeroes over old data.
    await write('vda', MiB, 64 * KiB, 0x31);
    await write('vda', 10 * MiB, 2 * MiB, 0x32);
    await writeZeroes('vda', 20 * MiB, 256 * KiB);
    for (let i = 0; i < 64; i++) await write('vdb', i * 256 * KiB + 8 * KiB, 4 * KiB, 0x40 + (i % 16));
    const atBegin = { vda: Buffer.from(shadow.vda!), vdb: Buffer.from(shadow.vdb!) };
    const racing: Promise<void>[] = [];
    let raced = false;
    const inc = await runPull(rig.engine, rig.client, {
      repo, stateDir: rig.stateDir, checkpoint: 'p2', pieceBytes: 64 * KiB, parallel: 2,
      reporter: new RecordingReporter({ onChange: (job) => {
        // As soon as the point in time is fixed, overwrite what is being copied.
        if (!raced && job.log.some((l) => l.includes('transaction done'))) {
          raced = true;
          racing.push((async () => {
            await write('vda', 10 * MiB, 2 * MiB, 0x55);
            await write('vda', MiB, 64 * KiB, 0x56);
            await write('vdb', 8 * KiB, 4 * KiB, 0x57);
          })());
        }
      } }),
    });
    await Promise.all(racing);
    expect(raced).toBe(true);
    if (inc.mode !== 'repository') throw new Error('expected a repository pull');
    expect(inc.manifest.kind).toBe('incremental');
    const vda = inc.manifest.disks.find((d) => d.name === 'vda')!;
    const vdb = inc.manifest.disks.find((d) => d.name === 'vdb')!;
    expect([vda.kind, vda.since, vda.base]).toEqual(['incremental', 'p1', full.backupId]);
    // The layers' facts were read from QEMU before it closed them (no qemu-img info): qemu-img agrees.
    for (const d of [vda, vdb]) {
      const src = await imageInfo(d.sourceImage, { shared: true });
      expect([d.virtualSize, d.sourceCompat, d.sourceClusterSize]).toEqual([src.virtualSize, src.compat, src.clusterSize]);
      expect((await imageInfo(repo.imagePath(rig.engine.vmId, d.name, inc.backupId))).virtualSize).toBe(d.virtualSize);
    }
    // Only the dirty data travels: 64 KiB + 2 MiB on vda (the zeroes are written, not read), 64 × 4 KiB on vdb.
    expect(vda.bytesCopied).toBe(64 * KiB + 2 * MiB);
    expect(vdb.bytesCopied).toBe(64 * 4 * KiB);
    expect(restore(inc.backupId, 'vda').equals(atBegin.vda)).toBe(true);
    expect(restore(inc.backupId, 'vdb').equals(atBegin.vdb)).toBe(true);
    // Negative control: the racing writes are in the disk now, not in the backup.
    expect(restore(inc.backupId, 'vda').equals(shadow.vda!)).toBe(false);
    // The checkpoint p2 was recorded after the copy and now records the racing writes.
    expect(rig.engine.current()?.name).toBe('p2');
    expect((await bitmaps(rig.client, 'vda')).find((b) => b.name === 'p2')).toMatchObject({ recording: true, count: 64 * KiB + 2 * MiB });
    await expectClean();
  });

  it('a push backup chains onto a pull backup in the same repository', async () => {
    await write('vda', 30 * MiB, 512 * KiB, 0x61);
    const before = Buffer.from(shadow.vda!);
    const push = await runBackup(rig.engine, rig.client, { repo, checkpoint: 'p3' });
    const d = push.disks.find((x) => x.name === 'vda')!;
    expect([d.kind, d.since]).toEqual(['incremental', 'p2']);
    expect(restore(push.id, 'vda').equals(before)).toBe(true);
    await expectClean();
  });

  it('cancelled while copying: nothing is recorded and everything is rolled back', async () => {
    await write('vda', 0, 8 * MiB, 0x71);
    const ctl = new AbortController();
    const before = { list: rig.engine.list().map((c) => c.name), manifests: repo.list(rig.engine.vmId).length };
    const err = await runPull(rig.engine, rig.client, {
      repo, stateDir: rig.stateDir, checkpoint: 'never', pieceBytes: 64 * KiB, parallel: 1,
      reporter: new RecordingReporter({ signal: ctl.signal, onChange: (job) => {
        if (job.progress.some((p) => p.done > 0)) ctl.abort();
      } }),
    }).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(BackupFailedError);
    expect((err as BackupFailedError).cancelled).toBe(true);
    expect(err!.message).toMatch(/was cancelled; checkpoint never rolled back/);
    expect(rig.engine.list().map((c) => c.name)).toEqual(before.list);
    expect(repo.list(rig.engine.vmId)).toHaveLength(before.manifests);
    // The previous checkpoint records again (chained layout: rollback re-enabled it).
    const live = await bitmaps(rig.client, 'vda');
    expect(live.find((b) => b.name === 'never')).toBeUndefined();
    expect(live.find((b) => b.name === 'p3')).toMatchObject({ recording: true, count: 8 * MiB });
    await expectClean();
  });

  it('gives up, naming the numbers, when the fleecing images grow past their limit', async () => {
    const err = await runPull(rig.engine, rig.client, { repo, stateDir: rig.stateDir, checkpoint: 'too-big', fleece: { maxBytes: 1 } }).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(BackupFailedError);
    expect(err!.message).toMatch(/fleecing images grew to .* MiB, over the 0.0 MiB limit/);
    expect(rig.engine.list().some((c) => c.name === 'too-big')).toBe(false);
    await expectClean();
  });

  it('refuses to start without room for fleecing, before touching QEMU', async () => {
    const err = await runPull(rig.engine, rig.client, { repo, stateDir: rig.stateDir, fleece: { reserveBytes: 2 ** 50 } }).then(() => undefined, (e: Error) => e);
    expect(err!.message).toMatch(/not enough free space for fleecing in .*: .* MiB free, at least .* MiB needed/);
    await expectClean();
  });
});

describe('export-only pulls', () => {
  it('publishes exports that nbdinfo and nbdcopy read at the point in time; backup-end success records the checkpoint', async () => {
    await write('vda', 4 * MiB, 128 * KiB, 0x81);
    await write('vda', 16 * MiB, 64 * KiB, 0x82);
    const atBegin = Buffer.from(shadow.vda!);
    let seen: PullExport[] = [];
    const checks: Promise<void>[] = [];
    const result = await runPull(rig.engine, rig.client, {
      repo, stateDir: rig.stateDir, disks: ['vda'], checkpoint: 'e1',
      exportOnly: {
        onReady: (exports) => {
          seen = exports;
          checks.push(endOnFailure(async () => {
            const e = exports[0]!;
            expect(e.uri).toMatch(/^nbd\+unix:\/\/\/tidemark-pull-[0-9a-f]{8}\?socket=.*\.sock$/);
            expect(e.dirtyContext).toMatch(/^qemu:dirty-bitmap:tidemark-tmp-bk-/);
            // The point in time is read-only (only the layer a copying pull writes is served writable).
            const ro = await NbdClient.connect(e.uri);
            expect(ro.info.readOnly).toBe(true);
            await expect(ro.write(0, Buffer.alloc(512))).rejects.toThrow(/read-only/);
            await ro.close();
            await write('vda', 4 * MiB, 128 * KiB, 0x99); // after the point in time
            const dirty = nbdinfoMap(e.uri, e.dirtyContext).filter((x) => x.flags & 1).map((x) => [x.offset, x.length]);
            // Since p3: the cancelled pull's 8 MiB at 0 (which covers the 4 MiB write) and 64 KiB at 16 MiB.
            expect(dirty).toEqual([[0, 8 * MiB], [16 * MiB, 64 * KiB]]);
            const copy = path.join(rig.root, 'exported.raw');
            execFileSync('nbdcopy', [e.uri, copy]);
            expect(fs.readFileSync(copy).equals(atBegin)).toBe(true);
            fs.rmSync(copy);
            await requestPullEnd(repo, rig.engine.vmId, 'success');
          }));
        },
      },
    }).catch((e: Error) => e);
    await Promise.all(checks);
    expect(seen).toHaveLength(1);
    expect(result).toMatchObject({ mode: 'export-only', outcome: 'success', checkpoint: 'e1' });
    expect(rig.engine.current()?.name).toBe('e1');
    await expectClean();
  });

  it('backup-end failure rolls the checkpoint back', async () => {
    const checks: Promise<unknown>[] = [];
    const err = await runPull(rig.engine, rig.client, {
      repo, stateDir: rig.stateDir, disks: ['vda'], checkpoint: 'e2',
      exportOnly: { onReady: () => void checks.push(requestPullEnd(repo, rig.engine.vmId, 'failure')) },
    }).then(() => undefined, (e: Error) => e);
    await Promise.all(checks);
    expect(err!.message).toMatch(/outside copy failed; checkpoint e2 rolled back/);
    expect(rig.engine.current()?.name).toBe('e1');
    await expectClean();
    await expect(requestPullEnd(repo, rig.engine.vmId, 'success')).rejects.toThrow(/no pull backup of VM .* is running/);
  });

  it('serves TCP only with TLS, and a client with the right certificates reads it', async () => {
    const port = await freePort();
    await expect(runPull(rig.engine, rig.client, { repo, stateDir: rig.stateDir, exportOnly: { onReady: () => undefined, tcp: { host: '127.0.0.1', port, tlsDir: '' } } })).rejects.toThrow(/needs TLS/);
    const creds = makeTlsCreds(path.join(rig.root, 'tls'));
    const checks: Promise<void>[] = [];
    const result = await runPull(rig.engine, rig.client, {
      repo, stateDir: rig.stateDir, disks: ['vda'], checkpoint: 'e3',
      exportOnly: {
        tcp: { host: '127.0.0.1', port, tlsDir: creds.dir },
        onReady: (exports) => void checks.push(endOnFailure(async () => {
          expect(exports[0]!.uri).toMatch(new RegExp(`^nbds://127\\.0\\.0\\.1:${port}/tidemark-pull-`));
          const plain = await NbdClient.connect(exports[0]!.uri.replace('nbds://', 'nbd://')).then(() => undefined, (e: Error) => e);
          expect(plain!.message).toMatch(/NBD_REP_ERR_TLS_REQD/);
          const c = await NbdClient.connect(exports[0]!.uri, { tls: { ca: creds.caPem, cert: creds.clientCert, key: creds.clientKey } });
          expect((await c.read(16 * MiB, 64 * KiB)).equals(shadow.vda!.subarray(16 * MiB, 16 * MiB + 64 * KiB))).toBe(true);
          await c.close();
          await requestPullEnd(repo, rig.engine.vmId, 'success');
        })),
      },
    }).catch((e: Error) => e);
    await Promise.all(checks);
    expect(result).toMatchObject({ mode: 'export-only', outcome: 'success', checkpoint: 'e3' });
    expect(rig.engine.current()?.name).toBe('e3');
    await expectClean();
  });
});

describe('a pull whose process died', () => {
  it('is cleaned up by the next backup: exports, fleece nodes, bitmaps, checkpoint', async () => {
    // A child process starts an export-only pull through the lab's second QMP socket, then is killed.
    const script = path.join(rig.root, 'dying-pull.ts');
    fs.writeFileSync(script, `
      import { QmpClient } from '${path.resolve(__dirname, '../../qmp/client')}';
      import { CheckpointEngine } from '${path.resolve(__dirname, '../checkpoints/engine')}';
      import { BackupRepository } from '${path.resolve(__dirname, '../backup/repository')}';
      import { runPull } from '${path.resolve(__dirname, './pull')}';
      (async () => {
        const client = await QmpClient.connect(${JSON.stringify(rig.lab.qmpSecondary)});
        const engine = await CheckpointEngine.open(client, { endpoint: ${JSON.stringify(rig.lab.qmp)}, stateDir: ${JSON.stringify(rig.stateDir)} });
        await runPull(engine, client, { repo: BackupRepository.open(${JSON.stringify(repo.root)}), stateDir: ${JSON.stringify(rig.stateDir)}, disks: ['vda'], checkpoint: 'orphan',
          exportOnly: { onReady: (e) => console.log('READY ' + e[0].uri) } });
      })().catch((e) => { console.error(e); process.exit(1); });
    `);
    const child = spawn(path.resolve(__dirname, '../../../node_modules/.bin/tsx'), [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('READY ')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`the child pull exited (${code}) before its exports were ready: ${out}`)));
    });
    expect(await rig.client.execute<unknown[]>('query-block-exports')).toHaveLength(1);
    expect((await bitmaps(rig.client, 'vda')).some((b) => b.name === 'orphan')).toBe(true);
    // tsx runs the script in a child node process: that one holds the lock. Kill it, then tsx.
    const holder = readLock(repo, rig.engine.vmId)!.journal.pid;
    process.kill(holder, 'SIGKILL');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (let i = 0; i < 100 && readLock(repo, rig.engine.vmId)?.alive; i++) await new Promise((r) => setTimeout(r, 20));
    expect(readLock(repo, rig.engine.vmId)).toMatchObject({ alive: false });

    await write('vda', 2 * MiB, 64 * KiB, 0xa1);
    const push = await runBackup(rig.engine, rig.client, { repo, checkpoint: 'after-crash' });
    // Export-only checkpoints (e1, e3) have no layer here, so the push builds on p3, the newest one that has.
    expect(push.disks.find((d) => d.name === 'vda')!.since).toBe('p3');
    expect((await bitmaps(rig.client, 'vda')).some((b) => b.name === 'orphan')).toBe(false);
    expect(rig.engine.list().some((c) => c.name === 'orphan')).toBe(false);
    await expectClean();
  });
});
