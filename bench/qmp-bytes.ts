// What a byte of a QMP command costs QEMU (figures, never pass/fail). QEMU 7.2's monitor reads its
// socket one byte per turn of its event loop (its can-read handler allows one), so a command costs
// time in proportion to its length before QEMU even parses it. On a bare QEMU, over a raw socket,
// query-version is sent padded with blanks inside its braces (valid JSON, the same command) and
// timed to its reply; the slope over the pads is the cost of one byte.
// Run: npx tsx bench/qmp-bytes.ts [--rounds 30]

import * as net from 'node:net';
import * as path from 'node:path';
import { startBareQemu } from './bare-qemu';
import { median } from './measure';
import { load } from './peers/proc';

const PADS = [0, 250, 500, 1000, 2000];

/** A QMP connection with nothing of Tidemark's client in the way: a line out, the next reply line back. */
async function rawQmp(socketPath: string): Promise<{ ask(line: string): Promise<void>; close(): void }> {
  const sock = net.connect(socketPath);
  let buf = '';
  let waiting: (() => void) | undefined;
  sock.on('data', (b: Buffer) => {
    buf += b.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.includes('"return"') || line.includes('"error"') || line.includes('"QMP"')) waiting?.();
    }
  });
  const next = () => new Promise<void>((resolve) => (waiting = resolve));
  await next(); // the greeting
  const ask = (line: string) => {
    const reply = next();
    sock.write(line + '\n');
    return reply;
  };
  await ask('{"execute":"qmp_capabilities"}');
  return { ask, close: () => sock.destroy() };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 30;
  const bare = await startBareQemu('tmbench-qmpbytes-', { vda: { size: 1024 ** 3 } });
  // QEMU's QMP socket takes one client at a time: the bench's own client gives way to the raw one.
  await bare.client.close();
  const raw = await rawQmp(path.join(bare.dir, 'qmp'));
  const ms: Record<number, number[]> = Object.fromEntries(PADS.map((p) => [p, []]));
  try {
    console.log(`QMP query-version padded inside its braces, ${rounds} rounds, load ${load()}`);
    for (let r = 0; r < rounds; r++) {
      for (const pad of r % 2 ? PADS : [...PADS].reverse()) {
        const line = `{"execute":"query-version"${' '.repeat(pad)}}`;
        const t = performance.now();
        await raw.ask(line);
        ms[pad]!.push(performance.now() - t);
      }
    }
    const med = PADS.map((p) => median(ms[p]!));
    for (const [k, p] of PADS.entries()) console.log(`  ${String(p + 27).padStart(5)} bytes: ${med[k]!.toFixed(2)} ms (median)`);
    // Least squares over the medians: ms = a + b·bytes.
    const xs = PADS.map((p) => p + 27);
    const mx = xs.reduce((s, x) => s + x, 0) / xs.length;
    const my = med.reduce((s, y) => s + y, 0) / med.length;
    const slope = xs.reduce((s, x, k) => s + (x - mx) * (med[k]! - my), 0) / xs.reduce((s, x) => s + (x - mx) ** 2, 0);
    console.log(`one byte of a command: ${(slope * 1000).toFixed(1)} µs; a 700-byte transaction: ${(slope * 700).toFixed(1)} ms before QEMU parses it`);
    console.log(`load after: ${load()}`);
  } finally {
    raw.close();
    bare.stop();
  }
}

void main();
