// Benchmark (not pass/fail): push backups on a real lab VM.
//   1. full backup of a 1 GiB disk full of (random) data, against `qemu-img convert` of the same image
//   2. incremental with 64 MiB dirty, scattered (1024 × 64 KiB, 1 MiB stride) and contiguous
//   3. the same 64 MiB dirty on a 1 TiB sparse disk: the cost must follow dirty bytes, not disk size
// Every figure is the whole runBackup() (plan, transaction, jobs, finalize, SHA-256 of the layers,
// manifest, checkpoint); the SHA-256 share is shown on its own. Medians [min..max].
// Run: npx tsx bench/backup-push.ts [rounds]   (default 5)

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checksumFile } from '../electron/engine/backup/checksum';
import { runBackup } from '../electron/engine/qmp-driver/push';
import { BackupRepository } from '../electron/engine/backup/repository';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { silentReporter } from '../electron/engine/operation';
import { QmpClient } from '../electron/qmp/client';
import { median, stats, time } from './measure';

const rounds = Number(process.argv[2] ?? 5);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;


/**
 * Flushes earlier writes and deletions before a timed step. Without it each step pays for the one
 * before it: the 1 GiB files just written or deleted are written back (or, on a file system mounted
 * with `discard`, trimmed) while the next copy runs, which made the full backup look 2-4x slower than
 * the same blockdev-backup driven by hand (measured: the hand-driven job is as slow in that slot).
 */
function settle(): void {
  execFileSync('sync');
}

/** Milliseconds between the first log lines containing `a` and `b` ("HH:MM:SS.mmm text"). */
/** Milliseconds between the first log lines that contain `a` and `b` (times taken as the lines arrive). */
function between(log: { line: string; at: number }[], a: string, b: string): number {
  const at = (what: string) => log.find((l) => l.line.includes(what))?.at ?? NaN;
  return at(b) - at(a);
}

async function dirty(client: QmpClient, disk: string, how: 'scattered' | 'contiguous', at: number, pattern: number): Promise<void> {
  if (how === 'contiguous') {
    await client.hmp(`qemu-io drive-${disk} "write -P 0x${pattern.toString(16)} ${at} 64M"`);
  } else {
    for (let i = 0; i < 1024; i++) await client.hmp(`qemu-io drive-${disk} "write -P 0x${pattern.toString(16)} ${at + i * MiB} 64k"`);
  }
}

