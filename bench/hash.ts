// Hashing candidates for backup layers (figures, never pass/fail): SHA-256 (node:crypto, as today and
// without the stream; the system's `openssl dgst` and `sha256sum`), BLAKE3 (native @napi-rs/blake-hash, WebAssembly hash-wasm, pure JS @noble/hashes)
// and xxh3 (native @node-rs/xxhash, hash-wasm), over a 1 GiB file of random data in the page cache,
// plus: the bare read (the floor), two threads on the two halves, each algorithm on memory alone,
// how much of a layer file is data (qemu-img map) against its size, and hashing a file while
// qemu-img convert writes another one (the two cores shared). Interleaved rounds, medians [min..max].
// Run: npx tsx bench/hash.ts [--rounds N] [--mib N]

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { blake3 as nobleBlake3 } from '@noble/hashes/blake3';
import { createBLAKE3, createSHA256, createXXHash128 } from 'hash-wasm';
import { checksumFile } from '../electron/engine/backup/checksum';
import { median } from './measure';
import { nativeBlake3, nativeXxh3 } from './native-hashers';
import { load } from './peers/proc';

interface Hasher {
  update(b: Uint8Array): unknown;
}
type Make = () => Promise<Hasher> | Hasher;

const ALGOS: Record<string, Make> = {
  'sha256 node:crypto': () => createHash('sha256'),
  ...(nativeBlake3 ? { 'blake3 native (@napi-rs/blake-hash)': nativeBlake3 } : {}),
  'blake3 wasm (hash-wasm)': () => createBLAKE3(),
  ...(nativeXxh3 ? { 'xxh3-64 native (@node-rs/xxhash)': nativeXxh3 } : {}),
  'xxh3-128 wasm (hash-wasm)': () => createXXHash128(),
  'sha256 wasm (hash-wasm)': () => createSHA256(),
};

/** Reads `file` (or one part of it) with readSync into one reused buffer, feeding `h`. */
function readInto(file: string, h: Hasher | undefined, from = 0, to = Infinity, chunk = 8 * 1024 * 1024): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(chunk);
  let pos = from;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, Math.min(chunk, to - pos), pos);
      if (n <= 0) break;
      h?.update(n === chunk ? buf : buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return pos - from;
}

/** Two threads, each hashing one half (a two-leaf tree: the digest would be H(h1 ‖ h2)). */
function twoThreads(file: string, algo: string): Promise<void> {
  const size = fs.statSync(file).size;
  const half = Math.ceil(size / 2 / 65536) * 65536;
  const code = `
    const { parentPort, workerData: w } = require('node:worker_threads');
    const fs = require('node:fs');
    const h = w.algo.startsWith('sha256') ? require('node:crypto').createHash('sha256') : new (require('@napi-rs/blake-hash').Blake3Hasher)();
    const fd = fs.openSync(w.file, 'r'); const buf = Buffer.allocUnsafe(8 << 20); let pos = w.from;
    while (pos < w.to) { const n = fs.readSync(fd, buf, 0, Math.min(buf.length, w.to - pos), pos); if (n <= 0) break; h.update(n === buf.length ? buf : buf.subarray(0, n)); pos += n; }
    fs.closeSync(fd); parentPort.postMessage(h.digest('hex'));`;
  const one = (from: number, to: number) => new Promise<void>((resolve, reject) => {
    const wk = new Worker(code, { eval: true, workerData: { file, algo, from, to } });
    wk.once('message', () => resolve());
    wk.once('error', reject);
  });
  return Promise.all([one(0, half), one(half, size)]).then(() => undefined);
}

/** CPU time of this process (all its threads) per case: on a loaded machine it says more than wall time. */
const cpuOf = new Map<string, number[]>();

