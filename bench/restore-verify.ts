// Restore of full (1 GiB random) + 5 incrementals (256 × 256 KiB each) (figures, never pass/fail):
// today's three passes (every layer's SHA-256 + qemu-img info + check, then qemu-img convert, then
// qemu-img compare) against verifying while converting (the layers hashed, in parallel, while
// qemu-img convert reads them: page cache shared; the result is reported good only when every hash
// matched and no layer changed meanwhile), with SHA-256 from node:crypto, BLAKE3 (native) or the
// system's `openssl dgst -sha256`, and against a plain qemu-img convert -t writeback (the reference).
// Today's convert has no flush (qemu-img's default cache=unsafe for the output): shown with and
// without -t writeback. Interleaved rounds, medians [min..max].
// Run: npx tsx bench/restore-verify.ts [--rounds N]

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checksumFile } from '../electron/engine/backup/checksum';
import { checkImage, compareImages, convertImage, imageInfo } from '../electron/engine/backup/qemuimg';
import { median } from './measure';
import { load, run, settle } from './peers/proc';
import { nativeBlake3 } from './native-hashers';

const MiB = 1024 * 1024;

/** Hash of a file with readSync into one reused buffer. */
function hashFile(file: string, h: Digest): string {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  try {
    for (let pos = 0; ;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

type Digest = { update(b: Uint8Array): unknown; digest(enc: 'hex'): string };
// Without the native hasher the BLAKE3 case is skipped (bench/native-hashers.ts).
const blake3 = (): Digest => (nativeBlake3 ? nativeBlake3() : createHash('sha256'));

/** Identity of a file's content for "did it change while we read it": size, mtime, inode. */
const stamp = (f: string) => {
  const s = fs.statSync(f, { bigint: true });
  return `${s.size}:${s.mtimeNs}:${s.ino}`;
};

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmrst-'));
  try {
    // The chain: full ← inc1 ← … ← inc5, written offline (same shape as the peers bench).
    const raw = path.join(dir, 'r.raw');
    execFileSync('head', ['-c', String(1024 * MiB), '/dev/urandom'], { stdio: ['ignore', fs.openSync(raw, 'w'), 'inherit'] });
    const layers = [path.join(dir, 'full.qcow2')];
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, layers[0]!]);
    fs.rmSync(raw);
    for (let k = 1; k <= 5; k++) {
      const f = path.join(dir, `inc${k}.qcow2`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.basename(layers[k - 1]!), '-F', 'qcow2', f]);
      const pat = path.join(dir, `p${k}.bin`);
      execFileSync('head', ['-c', String(256 * 1024), '/dev/urandom'], { stdio: ['ignore', fs.openSync(pat, 'w'), 'inherit'] });
      execFileSync('qemu-io', ['-f', 'qcow2', ...Array.from({ length: 256 }, (_, j) => ['-c', `write -s ${pat} ${j * 4}M 256k`]).flat(), f], { stdio: 'ignore' });
      layers.push(f);
    }
    const top = layers[5]!;
    // "The manifest": what each layer's hash must be.
    const want = {
      sha256: layers.map((f) => hashFile(f, createHash('sha256'))),
      blake3: layers.map((f) => hashFile(f, blake3())),
    };
    const out = path.join(dir, 'restored.qcow2');
    const steps = { hash: [] as number[], infoCheck: [] as number[], convert: [] as number[], compare: [] as number[] };

    /** Today: verify every layer (hash, info, check), then convert, then compare — three passes. */
    const today = async (writeback: boolean) => {
      const t = performance.now();
      for (const f of layers) await checksumFile(f, 'sha256');
      const h = performance.now();
      for (const f of layers) {
        await imageInfo(f, { format: 'qcow2' });
        await checkImage(f);
      }
      const ic = performance.now();
      if (writeback) await run('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', '-o', 'compat=1.1', top, out]);
      else await convertImage(top, out, { format: 'qcow2' });
      const cv = performance.now();
      const cmp = await compareImages(out, 'qcow2', top, 'qcow2');
      if (!cmp.identical) throw new Error('restored copy differs');
      if (!writeback) {
        steps.hash.push(h - t);
        steps.infoCheck.push(ic - h);
        steps.convert.push(cv - ic);
        steps.compare.push(performance.now() - cv);
      }
    };
    /** One pass: qemu-img convert -t writeback while every layer is hashed (and info + check run) in parallel. */
    const together = async (how: 'sha256' | 'blake3' | 'openssl') => {
      const before = layers.map(stamp);
      const convert = run('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', '-o', 'compat=1.1', top, out]);
      const checks = Promise.all(layers.map(async (f) => {
        await imageInfo(f, { format: 'qcow2' });
        return checkImage(f);
      }));
      let got: string[];
      if (how === 'openssl') {
        got = await Promise.all(layers.map(async (f) => (await run('openssl', ['dgst', '-sha256', '-r', f])).stdout.split(' ')[0]!));
      } else {
        got = [];
        for (const f of layers) {
          got.push(hashFile(f, how === 'sha256' ? createHash('sha256') : blake3()));
          await new Promise((r) => setImmediate(r)); // let the other promises move between layers
        }
      }
      const [, checked] = await Promise.all([convert, checks]);
      const expect = how === 'blake3' ? want.blake3 : want.sha256;
      if (got.some((g, k) => g !== expect[k]) || checked.some((c) => !c.ok)) throw new Error(`${how}: a layer does not match`);
      if (layers.map(stamp).join() !== before.join()) throw new Error('a layer changed during the restore');
    };
    const cases: [string, () => Promise<unknown>][] = [
      ['today: verify, convert (no flush), compare', () => today(false)],
      ['today with convert -t writeback', () => today(true)],
      ['one pass: convert ‖ sha256 node:crypto', () => together('sha256')],
      ...(nativeBlake3 ? [['one pass: convert ‖ blake3 native', () => together('blake3')] as [string, () => Promise<unknown>]] : []),
      ['one pass: convert ‖ openssl dgst -sha256 ×6', () => together('openssl')],
      ['qemu-img convert -t writeback of the chain (reference)', () => run('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', top, out])],
    ];
    const xs = new Map<string, number[]>(cases.map(([k]) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, fn] of [...cases.slice(r % cases.length), ...cases.slice(0, r % cases.length)]) {
        fs.rmSync(out, { force: true });
        settle();
        const t0 = performance.now();
        await fn();
        xs.get(name)!.push(performance.now() - t0);
      }
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    const ref = median(xs.get(cases[cases.length - 1]![0])!);
    console.log(`restore of full (1 GiB random) + 5 incrementals (64 MiB each), ${rounds} interleaved rounds; load ${load()}`);
    for (const [name, v] of xs) {
      const s = [...v].sort((a, b) => a - b);
      console.log(`  ${name.padEnd(56)} ${median(v).toFixed(0).padStart(6)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}]  ×${(median(v) / ref).toFixed(2)} of qemu-img convert`);
    }
    console.log(`  today's steps: SHA-256 of 6 layers ${median(steps.hash).toFixed(0)} ms, info + check ${median(steps.infoCheck).toFixed(0)} ms, convert ${median(steps.convert).toFixed(0)} ms, compare ${median(steps.compare).toFixed(0)} ms`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
