// The copy step of a pull backup in isolation (figures, never pass/fail): 64 MiB dirty as 256 × 256 KiB
// at a 4 MiB stride in a 1 GiB image of random data, exported read-only by qemu-nbd with its dirty
// bitmap (as QEMU exports the fleece node), copied into a new qcow2 layer the way Tidemark does today
// (NbdClient reads → qemu-nbd writing the layer, copyExtents: pieces × in flight), with other piece
// sizes and parallelism, and against: the reads alone, the reads written into a sparse raw file (what
// the libvirt + libnbd peer does), and Debian's python3-libnbd reading the same extents. Each figure
// covers: create the layer, start its qemu-nbd, connect, block status, copy, flush, stop (the writer's
// start and stop are shown alone too). Interleaved rounds, medians [min..max].
// Run: npx tsx bench/pull-copy.ts [--rounds N]

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { copyExtents } from '../electron/engine/pull/copy';
import { copyOps, splitOps } from '../electron/engine/pull/plan';
import { NbdClient } from '../electron/nbd/client';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../electron/nbd/protocol';
import { startQemuNbd } from '../electron/nbd/qemu-nbd';
import { checksumFile } from '../electron/engine/backup/checksum';
import { median } from './measure';
import { load, run, settle } from './peers/proc';

const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmpull-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const raw = path.join(dir, 'r.raw');
    const src = path.join(dir, 'src.qcow2');
    execFileSync('head', ['-c', String(1024 * MiB), '/dev/urandom'], { stdio: ['ignore', fs.openSync(raw, 'w'), 'inherit'] });
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, src]);
    fs.rmSync(raw);
    // The bitmap records the offline writes (notes qemu §10): exactly the dirty set of the peers bench.
    execFileSync('qemu-img', ['bitmap', '--add', src, 'd']);
    const pattern = path.join(dir, 'p.bin');
    execFileSync('head', ['-c', String(256 * 1024), '/dev/urandom'], { stdio: ['ignore', fs.openSync(pattern, 'w'), 'inherit'] });
    execFileSync('qemu-io', ['-f', 'qcow2', ...Array.from({ length: 256 }, (_, k) => ['-c', `write -s ${pattern} ${k * 4}M 256k`]).flat(), src], { stdio: 'ignore' });
    execFileSync('qemu-img', ['bitmap', '--disable', src, 'd']);
    const ctx = dirtyBitmapContext('d');
    const exp = await startQemuNbd({ image: src, format: 'qcow2', runDir: dir, readOnly: true, bitmaps: ['d'], exportName: 'src' });
    stops.push(exp.stop);
    const socket = exp.address.transport.kind === 'unix' ? exp.address.transport.path : '';

    let n = 0;
    /** Today's path with a given piece size and parallelism; `into` chooses the writer. */
    const tidemark = async (pieceBytes: number, parallel: number, into: 'qcow2' | 'raw' | 'none', unsafe = false) => {
      const layer = path.join(dir, `l${n++}.${into === 'raw' ? 'raw' : 'qcow2'}`);
      const c = await NbdClient.connect(exp.address, { metaContexts: [BASE_ALLOCATION, ctx] });
      const ops = copyOps('incremental', await c.extents(BASE_ALLOCATION), await c.extents(ctx));
      if (into === 'qcow2') {
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', src, '-F', 'qcow2', layer]);
        // unsafe: qcow2's metadata-ordering flushes become no-ops; one fdatasync after qemu-nbd exits keeps the layer as durable
        const w = await startQemuNbd({ image: layer, format: 'qcow2', runDir: dir, exportName: 'layer', ...(unsafe ? { cache: 'unsafe' as const } : {}) });
        const dst = await NbdClient.connect(w.address);
        await copyExtents(c, dst, ops, { pieceBytes, parallel });
        await dst.flush();
        await dst.close();
        await w.stop();
        if (unsafe) {
          const fd = fs.openSync(layer, 'r+');
          fs.fdatasyncSync(fd);
          fs.closeSync(fd);
        }
      } else {
        const fd = into === 'raw' ? fs.openSync(layer, 'w') : -1;
        if (fd >= 0) fs.ftruncateSync(fd, c.size);
        const pieces = splitOps(ops, pieceBytes);
        let next = 0;
        await Promise.all(Array.from({ length: parallel }, async () => {
          while (next < pieces.length) {
            const p = pieces[next++]!;
            const buf = await c.read(p.offset, p.length);
            if (fd >= 0) fs.writeSync(fd, buf, 0, buf.length, p.offset);
          }
        }));
        if (fd >= 0) {
          fs.fsyncSync(fd);
          fs.closeSync(fd);
        }
      }
      await c.close();
      return layer;
    };
    const py = path.join(dir, 'reader.py');
    fs.writeFileSync(py, `import nbd, os, sys
h = nbd.NBD(); h.add_meta_context('${ctx}'); h.connect_uri('nbd+unix:///src?socket=${socket}')
size = h.get_size(); ext = []
def cb(ctxname, off, e, err):
    if ctxname == '${ctx}':
        p = off
        for i in range(0, len(e), 2):
            if e[i+1] & 1: ext.append((p, e[i]))
            p += e[i]
    return 0
h.block_status(size, 0, cb)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600); os.ftruncate(fd, size)
for off, ln in ext: os.pwrite(fd, h.pread(ln, off), off)
os.fsync(fd); os.close(fd); h.shutdown()
`);
    const cases: [string, () => Promise<unknown>][] = [
      ['today: 4 MiB pieces × 4 in flight → qemu-nbd qcow2 layer', () => tidemark(4 * MiB, 4, 'qcow2')],
      ['4 MiB × 16 → qemu-nbd qcow2 layer', () => tidemark(4 * MiB, 16, 'qcow2')],
      ['4 MiB × 64 → qemu-nbd qcow2 layer', () => tidemark(4 * MiB, 64, 'qcow2')],
      ['4 MiB × 1 → qemu-nbd qcow2 layer', () => tidemark(4 * MiB, 1, 'qcow2')],
      ['4 MiB × 16 → qemu-nbd --cache=unsafe layer + one fdatasync', () => tidemark(4 * MiB, 16, 'qcow2', true)],
      ['NbdClient reads alone, × 16 (no writer)', () => tidemark(4 * MiB, 16, 'none')],
      ['NbdClient reads × 16 → sparse raw file + fsync', () => tidemark(4 * MiB, 16, 'raw')],
      ['python3-libnbd pread → sparse raw file + fsync (the peer)', () => run('/usr/bin/python3', [py, path.join(dir, 'py.raw')])],
      ['qemu-nbd writer start + stop alone', async () => {
        const layer = path.join(dir, `w${n++}.qcow2`);
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', src, '-F', 'qcow2', layer]);
        const w = await startQemuNbd({ image: layer, format: 'qcow2', runDir: dir, exportName: 'layer' });
        await w.stop();
      }],
    ];
    const xs = new Map<string, number[]>(cases.map(([k]) => [k, []]));
    const sha: number[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const [name, fn] of [...cases.slice(r % cases.length), ...cases.slice(0, r % cases.length)]) {
        settle();
        const t0 = performance.now();
        const out = await fn();
        xs.get(name)!.push(performance.now() - t0);
        if (typeof out === 'string' && name.startsWith('today')) {
          const t1 = performance.now();
          await checksumFile(out);
          sha.push(performance.now() - t1);
        }
        for (const f of fs.readdirSync(dir)) if (/^(l|w)\d+\./.test(f) || f === 'py.raw') fs.rmSync(path.join(dir, f));
      }
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    const base = median(xs.get(cases[0]![0])!);
    console.log(`pull copy of 64 MiB dirty (256 × 256 KiB, 4 MiB stride) from a read-only qemu-nbd export with its bitmap, ${rounds} interleaved rounds; load ${load()}`);
    for (const [name, v] of xs) {
      const s = [...v].sort((a, b) => a - b);
      console.log(`  ${name.padEnd(60)} ${median(v).toFixed(0).padStart(6)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}]  ×${(median(v) / base).toFixed(2)}`);
    }
    console.log(`  then SHA-256 of today's layer (the second pass over it)       ${median(sha).toFixed(0).padStart(6)} ms`);
  } finally {
    for (const s of stops) await s().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