async function timeMs(fn: () => unknown, name?: string): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  if (name) {
    const c = process.cpuUsage(c0);
    if (!cpuOf.has(name)) cpuOf.set(name, []);
    cpuOf.get(name)!.push((c.user + c.system) / 1000);
  }
  return ms;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 5);
  const mib = arg('mib', 1024);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmhash-'));
  try {
    const file = path.join(dir, 'data.bin');
    execFileSync('head', ['-c', String(mib * 1024 * 1024), '/dev/urandom'], { stdio: ['ignore', fs.openSync(file, 'w'), 'inherit'] });
    readInto(file, undefined); // into the page cache
    const cases: [string, () => Promise<unknown> | unknown][] = [
      ['read only (8 MiB readSync), the floor', () => readInto(file, undefined)],
      ['checksumFile sha256 (two 8 MiB buffers, read ahead)', () => checksumFile(file, 'sha256')],
      ['today: checksumFile blake3 (the layer checksum)', () => checksumFile(file)],
    ];
    for (const [name, make] of Object.entries(ALGOS)) cases.push([`${name}, readSync 8 MiB`, async () => readInto(file, await make())]);
    // The same SHA-256 through the system's OpenSSL and coreutils, as separate processes.
    cases.push(['sha256 by `openssl dgst -sha256` (system OpenSSL)', () => execFileSync('openssl', ['dgst', '-sha256', '-r', file])]);
    cases.push(['sha256 by `sha256sum` (coreutils)', () => execFileSync('sha256sum', [file])]);
    cases.push(['sha256 node:crypto, 2 threads (halves)', () => twoThreads(file, 'sha256')]);
    cases.push(['blake3 native, 2 threads (halves)', () => twoThreads(file, 'blake3')]);
    const results = new Map<string, number[]>(cases.map(([n]) => [n, []]));
    console.log(`hashing ${mib} MiB of random data in the page cache, ${rounds} interleaved rounds, ${os.cpus().length} CPUs, load ${load()}`);
    for (let r = 0; r < rounds; r++) {
      for (const [name, fn] of cases) results.get(name)!.push(await timeMs(fn, name));
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    const show = (name: string, xs: number[], bytes: number) => {
      const s = [...xs].sort((a, b) => a - b);
      const cpu = cpuOf.get(name);
      // a child process's CPU is not this process's: shown only for in-process cases
      const cpuText = cpu && !/`/.test(name) ? `   CPU ${median(cpu).toFixed(0).padStart(6)} ms = ${(bytes / 1024 / 1024 / (median(cpu) / 1000)).toFixed(0).padStart(5)} MiB per CPU-second` : '';
      console.log(`  ${name.padEnd(52)} ${median(xs).toFixed(0).padStart(6)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}]  ${(bytes / 1024 / 1024 / (median(xs) / 1000)).toFixed(0).padStart(6)} MiB/s${cpuText}`);
    };
    for (const [name, xs] of results) show(name, xs, mib * 1024 * 1024);

    // The algorithms alone, on 64 MiB already in memory (no read).
    const mem = randomBytes(64 * 1024 * 1024);
    console.log(`\n  memory only, 64 MiB (load ${load()}):`);
    for (const [name, make] of Object.entries(ALGOS)) {
      const xs: number[] = [];
      for (let r = 0; r < rounds; r++) xs.push(await timeMs(async () => (await make()).update(mem), name));
      show(name, xs, mem.length);
    }
    const noble: number[] = [];
    for (let r = 0; r < Math.min(rounds, 2); r++) noble.push(await timeMs(() => nobleBlake3(mem.subarray(0, 16 * 1024 * 1024)), 'blake3 pure JS (@noble/hashes), 16 MiB'));
    show('blake3 pure JS (@noble/hashes), 16 MiB', noble, 16 * 1024 * 1024);

    // How much of a layer is data: a full layer of this data, and an incremental of 256 × 256 KiB.
    const full = path.join(dir, 'full.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', file, full]);
    const inc = path.join(dir, 'inc.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', full, '-F', 'qcow2', inc]);
    execFileSync('qemu-io', ['-f', 'qcow2', ...Array.from({ length: 256 }, (_, k) => ['-c', `write -P 0x5a ${k * 4}M 256k`]).flat(), inc], { stdio: 'ignore' });
    console.log('\n  what a layer file holds (whole-file hash vs only the data clusters):');
    for (const [name, f] of [['full layer, 1 GiB random', full], ['incremental layer, 64 MiB dirty', inc]] as const) {
      const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', f], { encoding: 'utf8' })) as { length: number; data: boolean; depth: number }[];
      const data = map.filter((e) => e.data && e.depth === 0).reduce((n, e) => n + e.length, 0);
      const size = fs.statSync(f).size;
      console.log(`    ${name.padEnd(34)} file ${(size / 1048576).toFixed(1)} MiB, its own data ${(data / 1048576).toFixed(1)} MiB (${((size - data) / 1048576).toFixed(2)} MiB of metadata and headers)`);
    }

    // Hashing one file while qemu-img convert writes another (what overlapping would cost on 2 shared cores).
    const alone: number[] = [];
    const together: number[] = [];
    const hashAlone: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const out = path.join(dir, 'out.qcow2');
      execFileSync('sync');
      alone.push(await timeMs(() => execFileSync('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', full, out])));
      fs.rmSync(out);
      execFileSync('sync');
      hashAlone.push(await timeMs(() => readInto(full, nativeBlake3 ? nativeBlake3() : createHash('sha256'))));
      execFileSync('sync');
      together.push(await timeMs(async () => {
        const conv = new Promise<void>((resolve, reject) => spawn('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', full, out]).once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`convert ${c}`)))));
        await twoThreads(full, 'blake3');
        await conv;
      }));
      fs.rmSync(out);
    }
    console.log(`\n  overlap (load ${load()}):`);
    show('qemu-img convert -t writeback of the full layer alone', alone, mib * 1048576);
    show('blake3 native of the full layer alone', hashAlone, mib * 1048576);
    show('both at once (convert ‖ blake3 on 2 threads)', together, mib * 1048576);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
