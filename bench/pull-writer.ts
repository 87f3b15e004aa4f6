// The copy step of an incremental pull, three ways, on the same point-in-time export (figures, never
// pass/fail). A lab VM holds the side-by-side bench's disks (bench/peers/machines.ts); each round
// dirties 64 MiB (256 × 256 KiB) of vda (1 GiB) and vdc (1 TiB sparse), then an export-only pull
// publishes both disks and, while the exports stay open, each variant copies the dirty extents into a
// new qcow2 layer (create, writer up, block status, copy, flush, writer down, fdatasync):
//   before:        block status over the whole disk (both contexts) → a qemu-nbd --cache=unsafe writer
//   qemu-nbd:      dirty bitmap first, allocation only over the dirty ranges → the qemu-nbd writer
//   QEMU (after):  the same block status → the VM's own QEMU writes the layer (pull-writer.ts)
// Variants take turns (order rotated per round); medians [min..max] and paired ratios to "before".
// Run: npx tsx bench/pull-writer.ts [--rounds 3]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupRepository } from '../electron/engine/backup/repository';
import { requestExportEnd } from '../electron/engine/backup/control';
import { createQcow2 } from '../electron/engine/backup/qemuimg';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { copyExtents } from '../electron/engine/pull/copy';
import { LayerCopy } from '../electron/engine/pull/layer-copy';
import { copyOps } from '../electron/engine/pull/plan';
import { runPull, type PullExport } from '../electron/engine/qmp-driver/pull';
import { qemuLayerWriter } from '../electron/engine/qmp-driver/pull-writer';
import { NbdClient } from '../electron/nbd/client';
import { BASE_ALLOCATION } from '../electron/nbd/protocol';
import { ExportManager, nbdSocketPath } from '../electron/nbd/qemu-exports';
import { startQemuNbd } from '../electron/nbd/qemu-nbd';
import { parseNbdUri } from '../electron/nbd/uri';
import { syncFileData } from '../electron/os/atomic-file';
import { QmpClient } from '../electron/qmp/client';
import { median, stats, time } from './measure';
import { Machines } from './peers/machines';
import { load, settle } from './peers/proc';

const VARIANTS = ['before', 'qemu-nbd', 'QEMU (after)'] as const;
type Variant = (typeof VARIANTS)[number];

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 3;
  const m = Machines.create();
  process.on('SIGINT', () => void m.close().finally(() => process.exit(130)));
  try {
    m.makeImages(false);
    await m.startLab();
    const stateDir = m.p('state');
    const client = await QmpClient.connect(m.lab!.cliEndpoint);
    const engine = await CheckpointEngine.open(client, { endpoint: m.lab!.cliEndpoint, stateDir });
    const repo = BackupRepository.open(m.p('out', 'repo'), { create: true });
    const exportsOf = ExportManager.for(client, nbdSocketPath(stateDir, engine.vmId));
    const runDir = path.join(stateDir, 'run');
    let n = 0;
    const copy = async (v: Variant, e: PullExport) => {
      const layer = m.p('out', `layer-${n++}.qcow2`);
      const ms = await time(async () => {
        await createQcow2(layer, e.size);
        if (v !== 'before') {
          const writer = v === 'qemu-nbd' ? { runDir, onWriter: () => undefined } : { writer: qemuLayerWriter(client, exportsOf, `tidemark-bench-${n}`, () => undefined) };
          await new LayerCopy({ source: parseNbdUri(e.uri), dirtyContext: e.dirtyContext, kind: 'incremental', layer, signal: new AbortController().signal, onProgress: () => undefined, ...writer }).run();
          return;
        }
        const w = await startQemuNbd({ image: layer, format: 'qcow2', runDir, exportName: 'layer', cache: 'unsafe' });
        const src = await NbdClient.connect(e.uri, { metaContexts: [BASE_ALLOCATION, e.dirtyContext!] });
        const dst = await NbdClient.connect(w.address);
        await copyExtents(src, dst, copyOps('incremental', await src.extents(BASE_ALLOCATION), await src.extents(e.dirtyContext!)));
        await dst.flush();
        await src.close();
        await dst.close();
        await w.stop();
        await syncFileData(layer);
      });
      fs.rmSync(layer);
      return ms;
    };
    const results = new Map<string, number[]>();
    const loads: string[] = [];
    // Each round: the export-only pull (the variants copy from it) ends as failed, then a real pull of
    // the same changes moves the base on, so every round's export holds exactly that round's 64 MiB.
    await runPull(engine, client, { repo, stateDir, disks: ['vda', 'vdc'], full: true });
    const pull = async (onReady: (exports: PullExport[]) => Promise<void>) => {
      let failed: Error | undefined;
      await runPull(engine, client, {
        repo, stateDir, disks: ['vda', 'vdc'],
        exportOnly: { onReady: (ex) => void onReady(ex).catch((err: Error) => (failed = err)).finally(() => requestExportEnd(repo, engine.vmId, 'failure')) },
      }).catch(() => undefined);
      if (failed) throw failed;
      await runPull(engine, client, { repo, stateDir, disks: ['vda', 'vdc'] });
    };
    for (let r = 0; r < rounds; r++) {
      await m.dirty('vda');
      await m.dirty('vdc');
      loads.push(load());
      await pull(async (exports) => {
        for (const e of exports) {
          const order = [...VARIANTS.slice(r % 3), ...VARIANTS.slice(0, r % 3)];
          for (const v of order) {
            settle();
            const key = `${e.disk} ${v}`;
            results.set(key, [...(results.get(key) ?? []), await copy(v, e)]);
          }
        }
      });
      console.log(`round ${r + 1}/${rounds} (load ${loads[loads.length - 1]})`);
    }
    console.log(`\ncopy step of an incremental pull, 64 MiB as 256 × 256 KiB; ${rounds} rounds, load ${loads.join(' | ')}`);
    for (const disk of ['vda', 'vdc']) {
      const base = results.get(`${disk} before`)!;
      for (const v of VARIANTS) {
        const xs = results.get(`${disk} ${v}`)!;
        console.log(`  ${disk === 'vda' ? 'vda 1 GiB' : 'vdc 1 TiB'}  ${v.padEnd(13)} ${stats(xs)}  ÷ before ${median(xs.map((x, k) => x / base[k]!)).toFixed(2)}×`);
      }
    }
    await client.close();
  } finally {
    await m.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
