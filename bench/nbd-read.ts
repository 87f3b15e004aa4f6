// Bench: Tidemark's NBD client read throughput against nbdcopy on the same qemu-nbd export.
// Prints figures and ratios; never pass/fail. Run: npx tsx bench/nbd-read.ts [MiB] [rounds]

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NbdClient } from '../electron/nbd/client';
import { startQemuNbd } from '../electron/nbd/qemu-nbd';

const MiB = 1024 * 1024;

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)]!;
  return `${med.toFixed(0)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}]`;
}

async function clientRead(uri: string, requestBytes: number, inFlight: number): Promise<number> {
  const t0 = performance.now();
  const c = await NbdClient.connect(uri, { maxRequestBytes: requestBytes, maxInFlight: inFlight });
  // Read in 64 MiB slices (what a copier would do), discarding the data.
  const slice = 64 * MiB;
  for (let pos = 0; pos < c.size; pos += slice) await c.read(pos, Math.min(slice, c.size - pos));
  await c.close();
  return performance.now() - t0;
}

function nbdcopy(uri: string): number {
  const t0 = performance.now();
  execFileSync('nbdcopy', [uri, 'null:']);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 256);
  const rounds = Number(process.argv[3] ?? 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-'));
  try {
    const img = path.join(dir, 'data.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, `${sizeMiB}M`]);
    // Random data (not zeroes), so the server really sends every byte.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -s /dev/urandom 0 ${sizeMiB}M`, img], { stdio: 'ignore' });
    const srv = await startQemuNbd({ image: img, format: 'qcow2', runDir: dir, readOnly: true, exportName: 'data' });
    try {
      const configs: [string, () => Promise<number>][] = [
        ['nbdcopy → null:', async () => nbdcopy(srv.uri)],
        ['client 32 MiB × 4 in flight', () => clientRead(srv.uri, 32 * MiB, 4)],
        ['client 4 MiB × 16 in flight', () => clientRead(srv.uri, 4 * MiB, 16)],
        ['client 1 MiB × 16 in flight', () => clientRead(srv.uri, MiB, 16)],
        ['client 256 KiB × 16 in flight', () => clientRead(srv.uri, 256 * 1024, 16)],
        ['client 1 MiB × 1 in flight', () => clientRead(srv.uri, MiB, 1)],
      ];
      const results = new Map<string, number[]>(configs.map(([n]) => [n, []]));
      // Interleave rounds so host noise spreads over all configurations.
      for (let r = 0; r < rounds; r++) for (const [name, fn] of configs) results.get(name)!.push(await fn());
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const base = med(results.get('nbdcopy → null:')!);
      console.log(`NBD read of ${sizeMiB} MiB of random data from qemu-nbd (unix socket), ${rounds} interleaved rounds; load ${os.loadavg()[0]!.toFixed(1)}`);
      for (const [name, xs] of results) {
        const m = med(xs);
        console.log(`  ${name.padEnd(32)} ${stats(xs).padEnd(22)} ${(sizeMiB / (m / 1000)).toFixed(0).padStart(5)} MiB/s  ×${(m / base).toFixed(2)} of nbdcopy's time`);
      }
    } finally {
      await srv.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
