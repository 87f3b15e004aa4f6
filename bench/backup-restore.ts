// Benchmark (not pass/fail): restore of a full backup (1 GiB of random data) + 5 incrementals
// (64 MiB dirty each) against `qemu-img convert` of the same chain. restoreTo() verifies every
// layer's SHA-256 first, converts, then compares the copy with the chain; each share is shown.
// Medians [min..max].
// Run: npx tsx bench/backup-restore.ts [rounds]   (default 5)

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runBackup } from '../electron/engine/qmp-driver/push';
import { compareImages, convertImage } from '../electron/engine/backup/qemuimg';
import { BackupRepository } from '../electron/engine/backup/repository';
import { restoreTo, verifyChain } from '../electron/engine/backup/restore';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { QmpClient } from '../electron/qmp/client';
import { median, stats, time } from './measure';

const rounds = Number(process.argv[2] ?? 5);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;


async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmbr-'));
  const labDir = path.join(root, 'lab');
  try {
    fs.mkdirSync(path.join(labDir, 'disks'), { recursive: true });
    const raw = path.join(root, 'random.raw');
    execFileSync('head', ['-c', String(GiB), '/dev/urandom'], { stdio: ['ignore', fs.openSync(raw, 'w'), 'inherit'] });
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, path.join(labDir, 'disks', 'vda.qcow2')]);
    fs.rmSync(raw);
    const lab = await startLab({ dir: labDir, disks: [{ name: 'vda', sizeBytes: GiB }] });
    const client = await QmpClient.connect(lab.qmp);
    const engine = await CheckpointEngine.open(client, { endpoint: lab.qmp, stateDir: path.join(root, 'state') });
    const repo = BackupRepository.open(path.join(root, 'repo'), { create: true });
    let top = await runBackup(engine, client, { repo, full: true });
    for (let i = 0; i < 5; i++) {
      for (let k = 0; k < 256; k++) await client.hmp(`qemu-io drive-vda "write -P 0x${(0x30 + i).toString(16)} ${(k * 4 + i) * MiB / 2} 256k"`);
      top = await runBackup(engine, client, { repo });
    }
    const chain = repo.chain(top, 'vda');
    console.log(`restore of a chain: ${chain.length} layers (full 1 GiB + ${chain.length - 1} incrementals of ${chain.slice(0, -1).map((l) => `${(l.disk.bytesCopied / MiB).toFixed(0)} MiB`).join(', ')}), ${rounds} rounds, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    await engine.close();
    await client.close();
    await stopLab(labDir);

    const total: number[] = [];
    const verify: number[] = [];
    const conv: number[] = [];
    const cmp: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const to = path.join(root, `restored-${i}.qcow2`);
      total.push(await time(() => restoreTo({ repo, backup: top.id, disk: 'vda', to })));
      fs.rmSync(to);
      // the same steps one by one, to show where the time goes
      verify.push(await time(() => verifyChain(chain, 'bench')));
      conv.push(await time(() => convertImage(chain[0]!.file, to, { format: 'qcow2' })));
      cmp.push(await time(() => compareImages(to, 'qcow2', chain[0]!.file, 'qcow2')));
      fs.rmSync(to);
      plain.push(await time(() => execFileSync('qemu-img', ['convert', '-O', 'qcow2', chain[0]!.file, to])));
      fs.rmSync(to);
    }
    console.log(`   tidemark restoreTo (verify + convert + compare) ${stats(total)}`);
    console.log(`     verify ${chain.length} layers (SHA-256, header, check) ${stats(verify)}`);
    console.log(`     convert (sparse copy through the chain)       ${stats(conv)}`);
    console.log(`     compare with the chain                        ${stats(cmp)}`);
    console.log(`   qemu-img convert of the chain (no checks)       ${stats(plain)}`);
    console.log(`   ratio restore / convert                         ${(median(total) / median(plain)).toFixed(2)}×  (the copy alone: ${(median(conv) / median(plain)).toFixed(2)}×)`);
  } finally {
    await stopLab(labDir);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