/** The same full backup driven by hand (one blockdev-backup, as runBackup issues it: sync=top, manual finalize), incl. opening and closing the target. */
async function handBackup(client: QmpClient, node: string, target: string, size: number): Promise<number> {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', target, String(size)]);
  return time(async () => {
    await client.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'bench-tgt', file: { driver: 'file', filename: target }, backing: null });
    const status = (s: string) => client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === 'bench-job' && e.data.status === s, 120_000);
    const pending = status('pending');
    await client.execute('blockdev-backup', { 'job-id': 'bench-job', device: node, target: 'bench-tgt', sync: 'top', 'auto-finalize': false, 'auto-dismiss': false });
    await pending;
    const concluded = status('concluded');
    await client.execute('job-finalize', { id: 'bench-job' });
    await concluded;
    await client.execute('job-dismiss', { id: 'bench-job' });
    await client.execute('blockdev-del', { 'node-name': 'bench-tgt' });
  });
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmbb-'));
  const labDir = path.join(root, 'lab');
  try {
    // vda: 1 GiB of random data, written into the image before QEMU starts (no zero detection anywhere)
    fs.mkdirSync(path.join(labDir, 'disks'), { recursive: true });
    const raw = path.join(root, 'random.raw');
    execFileSync('head', ['-c', String(GiB), '/dev/urandom'], { stdio: ['ignore', fs.openSync(raw, 'w'), 'inherit'] });
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, path.join(labDir, 'disks', 'vda.qcow2')]);
    fs.rmSync(raw);
    const lab = await startLab({ dir: labDir, disks: [{ name: 'vda', sizeBytes: GiB }, { name: 'big', sizeBytes: 1024 * GiB }] });
    const client = await QmpClient.connect(lab.qmp);
    const engine = await CheckpointEngine.open(client, { endpoint: lab.qmp, stateDir: path.join(root, 'state') });
    console.log(`push backups, ${rounds} rounds each, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);

    // 1. full backup of 1 GiB of data vs qemu-img convert of the same image
    const full: number[] = [];
    const jobShare: number[] = [];
    const shaShare: number[] = [];
    const hand: number[] = [];
    const convert: number[] = [];
    const convertSync: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const repo = BackupRepository.open(path.join(root, `full-${i}`), { create: true });
      let layer = '';
      settle();
      full.push(await time(async () => {
        const log: { line: string; at: number }[] = [];
        const reporter = { ...silentReporter(), log: (line: string) => void log.push({ line, at: performance.now() }) };
        const m = await runBackup(engine, client, { repo, full: true, disks: ['vda'], checkpoint: false, reporter });
        layer = path.join(repo.vmDir(engine.vmId), m.disks[0]!.image);
        jobShare.push(between(log, 'transaction done', 'jobs finalized'));
      }));
      shaShare.push(await time(() => checksumFile(layer)));
      fs.rmSync(repo.root, { recursive: true });
      const out = path.join(root, `convert-${i}.qcow2`);
      settle();
      hand.push(await handBackup(client, 'vda-fmt', out, GiB));
      fs.rmSync(out);
      settle();
      convert.push(await time(() => execFileSync('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'qcow2', lab.disks[0]!.image, out])));
      fs.rmSync(out);
      settle();
      // the backup's figure includes closing the target (blockdev-del flushes it); this one is as durable
      convertSync.push(await time(() => {
        execFileSync('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'qcow2', lab.disks[0]!.image, out]);
        const fd = fs.openSync(out, 'r+');
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      }));
      fs.rmSync(out);
    }
    console.log(`\n1. full backup, 1 GiB of random data`);
    console.log(`   tidemark runBackup (full)              ${stats(full)}`);
    console.log(`     of which the QEMU job (copy+close)   ${stats(jobShare)}`);
    console.log(`     of which SHA-256 of the layer        ${stats(shaShare)}`);
    console.log(`   same blockdev-backup by hand (+close)  ${stats(hand)}`);
    console.log(`   qemu-img convert -U (same image)       ${stats(convert)}`);
    console.log(`   qemu-img convert -U + fsync            ${stats(convertSync)}`);
    console.log(`   ratio backup / convert                 ${(median(full) / median(convert)).toFixed(2)}×  (QEMU job alone: ${(median(jobShare) / median(convert)).toFixed(2)}×; vs convert+fsync: ${(median(full) / median(convertSync)).toFixed(2)}× and ${(median(jobShare) / median(convertSync)).toFixed(2)}×)`);

    // 2. and 3. incremental with 64 MiB dirty, on the 1 GiB disk and on the 1 TiB sparse disk
    const results: Record<string, number[]> = {};
    for (const disk of ['vda', 'big']) {
      const repo = BackupRepository.open(path.join(root, `inc-${disk}`), { create: true });
      if (disk === 'big') await dirty(client, 'big', 'contiguous', 100 * GiB, 0x11); // some data far into the disk
      const baseMs = await time(() => runBackup(engine, client, { repo, full: true, disks: [disk] }));
      if (disk === 'big') console.log(`\n   (full backup of the 1 TiB sparse disk holding 64 MiB: ${baseMs.toFixed(0)} ms)`);
      for (const how of ['scattered', 'contiguous'] as const) {
        const xs: number[] = [];
        for (let i = 0; i < rounds; i++) {
          await dirty(client, disk, how, (how === 'scattered' ? 0 : 512 * MiB) + (disk === 'big' ? 200 * GiB * (i + 1) : 0), 0x20 + i);
          let copied = 0;
          xs.push(await time(async () => {
            const m = await runBackup(engine, client, { repo, disks: [disk] });
            copied = m.disks[0]!.bytesCopied;
          }));
          if (copied !== 64 * MiB) console.log(`   note: ${disk} ${how} copied ${copied} bytes`);
        }
        results[`${disk} ${how}`] = xs;
      }
    }
    console.log(`\n2. incremental, 64 MiB dirty (bytes copied = 64 MiB)`);
    console.log(`   1 GiB disk, scattered 1024 × 64 KiB    ${stats(results['vda scattered']!)}`);
    console.log(`   1 GiB disk, contiguous 64 MiB          ${stats(results['vda contiguous']!)}`);
    console.log(`   vs full backup of 1 GiB                ${(median(results['vda contiguous']!) / median(full)).toFixed(3)}× (contiguous), ${(median(results['vda scattered']!) / median(full)).toFixed(3)}× (scattered)`);
    console.log(`\n3. the same 64 MiB dirty on a 1 TiB sparse disk`);
    console.log(`   1 TiB disk, scattered                  ${stats(results['big scattered']!)}`);
    console.log(`   1 TiB disk, contiguous                 ${stats(results['big contiguous']!)}`);
    console.log(`   ratio 1 TiB / 1 GiB                    ${(median(results['big scattered']!) / median(results['vda scattered']!)).toFixed(2)}× (scattered), ${(median(results['big contiguous']!) / median(results['vda contiguous']!)).toFixed(2)}× (contiguous) for 1024× the disk size`);
    await engine.close();
    await client.close();
  } finally {
    await stopLab(labDir);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
