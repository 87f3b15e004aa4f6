// The dirty-bitmap walk of an incremental pull over a 1 TiB sparse disk (figures, never pass/fail):
// window size × requests in flight, on QEMU's NBD server code (qemu-nbd exporting a qcow2 with a
// persistent bitmap that saw 256 × 256 KiB writes at a 4 GiB stride, as bench/peers.ts dirties vdc).
// Each variant walks the whole export with NbdClient.extentsIn on one connection; all variants
// must return the same extents (checked, printed if not). Interleaved rounds, medians [min..max].
// Run: npx tsx bench/pull-status.ts [--rounds 5]

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NbdClient, STATUS_WINDOW } from '../electron/nbd/client';
import { dirtyBitmapContext } from '../electron/nbd/protocol';
import { startQemuNbd } from '../electron/nbd/qemu-nbd';
import { stats, time } from './measure';
import { load } from './peers/proc';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-status-'));
  const image = path.join(dir, 'big.qcow2');
  try {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, '1T']);
    execFileSync('qemu-img', ['bitmap', '--add', image, 'b']);
    const writes = Array.from({ length: 256 }, (_, k) => `-c "write ${k * 4 * GiB} 256k"`).join(' ');
    execFileSync('sh', ['-c', `qemu-io -f qcow2 ${writes} ${image} >/dev/null`]);
    const server = await startQemuNbd({ image, format: 'qcow2', runDir: dir, exportName: 'big', readOnly: true, bitmaps: ['b'] });
    const ctx = dirtyBitmapContext('b');
    const variants: [string, { windowBytes: number; parallel: number }][] = [
      ['2 GiB windows × 16 in flight (before)', { windowBytes: 2 * GiB, parallel: 16 }],
      ['2 GiB windows × 1 (one after another)', { windowBytes: 2 * GiB, parallel: 1 }],
      ['4 GiB - 1 MiB windows × 1', { windowBytes: STATUS_WINDOW, parallel: 1 }],
      ['4 GiB - 1 MiB windows × 16 (after)', { windowBytes: STATUS_WINDOW, parallel: 16 }],
      ['4 GiB - 1 MiB windows × 64', { windowBytes: STATUS_WINDOW, parallel: 64 }],
    ];
    const times = variants.map(() => [] as number[]);
    let reference: string | undefined;
    const c = await NbdClient.connect(server.address, { metaContexts: [ctx], maxInFlight: 64 });
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < variants.length; k++) {
        const v = (k + r) % variants.length;
        let got = '';
        times[v]!.push(await time(async () => (got = JSON.stringify(await c.extentsIn(ctx, undefined, variants[v]![1])))));
        reference ??= got;
        if (got !== reference) console.log(`DIFFERENT extents from ${variants[v]![0]}`);
      }
    }
    await c.close();
    await server.stop();
    console.log(`dirty-bitmap walk of a 1 TiB export, 256 dirty extents (${rounds} interleaved rounds, load ${load()}):`);
    for (const [k, [name]] of variants.entries()) console.log(`  ${name.padEnd(40)} ${stats(times[k]!)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
