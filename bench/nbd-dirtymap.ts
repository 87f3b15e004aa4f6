// Bench: how much a dirty-map refresh costs (temp bitmap + NBD export + block status + teardown),
// idle and while the write simulator runs, next to the QMP-only count (changesSince).
// Prints figures; never pass/fail. Run: npx tsx bench/nbd-dirtymap.ts [rounds]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { readDirtyMap } from '../electron/engine/dirtymap/dirtymap';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { simulateWrites } from '../electron/engine/lab/writer';
import { QmpClient } from '../electron/qmp/client';

const KiB = 1024;
const MiB = 1024 * KiB;

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]!.toFixed(1)} ms [${s[0]!.toFixed(1)}..${s[s.length - 1]!.toFixed(1)}]`;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 15);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bdm-'));
  const labDir = path.join(root, 'lab');
  const stateDir = path.join(root, 'state');
  await startLab({ dir: labDir, disks: [{ name: 'vda', sizeBytes: 1024 * MiB }, { name: 'vdb', sizeBytes: 256 * MiB, clusterSize: 4096 }] });
  const qmp = await QmpClient.connect(`unix:${path.join(labDir, 'qmp.sock')}`);
  try {
    const engine = await CheckpointEngine.open(qmp, { endpoint: `unix:${path.join(labDir, 'qmp.sock')}`, stateDir });
    await engine.create({ name: 'c1' });
    const deps = { qmp, engine, stateDir };
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const measure = async (label: string, disk: string) => {
      const maps: number[] = [];
      const counts: number[] = [];
      let extents = 0;
      let dirty = 0;
      for (let i = 0; i < rounds; i++) {
        maps.push(await time(async () => {
          const m = await readDirtyMap(deps, { disk, since: 'c1' });
          extents = m.extents.filter((e) => e.dirty).length;
          dirty = m.dirtyBytes;
        }));
        counts.push(await time(() => engine.changesSince('c1')));
      }
      console.log(`  ${label.padEnd(44)} map ${summary(maps).padEnd(32)} count-only ${summary(counts)}   (${extents} dirty extents, ${(dirty / MiB).toFixed(1)} MiB)`);
    };

    console.log(`Dirty-map refresh, ${rounds} rounds each; load ${os.loadavg()[0]!.toFixed(1)}`);
    await measure('vda 1 GiB, nothing dirty', 'vda');
    for (let i = 0; i < 1024; i++) await qmp.hmp(`qemu-io drive-vda "write -P 0x5a ${((i * 7919) % 16384) * 64 * KiB} 64k"`);
    await measure('vda, 1024 scattered 64 KiB writes', 'vda');
    for (let i = 0; i < 1024; i++) await qmp.hmp(`qemu-io drive-vdb "write -P 0x5a ${((i * 7919) % 65536) * 4 * KiB} 4k"`);
    await measure('vdb 256 MiB @4 KiB gran., 1024 × 4 KiB writes', 'vdb');

    // While the simulator writes at 32 MiB/s (random 64 KiB blocks).
    const vda = (await engine.vm()).disks.find((d) => d.name === 'vda')!;
    const ctl = new AbortController();
    const writing = simulateWrites(qmp, vda, { pattern: 'random', mib: 4096, rateMibPerS: 32, seed: 3, signal: ctl.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    await measure('vda while writing 32 MiB/s (random 64 KiB)', 'vda');
    ctl.abort();
    await writing;
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
