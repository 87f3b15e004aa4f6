// The floor of an incremental push on a bare QEMU: what the 1 TiB disk costs beyond the 1 GiB one in the
// steps Tidemark cannot skip (figures, never pass/fail). Per round and disk (1 GiB, 4 MiB stride; 1 TiB
// sparse, 4 GiB stride; 256 × 256 KiB changed), as a push does it, each step timed apart (the map here,
// the rest in floor/steps.ts pushSteps, which peers.ts also runs on its lab VM):
//   map:   for a disk of more than 16 L2 tables only (push.ts tablesAhead), where the changes are, read by
//          the push's own readDirtyExtents (dirtymap.ts: a disabled copy of the changes' bitmap at the L2
//          tables' granularity, exported read-only, NBD block status; the export and bitmap are removed
//          off the clock, as the push has QEMU remove them while it writes the target);
//   tx:    the transaction: a temporary bitmap (add + merge) and blockdev-backup sync=bitmap (copy_file_range)
//          into a target made with its L2 tables ahead, opened no-flush; from the command to its reply;
//   job:   from the reply to the job's end; close: job-dismiss + blockdev-del of the target + the bitmap's removal;
//   sync:  the layer's fdatasync; hash: its checksum (engine/backup/checksum.ts).
// Variants: the target's L2 cache in QEMU's default entries (4 KiB slices in QEMU 7.2 here: it reads and
// writes back only the slices a job touches, so the rest of each table ahead stays a hole) or in whole
// 64 KiB tables (l2-cache-entry-size); the target file on io_uring; the temporary bitmap at half the
// checkpoint's granularity. Variants take turns.
// Run: npx tsx bench/push-floor.ts [--rounds 5]

import { l2TablesOf } from '../electron/engine/qcow2/format';
import { readsChangeMap } from '../electron/engine/qmp-driver/push';
import { changeRound, changesAt, startBareQemu, STRIDED_DISKS } from './bare-qemu';
import { PUSH_STEPS, pushSteps, readChangeMap, sumOf } from './floor/steps';
import { median } from './measure';
import { load, settle } from './peers/proc';
import { shuffled } from './peers/report';

const DISKS = STRIDED_DISKS;
/**
 * l2Entry: the target's l2-cache-entry-size (undefined: QEMU's). aio: the target file's. tmpGranularity: the
 * temporary bitmap's granularity (undefined: the node's default, the checkpoint's 64 KiB). A finer one
 * makes QEMU merge into it, and the job copy it, by walking only the dirty areas (hbitmap_sparse_merge)
 * instead of every word; phase 16 measured it no faster (the bitmap's allocation is the cost).
 */
const VARIANTS: Record<string, { l2Entry?: number; aio?: 'io_uring'; tmpGranularity?: number }> = {
  'as Tidemark': {},
  '64 KiB L2 entries': { l2Entry: 65536 },
  'io_uring': { aio: 'io_uring' },
  'tmp bitmap 32 KiB': { tmpGranularity: 32768 },
};
type Variant = string;
const PARTS = ['map', ...PUSH_STEPS, 'total'] as const;

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  const bare = await startBareQemu('tmbench-floor-', DISKS);
  const { dir, client } = bare;
  try {
    const figures = new Map<string, Record<string, number[]>>();
    let n = 0;
    console.log(`an incremental push's steps on a bare QEMU, 256 × 256 KiB changed; ${rounds} rounds, load ${load()}`);
    for (let r = 0; r < rounds; r++) {
      for (const v of shuffled(Object.keys(VARIANTS) as Variant[], r + 1)) {
        for (const [disk, d] of Object.entries(DISKS)) {
          const bitmap = `b${n}`;
          await changeRound(client, disk, d.stride, bitmap);
          const tables = l2TablesOf(changesAt(d.stride), 65536);
          settle();
          const mapMs = readsChangeMap(d.size) ? (await readChangeMap(client, dir, { node: disk, size: d.size }, bitmap)).ms : 0;
          const { ms, onDiskBytes } = await pushSteps(client, { node: disk, size: d.size }, bitmap, dir, `t${n++}`, { tables, ...VARIANTS[v]! });
          await client.execute('block-dirty-bitmap-remove', { node: disk, name: bitmap });
          const key = `${v} | ${disk === 'big' ? '1 TiB' : '1 GiB'}`;
          const f = figures.get(key) ?? Object.fromEntries([...PARTS, 'MiB'].map((p) => [p, [] as number[]]));
          f.map!.push(mapMs);
          for (const p of PUSH_STEPS) f[p]!.push(ms[p]);
          f.total!.push(mapMs + sumOf(ms, PUSH_STEPS));
          f.MiB!.push(onDiskBytes / 1024 / 1024);
          figures.set(key, f);
        }
      }
    }
    await client.close();
    console.log(`medians, ms: ${PARTS.join(' / ')}; the layer's MiB on disk`);
    for (const [key, f] of figures) console.log(`${key.padEnd(22)} ${PARTS.map((p) => median(f[p]!).toFixed(1)).join(' / ')}; ${median(f.MiB!).toFixed(1)} MiB`);
    for (const v of Object.keys(VARIANTS)) {
      const big = figures.get(`${v} | 1 TiB`)!.total!;
      const small = figures.get(`${v} | 1 GiB`)!.total!;
      console.log(`${v}: 1 TiB ÷ 1 GiB ${(median(big) / median(small)).toFixed(2)}× (totals)`);
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
