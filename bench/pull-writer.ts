// The copy step of an incremental pull, four ways, on the same point-in-time export (figures, never
// pass/fail). A lab VM holds the side-by-side bench's disks (bench/peers/machines.ts); each round
// dirties 64 MiB (256 × 256 KiB) of vda (1 GiB) and vdc (1 TiB sparse), then an export-only pull
// publishes both disks and, while the exports stay open, each variant copies the dirty extents into a
// new qcow2 layer (create, block status, copy, close, fdatasync):
//   QEMU writes:      the VM's own QEMU opens the layer and serves it writable on its NBD server (before)
//   Tidemark writes:  Tidemark writes the qcow2 file itself (engine/pull/qcow2-layer.ts, after)
//   reads alone:      the same block status and reads, every byte discarded (what the reads cost)
//   libnbd reads:     python3-libnbd, block status then one pread after another, discarded (the
//                     libvirt peer's reader; its own clock, without Python's start)
// Variants take turns (order rotated per round); medians [min..max] and paired ratios to "QEMU writes".
// Run: npx tsx bench/pull-writer.ts [--rounds 3]

import * as fs from 'node:fs';
import { BackupRepository } from '../electron/engine/backup/repository';
import { requestExportEnd } from '../electron/engine/backup/control';
import { createQcow2 } from '../electron/engine/backup/qemuimg';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { LayerCopy } from '../electron/engine/pull/layer-copy';
import { runPull, type PullExport } from '../electron/engine/qmp-driver/pull';
import { qcow2LayerWriter } from '../electron/engine/pull/qcow2-layer';
import type { OpenLayerWriter } from '../electron/engine/pull/writer';
import type { QemuExport } from '../electron/nbd/qemu-exports';
import { execFileSync } from 'node:child_process';
import { ExportManager, nbdSocketPath } from '../electron/nbd/qemu-exports';
import { parseNbdUri } from '../electron/nbd/uri';
import { syncFileData } from '../electron/os/atomic-file';
import { QmpClient } from '../electron/qmp/client';
import { median, stats, time } from './measure';
import { Machines } from './peers/machines';
import { load, settle } from './peers/proc';

const VARIANTS = ['QEMU writes', 'Tidemark writes', 'reads alone', 'libnbd reads'] as const;
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
    let n = 0;
    const copy = async (v: Variant, e: PullExport) => {
      if (v === 'libnbd reads') return libnbdReads(e);
      const layer = m.p('out', `layer-${n++}.qcow2`);
      const ms = await time(async () => {
        await createQcow2(layer, e.size);
        const writer: OpenLayerWriter =
          v === 'QEMU writes' ? qemuWriter(client, exportsOf, `tidemark-bench-${n}`)
          : v === 'Tidemark writes' ? qcow2LayerWriter({ sizeBytes: e.size, clusterSize: 65536 }, async () => undefined)
          : async () => ({ target: { direct: discard(e.size), clusterSize: 65536 }, close: async () => undefined, abort: async () => undefined });
        await new LayerCopy({ source: parseNbdUri(e.uri), dirtyContext: e.dirtyContext, kind: 'incremental', layer, signal: new AbortController().signal, onProgress: () => undefined, writer }).run();
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
      const base = results.get(`${disk} QEMU writes`)!;
      for (const v of VARIANTS) {
        const xs = results.get(`${disk} ${v}`)!;
        console.log(`  ${disk === 'vda' ? 'vda 1 GiB' : 'vdc 1 TiB'}  ${v.padEnd(16)} ${stats(xs)}  ÷ QEMU writes ${median(xs.map((x, k) => x / base[k]!)).toFixed(2)}×`);
      }
    }
    await client.close();
  } finally {
    await m.close();
  }
}

/** The writer this bench compares with: the VM's own QEMU opens the layer and serves it writable over NBD. */
function qemuWriter(client: QmpClient, exportsOf: ExportManager, nodeName: string): OpenLayerWriter {
  return async (layer) => {
    await client.execute('blockdev-add', { driver: 'qcow2', 'node-name': nodeName, file: { driver: 'file', filename: layer }, cache: { 'no-flush': true } });
    const exp: QemuExport = await exportsOf.add({ nodeName, writable: true, prefix: 'tidemark-layer' });
    const detach = async () => {
      await exp.remove();
      await client.execute('blockdev-del', { 'node-name': nodeName });
    };
    return { target: { address: exp.address }, close: detach, abort: detach };
  };
}

/** A target that drops every byte (what the reads alone cost). */
function discard(size: number): { size: number; write(): Promise<void>; writeZeroes(): Promise<void> } {
  return { size, write: async () => undefined, writeZeroes: async () => undefined };
}

/** python3-libnbd: block status of the dirty context, then one pread after another (the libvirt peer's reader). */
function libnbdReads(e: PullExport): number {
  const a = parseNbdUri(e.uri).transport;
  if (a.kind !== 'unix') throw new Error('the bench exports on a unix socket');
  const py = `
import nbd, sys, time
h = nbd.NBD(); h.add_meta_context(sys.argv[3]); h.connect_uri('nbd+unix:///%s?socket=%s' % (sys.argv[1], sys.argv[2]))
t0 = time.monotonic(); size = h.get_size(); ext = []; st = {'pos': 0}
def cb(ctx, off, ents, err):
    pos = off
    for i in range(0, len(ents), 2):
        if ents[i + 1] & 1: ext.append((pos, ents[i]))
        pos += ents[i]
    st['pos'] = pos
    return 0
pos = 0
while pos < size:
    h.block_status(min(size - pos, 1 << 30), pos, cb); pos = st['pos']
for off, n in ext: h.pread(min(n, size - off), off)
print((time.monotonic() - t0) * 1000)
`;
  return Number(execFileSync('/usr/bin/python3', ['-c', py, e.exportName, a.path, e.dirtyContext!], { encoding: 'utf8' }).trim());
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
