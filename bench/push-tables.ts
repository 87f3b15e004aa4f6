// QEMU's incremental backup job alone, 256 × 256 KiB changes on a 1 GiB disk (4 MiB stride) and on a
// 1 TiB sparse disk (4 GiB stride), by how the target is made (figures, never pass/fail):
//   empty:        an empty qcow2, as qemu-img creates it (QEMU allocates each L2 table during the job)
//   tables ahead: the same with the L2 tables of the changes allocated ahead (engine/qcow2/format.ts)
//   l2 cache:     empty, opened with a 128 MiB L2 cache (every table of 1 TiB stays cached)
//   null:         a null-co target: what reading the source costs
//   copy-range:   empty, the job copying with copy_file_range (x-perf use-copy-range, as a push does)
//   ahead + c-r:  tables ahead and copy_file_range
//   c-r + syncs:  copy-range, with the push's early writeback (os/early-writeback.ts) on the target meanwhile
// A bare QEMU (-machine none; --tcg: a running TCG machine) holds both disks (--bitmaps N: N more enabled
// bitmaps on each); each round dirties a fresh bitmap through qemu-io and runs one blockdev-backup
// sync=bitmap per variant and disk, timed from the command to JOB_STATUS_CHANGE concluded. Variants take
// turns; medians [min..max].
// Run: npx tsx bench/push-tables.ts [--rounds 5] [--variants empty,copy-range,…] [--bitmaps N] [--tcg]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { emptyQcow2Layout, l2TablesOf, writeEmptyQcow2 } from '../electron/engine/qcow2/format';
import { startEarlyWriteback } from '../electron/os/early-writeback';
import { changeRound, changesAt, startBareQemu, STRIDED_DISKS } from './bare-qemu';
import { median, stats } from './measure';
import { load } from './peers/proc';
import { shuffled } from './peers/report';

const DISKS = STRIDED_DISKS;
const VARIANTS = ['empty', 'tables ahead', 'l2 cache', 'null', 'copy-range', 'ahead + c-r', 'c-r + syncs'] as const;
type Variant = (typeof VARIANTS)[number];
const WITH_TABLES_AHEAD: ReadonlySet<Variant> = new Set(['tables ahead', 'ahead + c-r']);
const WITH_COPY_RANGE: ReadonlySet<Variant> = new Set(['copy-range', 'ahead + c-r', 'c-r + syncs']);

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  // --bitmaps N: N more enabled bitmaps on each source disk (a disk with many checkpoints); --tcg: a running TCG machine instead of none.
  const b = process.argv.indexOf('--bitmaps');
  const extraBitmaps = b >= 0 ? Number(process.argv[b + 1]) : 0;
  const machine = process.argv.includes('--tcg') ? ['-machine', 'pc,accel=tcg', '-m', '32'] : ['-machine', 'none'];
  const only = process.argv.indexOf('--variants');
  const asked: string[] = only >= 0 ? (process.argv[only + 1] ?? '').split(',') : [...VARIANTS];
  const unknown = asked.filter((v) => !(VARIANTS as readonly string[]).includes(v));
  if (unknown.length > 0) throw new Error(`unknown variant ${unknown.join(', ')} (the variants: ${VARIANTS.join(', ')})`);
  const variants = asked as Variant[];
  const bare = await startBareQemu('tmbench-tables-', DISKS, machine);
  const { dir, client } = bare;
  try {
    for (const disk of Object.keys(DISKS)) for (let k = 0; k < extraBitmaps; k++) await client.execute('block-dirty-bitmap-add', { node: disk, name: `extra${k}` });
    const times = new Map<string, number[]>();
    let n = 0;
    console.log(`QEMU's incremental job, 256 × 256 KiB changed; ${rounds} rounds, load ${load()}`);
    for (let r = 0; r < rounds; r++) {
      // Shuffled per round (seeded): a rotation gives each variant the same predecessor every round, and a
      // job can pay for the one before it (bench/README.md, "Phase 9" and "Phase 11").
      for (const v of shuffled(variants, r + 1)) {
        for (const [disk, d] of Object.entries(DISKS)) {
          const bitmap = `b${n}`;
          await changeRound(client, disk, d.stride, bitmap);
          const target = path.join(dir, `t${n}.qcow2`);
          const node = `t${n++}`;
          const tables = WITH_TABLES_AHEAD.has(v) ? l2TablesOf(changesAt(d.stride), 65536) : undefined;
          await writeEmptyQcow2(target, emptyQcow2Layout(d.size, tables ? { l2Tables: tables } : {})!);
          await client.execute('blockdev-add', v === 'null'
            ? { driver: 'null-co', 'node-name': node, size: d.size }
            : { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: target }, cache: { 'no-flush': true }, ...(v === 'l2 cache' ? { 'l2-cache-size': 128 * 1024 * 1024 } : {}) });
          const job = `j${node}`;
          const concluded = client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === job && e.data.status === 'concluded', 60_000, `job ${job}`);
          // c-r + syncs: the push's own early writeback on the target while the job writes it.
          const writeback = v === 'c-r + syncs' ? startEarlyWriteback(target) : undefined;
          const t0 = performance.now();
          await client.execute('blockdev-backup', { 'job-id': job, device: disk, target: node, sync: 'bitmap', bitmap, 'bitmap-mode': 'never', 'auto-dismiss': false, ...(WITH_COPY_RANGE.has(v) ? { 'x-perf': { 'use-copy-range': true } } : {}) });
          await concluded;
          const ms = performance.now() - t0;
          const syncError = await writeback?.stop();
          if (syncError) throw syncError;
          await client.execute('job-dismiss', { id: job });
          await client.execute('blockdev-del', { 'node-name': node });
          await client.execute('block-dirty-bitmap-remove', { node: disk, name: bitmap });
          fs.rmSync(target, { force: true });
          const key = `${v} | ${disk === 'big' ? '1 TiB' : '1 GiB'}`;
          times.set(key, [...(times.get(key) ?? []), ms]);
        }
      }
    }
    await client.close();
    for (const v of variants) {
      const small = times.get(`${v} | 1 GiB`)!;
      const big = times.get(`${v} | 1 TiB`)!;
      console.log(`${v.padEnd(13)} 1 GiB ${stats(small)}   1 TiB ${stats(big)}   1 TiB ÷ 1 GiB ${(median(big) / median(small)).toFixed(2)}×`);
    }
    console.log(`load after: ${load()}`);
  } finally {
    bare.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
