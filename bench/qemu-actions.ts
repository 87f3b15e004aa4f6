// Which of QEMU's own transaction actions grow with the disk's size (figures, never pass/fail). On a bare
// QEMU with a 1 GiB and a 1 TiB sparse disk (256 × 256 KiB changed, bare-qemu.ts), each action of an
// incremental pull's and push's transaction (floor/steps.ts) is sent as a command of its own and timed:
// the checkpoint's bitmap copied into a temporary one (add, merge), the next checkpoint's bitmap, the
// old one disabled, the fleecing job (sync=none) or the push's job (sync=bitmap; its copy runs after the
// timed command, then it is cancelled). A no-op command gives QMP's own round trip.
// Run: npx tsx bench/qemu-actions.ts [--rounds 8]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { emptyQcow2Layout, writeEmptyQcow2 } from '../electron/engine/qcow2/format';
import { fleeceNodeArgs } from '../electron/engine/qmp-driver/actions';
import type { QmpClient } from '../electron/qmp/client';
import { changeRound, startBareQemu, STRIDED_DISKS } from './bare-qemu';
import { cancelJob } from './floor/steps';
import { median } from './measure';
import { load } from './peers/proc';
import { shuffled } from './peers/report';

type Disk = keyof typeof STRIDED_DISKS;
const ACTIONS = ['no-op (query-version)', 'fleece overlay blockdev-add', 'temporary bitmap add', 'merge into it', 'next bitmap add', 'old bitmap disable', 'blockdev-backup sync=none', 'blockdev-backup sync=bitmap'] as const;
type Action = (typeof ACTIONS)[number];

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 8;
  const bare = await startBareQemu('tmbench-actions-', STRIDED_DISKS);
  const figures: Record<Disk, Record<Action, number[]>> = { small: blank(), big: blank() };
  let n = 0;
  try {
    console.log(`QEMU's transaction actions one at a time, 256 × 256 KiB changed; ${rounds} rounds, load ${load()}`);
    for (let r = 0; r < rounds; r++) {
      for (const disk of shuffled(Object.keys(STRIDED_DISKS) as Disk[], r + 1)) {
        await oneRound(bare.client, bare.dir, disk, `a${n++}`, figures[disk]);
      }
    }
    console.log(`medians, ms ${' '.repeat(20)}| 1 GiB | 1 TiB | extra`);
    for (const a of ACTIONS) {
      const [s, b] = [median(figures.small[a]), median(figures.big[a])];
      console.log(`${a.padEnd(32)}| ${s.toFixed(1).padStart(5)} | ${b.toFixed(1).padStart(5)} | ${b - s >= 0 ? '+' : ''}${(b - s).toFixed(1)}`);
    }
    console.log(`load after: ${load()}`);
  } finally {
    bare.stop();
  }
}

function blank(): Record<Action, number[]> {
  return Object.fromEntries(ACTIONS.map((a) => [a, [] as number[]])) as Record<Action, number[]>;
}

/** One round on `disk`: the pull's actions, then the push's job, each timed; everything removed after. */
async function oneRound(client: QmpClient, dir: string, disk: Disk, tag: string, f: Record<Action, number[]>): Promise<void> {
  const d = STRIDED_DISKS[disk];
  const [bitmap, tmp, next, fleeceNode, fleeceJob, target, pushJob] = ['b', 'tmp', 'next', 'f', 'fj', 't', 'pj'].map((s) => `${tag}-${s}`) as [string, string, string, string, string, string, string];
  const [fleece, targetFile] = [path.join(dir, `${tag}.fleece.qcow2`), path.join(dir, `${tag}.qcow2`)];
  await changeRound(client, disk, d.stride, bitmap);
  await writeEmptyQcow2(fleece, emptyQcow2Layout(d.size)!);
  await writeEmptyQcow2(targetFile, emptyQcow2Layout(d.size)!);
  await client.execute('blockdev-add', { driver: 'qcow2', 'node-name': target, file: { driver: 'file', filename: targetFile }, cache: { 'no-flush': true } });
  const timed = async (a: Action, command: string, args: Record<string, unknown>) => {
    const t = performance.now();
    await client.execute(command, args);
    f[a].push(performance.now() - t);
  };
  await timed('no-op (query-version)', 'query-version', {});
  await timed('fleece overlay blockdev-add', 'blockdev-add', fleeceNodeArgs(fleeceNode, fleece, disk));
  await timed('temporary bitmap add', 'block-dirty-bitmap-add', { node: disk, name: tmp, persistent: false, disabled: true });
  await timed('merge into it', 'block-dirty-bitmap-merge', { node: disk, target: tmp, bitmaps: [bitmap] });
  await timed('next bitmap add', 'block-dirty-bitmap-add', { node: disk, name: next, persistent: false });
  await timed('old bitmap disable', 'block-dirty-bitmap-disable', { node: disk, name: bitmap });
  await timed('blockdev-backup sync=none', 'blockdev-backup', { 'job-id': fleeceJob, device: disk, target: fleeceNode, sync: 'none' });
  await cancelJob(client, fleeceJob);
  await timed('blockdev-backup sync=bitmap', 'blockdev-backup', { 'job-id': pushJob, device: disk, target, sync: 'bitmap', bitmap: tmp, 'bitmap-mode': 'never' });
  await cancelJob(client, pushJob);
  for (const node of [fleeceNode, target]) await client.execute('blockdev-del', { 'node-name': node });
  for (const b of [bitmap, tmp, next]) await client.execute('block-dirty-bitmap-remove', { node: disk, name: b });
  for (const file of [fleece, targetFile]) fs.rmSync(file);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
