// The floor of an incremental pull on a bare QEMU: what the 1 TiB disk costs beyond the 1 GiB one in
// QEMU's own steps, which any reader of QEMU's pull mode pays (libvirt's included), and in the layer
// Tidemark writes (figures, never pass/fail). Per round and disk (1 GiB, 4 MiB stride; 1 TiB sparse,
// 4 GiB stride; 256 × 256 KiB changed), the steps of floor/steps.ts pullSteps, each timed apart.
// peers.ts runs the same steps on its lab VM beside Tidemark and libvirt.
// Run: npx tsx bench/pull-floor.ts [--rounds 5]

import * as path from 'node:path';
import { ExportManager } from '../electron/nbd/qemu-exports';
import { changeRound, CHANGE, startBareQemu, STRIDED_DISKS } from './bare-qemu';
import { PULL_QEMU, PULL_STEPS as STEPS, pullSteps, type PullStep } from './floor/steps';
import { median } from './measure';
import { load } from './peers/proc';
import { shuffled } from './peers/report';

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  const bare = await startBareQemu('tmbench-pfloor-', STRIDED_DISKS);
  const { dir, client } = bare;
  const exportsOf = ExportManager.for(client, path.join(dir, 'nbd.sock'));
  const figures: Record<string, Record<PullStep, number[]>> = {};
  let n = 0;
  try {
    console.log(`an incremental pull's steps on a bare QEMU, 256 × 256 KiB changed; ${rounds} rounds, load ${load()}`);
    for (let r = 0; r < rounds; r++) {
      for (const disk of shuffled(Object.keys(STRIDED_DISKS) as (keyof typeof STRIDED_DISKS)[], r + 1)) {
        const d = STRIDED_DISKS[disk];
        const bitmap = `b${n}`;
        await changeRound(client, disk, d.stride, bitmap);
        const { ms, bytes } = await pullSteps(client, exportsOf, { node: disk, size: d.size }, bitmap, dir, `p${n++}`);
        if (bytes !== 256 * CHANGE) throw new Error(`the map of ${disk} holds ${bytes} bytes, not the round's 64 MiB`);
        await client.execute('block-dirty-bitmap-remove', { node: disk, name: bitmap });
        const f = (figures[disk === 'big' ? '1 TiB' : '1 GiB'] ??= Object.fromEntries(STEPS.map((s) => [s, [] as number[]])) as Record<PullStep, number[]>);
        for (const s of STEPS) f[s].push(ms[s]);
      }
    }
    await client.close();
    report(figures);
    console.log(`load after: ${load()}`);
  } finally {
    bare.stop();
  }
}

function report(figures: Record<string, Record<PullStep, number[]>>): void {
  const m = (key: string, s: PullStep) => median(figures[key]![s]);
  const extra = (steps: readonly PullStep[]) => steps.reduce((sum, s) => sum + m('1 TiB', s) - m('1 GiB', s), 0);
  const total = (key: string, steps: readonly PullStep[]) => steps.reduce((sum, s) => sum + m(key, s), 0);
  console.log(`medians, ms | ${STEPS.join(' | ')}`);
  for (const key of ['1 GiB', '1 TiB']) console.log(`${key.padEnd(6)} | ${STEPS.map((s) => m(key, s).toFixed(1)).join(' | ')}`);
  console.log(`extra  | ${STEPS.map((s) => `${m('1 TiB', s) - m('1 GiB', s) >= 0 ? '+' : ''}${(m('1 TiB', s) - m('1 GiB', s)).toFixed(1)}`).join(' | ')}`);
  console.log(`QEMU's steps: ${total('1 GiB', PULL_QEMU).toFixed(1)} ms on 1 GiB, ${extra(PULL_QEMU).toFixed(1)} ms more on 1 TiB`);
  console.log(`with Tidemark's layer: ${total('1 GiB', STEPS).toFixed(1)} ms on 1 GiB, ${extra(STEPS).toFixed(1)} ms more on 1 TiB`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
