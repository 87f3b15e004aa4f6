// Benchmark: CheckpointEngine.create() on a 2-disk lab VM (library call, real QEMU), both layouts.
// Prints median [min..max] in ms for create(), delete(), the bare bitmap transaction and a bare
// QMP round trip, so the engine's own overhead (discovery, health, metadata fsyncs) is visible.
// Run: npx tsx bench/checkpoint-create.ts [rounds]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointEngine } from '../electron/engine/checkpoints/engine';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { QmpClient } from '../electron/qmp/client';
import { median, time } from './measure';

const rounds = Number(process.argv[2] ?? 30);
const MiB = 1024 * 1024;

/** Finer than the shared stats(): these operations take milliseconds. */
function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${median(xs).toFixed(2)} ms [${s[0]!.toFixed(2)}..${s[s.length - 1]!.toFixed(2)}] (n=${s.length})`;
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmbench-'));
  const labDir = path.join(root, 'lab');
  try {
    const lab = await startLab({ dir: labDir, disks: [{ name: 'vda', sizeBytes: 1024 * MiB }, { name: 'vdb', sizeBytes: 512 * MiB }] });
    const client = await QmpClient.connect(lab.qmp);
    console.log(`checkpoint create on 2 disks (vda 1 GiB, vdb 512 MiB), ${rounds} rounds per layout, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const rtt: number[] = [];
    for (let i = 0; i < rounds; i++) rtt.push(await time(() => client.execute('query-status')));
    console.log(`  QMP round trip (query-status)          ${stats(rtt)}`);
    for (const layout of ['independent', 'chained'] as const) {
      const stateDir = path.join(root, `state-${layout}`);
      const engine = await CheckpointEngine.open(client, { endpoint: lab.qmp, stateDir });
      const create: number[] = [];
      const del: number[] = [];
      const bare: number[] = [];
      await engine.create({ name: `${layout}-base`, layout });
      for (let i = 0; i < rounds; i++) {
        create.push(await time(() => engine.create({ name: `${layout}-${i}` })));
        await client.hmp(`qemu-io drive-vda "write -P 0xab ${i * MiB} 64k"`);
      }
      for (let i = rounds - 1; i >= 0; i--) del.push(await time(() => engine.delete(`${layout}-${i}`)));
      // The bare transaction the engine runs, for comparison (add on both disks, then remove).
      for (let i = 0; i < rounds; i++) {
        const actions = ['vda', 'vdb'].map((d) => ({ type: 'block-dirty-bitmap-add', data: { node: `${d}-fmt`, name: `bare-${i}`, persistent: true } }));
        bare.push(await time(() => client.execute('transaction', { actions })));
        await client.execute('transaction', { actions: ['vda', 'vdb'].map((d) => ({ type: 'block-dirty-bitmap-remove', data: { node: `${d}-fmt`, name: `bare-${i}` } })) });
      }
      console.log(`  ${layout.padEnd(11)} engine.create()             ${stats(create)}`);
      console.log(`  ${layout.padEnd(11)} engine.delete() (newest)    ${stats(del)}`);
      console.log(`  ${layout.padEnd(11)} bare add transaction        ${stats(bare)}`);
      await engine.delete(`${layout}-base`);
    }
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
