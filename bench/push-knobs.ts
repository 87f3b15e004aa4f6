// QEMU's own knobs for a full push backup (figures, never pass/fail): the same blockdev-backup that
// Tidemark issues (sync=top, auto-finalize off), driven by hand on a lab VM holding 1 GiB of random
// data, with x-perf (max-workers, max-chunk, use-copy-range) and the target's cache mode
// (cache.direct; cache.no-flush with our own fdatasync after close, so the result is as durable),
// against qemu-img convert -U -t writeback of the same image. Every figure covers target open →
// job → finalize → close (blockdev-del flushes); QMP event timestamps split it into copy and close.
// Interleaved rounds, medians [min..max]. --verify: one round, and every target is compared with the
// source (qemu-img compare -U) before it is deleted, so a fast variant is also a correct one.
// Run: npx tsx bench/push-knobs.ts [--rounds N] [--verify]

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { QmpEvent } from '../electron/qmp/client';
import { median } from './measure';
import { Machines } from './peers/machines';
import { load, run, settle } from './peers/proc';

interface Variant {
  name: string;
  perf?: Record<string, unknown>;
  cache?: { direct?: boolean; 'no-flush'?: boolean };
}

const VARIANTS: Variant[] = [
  { name: 'as Tidemark today (defaults)' },
  { name: 'x-perf max-workers 8', perf: { 'max-workers': 8 } },
  { name: 'x-perf max-chunk 4 MiB', perf: { 'max-chunk': 4 * 1024 * 1024 } },
  { name: 'x-perf max-chunk 16 MiB, max-workers 16', perf: { 'max-chunk': 16 * 1024 * 1024, 'max-workers': 16 } },
  { name: 'x-perf use-copy-range', perf: { 'use-copy-range': true } },
  { name: 'target cache.direct=on', cache: { direct: true } },
  { name: 'target cache.no-flush=on + our fdatasync', cache: { 'no-flush': true } },
  { name: 'cache.direct + max-chunk 4 MiB', perf: { 'max-chunk': 4 * 1024 * 1024 }, cache: { direct: true } },
];

const seconds = (e: QmpEvent) => e.timestamp.seconds + e.timestamp.microseconds / 1e6;

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const verify = process.argv.includes('--verify');
  const rounds = verify ? 1 : i >= 0 ? Number(process.argv[i + 1]) : 5;
  const m = Machines.create();
  process.on('SIGINT', () => void m.close().finally(() => process.exit(130)));
  try {
    m.makeImages(false);
    await m.startLab();
    const qmp = m.lab!.qmp;
    const totals = new Map<string, number[]>([...VARIANTS.map((v) => [v.name, []] as [string, number[]]), ['qemu-img convert -U -t writeback', []]]);
    const copy = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
    const close = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      const order = [...VARIANTS.slice(r % VARIANTS.length), ...VARIANTS.slice(0, r % VARIANTS.length)];
      for (const v of order) {
        const target = m.p('out', `t${n}.qcow2`);
        const node = `knob-${n}`;
        const job = `knob-job-${n++}`;
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', target, String(1024 ** 3)]);
        const events: QmpEvent[] = [];
        const off = qmp.onEvent((e) => {
          if (e.event === 'JOB_STATUS_CHANGE' && e.data.id === job) events.push(e);
        });
        settle();
        const t0 = performance.now();
        await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: target }, backing: null, ...(v.cache ? { cache: v.cache } : {}) });
        const status = (s: string) => qmp.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === job && e.data.status === s, 600_000);
        const pending = status('pending');
        await qmp.execute('transaction', { actions: [{ type: 'blockdev-backup', data: { 'job-id': job, device: 'vda-fmt', target: node, sync: 'top', 'auto-finalize': false, 'auto-dismiss': false, ...(v.perf ? { 'x-perf': v.perf } : {}) } }] });
        const pend = await pending;
        const concluded = status('concluded');
        await qmp.execute('job-finalize', { id: job });
        await concluded;
        await qmp.execute('job-dismiss', { id: job });
        const c0 = performance.now();
        await qmp.execute('blockdev-del', { 'node-name': node });
        if (v.cache?.['no-flush']) {
          const fd = fs.openSync(target, 'r+');
          fs.fdatasyncSync(fd);
          fs.closeSync(fd);
        }
        const t1 = performance.now();
        off();
        const running = events.find((e) => e.data.status === 'running');
        totals.get(v.name)!.push(t1 - t0);
        copy.get(v.name)!.push(running ? (seconds(pend) - seconds(running)) * 1000 : NaN);
        close.get(v.name)!.push(t1 - c0);
        if (verify) {
          // the live image's metadata must be on disk for qemu-img: flush through the guest's BlockBackend first
          await qmp.hmp('qemu-io drive-vda "flush"');
          const cmp = await run('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'qcow2', target, m.lab!.image('vda')]).then((x) => x.stdout.trim(), (e: Error) => `DIFFERS: ${e.message}`);
          console.log(`  verify ${v.name}: ${cmp}`);
        }
        fs.rmSync(target);
      }
      const out = m.p('out', 'convert.qcow2');
      settle();
      totals.get('qemu-img convert -U -t writeback')!.push((await run('qemu-img', ['convert', '-U', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', m.lab!.image('vda'), out])).ms);
      fs.rmSync(out);
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    const base = median(totals.get(VARIANTS[0]!.name)!);
    const ref = median(totals.get('qemu-img convert -U -t writeback')!);
    console.log(`full push of vda (1 GiB random), blockdev-backup sync=top by hand, ${rounds} interleaved rounds; load ${load()}`);
    console.log(`  ${'variant'.padEnd(44)} ${'total'.padStart(8)}  ${'copy (running→pending)'.padStart(22)}  ${'close'.padStart(7)}  vs today  vs qemu-img`);
    for (const [name, xs] of totals) {
      const s = [...xs].sort((a, b) => a - b);
      const cp = copy.get(name);
      const cl = close.get(name);
      console.log(`  ${name.padEnd(44)} ${median(xs).toFixed(0).padStart(6)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}]  ${cp ? `${median(cp).toFixed(0).padStart(18)} ms` : ''.padStart(21)}  ${cl ? `${median(cl).toFixed(0).padStart(4)} ms` : ''.padStart(7)}  ×${(median(xs) / base).toFixed(2)}  ×${(median(xs) / ref).toFixed(2)}`);
    }
  } finally {
    await m.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
