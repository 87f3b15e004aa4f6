// Bench: pull-mode vs push-mode incremental backups of the same dirty sets, into the same
// repository: wall time, bytes copied and the layer's size on disk. Prints figures and ratios;
// never pass/fail. Run: npx tsx bench/pull-vs-push.ts [rounds]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackupRepository } from '../electron/engine/backup/repository';
import { runBackup } from '../electron/engine/qmp-driver/push';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { runPull } from '../electron/engine/qmp-driver/pull';
import { QmpClient } from '../electron/qmp/client';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Sample {
  ms: number;
  copied: number;
  layer: number;
}

function med(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bpp-'));
  const labDir = path.join(root, 'lab');
  const stateDir = path.join(root, 'state');
  const lab = await startLab({ dir: labDir, disks: [{ name: 'vda', sizeBytes: 1024 * MiB }, { name: 'vdb', sizeBytes: 1024 * MiB, clusterSize: 4096 }] });
  const qmp = await QmpClient.connect(lab.qmp);
  try {
    const io = async (disk: string, cmd: string) => {
      const out = await qmp.hmp(`qemu-io drive-${disk} "${cmd}"`);
      if (out.trim()) throw new Error(out);
    };
    // Disks full of data, as on a real VM (a sparse source makes push look cheaper than it is).
    for (const disk of ['vda', 'vdb']) for (let o = 0; o < 1024; o += 64) await io(disk, `write -P 0x${(o % 250 + 1).toString(16)} ${o}M 64M`);
    const engine = await CheckpointEngine.open(qmp, { endpoint: lab.qmp, stateDir });
    const repo = BackupRepository.open(path.join(root, 'repo'), { create: true });
    await runBackup(engine, qmp, { repo, full: true });
    const granularity = (await engine.vm()).disks.map((d) => `${d.name} ${d.granularity / KiB} KiB`).join(', ');

    const scenarios: { name: string; disk: string; dirty: () => Promise<void> }[] = [
      { name: '1024 × 4 KiB scattered, 4 KiB granularity', disk: 'vdb', dirty: async () => { for (let i = 0; i < 1024; i++) await io('vdb', `write -P 0x5a ${((i * 7919) % 262144) * 4 * KiB} 4k`); } },
      { name: '1024 × 64 KiB scattered, 64 KiB granularity', disk: 'vda', dirty: async () => { for (let i = 0; i < 1024; i++) await io('vda', `write -P 0x5b ${((i * 7919) % 16384) * 64 * KiB} 64k`); } },
      { name: 'one contiguous 64 MiB', disk: 'vda', dirty: () => io('vda', 'write -P 0x5c 512M 64M') },
    ];
    console.log(`Incremental backups of the same dirty sets, ${rounds} interleaved rounds (median), disks ${granularity}; load ${os.loadavg()[0]!.toFixed(1)}`);
    for (const sc of scenarios) {
      const push: Sample[] = [];
      const pull: Sample[] = [];
      for (let r = 0; r < rounds; r++) {
        for (const mode of r % 2 ? (['pull', 'push'] as const) : (['push', 'pull'] as const)) {
          await sc.dirty();
          const t0 = performance.now();
          const m = mode === 'push'
            ? await runBackup(engine, qmp, { repo, disks: [sc.disk] })
            : await runPull(engine, qmp, { repo, stateDir, disks: [sc.disk] }).then((res) => (res.mode === 'repository' ? res.manifest : undefined));
          const ms = performance.now() - t0;
          const d = m!.disks[0]!;
          (mode === 'push' ? push : pull).push({ ms, copied: d.bytesCopied, layer: d.fileSize });
        }
      }
      const show = (xs: Sample[]) => `${med(xs.map((x) => x.ms)).toFixed(0).padStart(5)} ms, copied ${(med(xs.map((x) => x.copied)) / MiB).toFixed(1).padStart(6)} MiB, layer ${(med(xs.map((x) => x.layer)) / MiB).toFixed(1).padStart(6)} MiB`;
      console.log(`  ${sc.name}`);
      console.log(`    push  ${show(push)}`);
      console.log(`    pull  ${show(pull)}`);
      const ratio = (f: (s: Sample) => number) => (med(pull.map(f)) / med(push.map(f))).toFixed(2);
      console.log(`    pull/push: time ×${ratio((s) => s.ms)}, bytes copied ×${ratio((s) => s.copied)}, layer size ×${ratio((s) => s.layer)}`);
    }
  } finally {
    await qmp.close().catch(() => undefined);
    await stopLab(labDir);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
