import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DiskInfo } from '../../../shared/domain';
import type { QmpClient } from '../../qmp/client';
import { dirtyBytes, planWrites, simulateWrites, writeAt } from './writer';

const MiB = 1024 * 1024;
const disk = (over: Partial<DiskInfo> = {}): DiskInfo => ({
  name: 'vda', device: 'vda', qdevPath: '/machine/peripheral/vda/virtio-backend', drive: 'drive-vda', nodeName: 'vda-fmt',
  format: 'qcow2', virtualSize: 1024 * MiB, imageFile: '/x/vda.qcow2', granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [],
  ...over,
});

/** Records HMP command lines; answers each with `reply(cmd)` and may append to a fake stdout log. */
function recorder(reply: (cmd: string) => string = () => '', log?: { file: string; line: (cmd: string) => string }) {
  const commands: string[] = [];
  const client = {
    async hmp(cmd: string) {
      commands.push(cmd);
      if (log) fs.appendFileSync(log.file, log.line(cmd));
      return reply(cmd);
    },
  } as unknown as QmpClient;
  return { client, commands };
}

describe('planWrites', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const a = planWrites(1024 * MiB, { pattern: 'random', mib: 4, seed: 7 });
    expect(planWrites(1024 * MiB, { pattern: 'random', mib: 4, seed: 7 })).toEqual(a);
    expect(planWrites(1024 * MiB, { pattern: 'random', mib: 4, seed: 8 })).not.toEqual(a);
  });

  it.each(['random', 'sequential', 'hotspot'] as const)('%s writes exactly the amount asked, block-aligned and inside the disk', (pattern) => {
    const size = 64 * MiB;
    const ws = planWrites(size, { pattern, mib: 3.5, seed: 3 });
    expect(ws.reduce((n, w) => n + w.len, 0)).toBe(3.5 * MiB);
    const block = pattern === 'sequential' ? MiB : 65536;
    for (const w of ws) {
      expect(w.offset % block).toBe(0);
      expect(w.offset + w.len).toBeLessThanOrEqual(size);
      expect(w.pattern).toBeGreaterThanOrEqual(1);
      expect(w.pattern).toBeLessThanOrEqual(255);
    }
  });

  it('sequential writes are contiguous and wrap at the end of the disk', () => {
    const ws = planWrites(8 * MiB, { pattern: 'sequential', mib: 12, seed: 5 });
    expect(ws).toHaveLength(12);
    for (let i = 1; i < ws.length; i++) expect(ws[i]!.offset).toBe((ws[i - 1]!.offset + MiB) % (8 * MiB));
  });

  it('a sequential run can start where the last one ended (rounded down to a block, wrapping); a bad start is refused', () => {
    const first = planWrites(1024 * MiB, { pattern: 'sequential', mib: 8, seed: 7 });
    const end = first.at(-1)!.offset + first.at(-1)!.len;
    const next = planWrites(1024 * MiB, { pattern: 'sequential', mib: 4, seed: 8, start: end });
    expect(next[0]!.offset).toBe(end % (1024 * MiB));
    expect(next.every((w) => first.every((f) => w.offset + w.len <= f.offset || f.offset + f.len <= w.offset))).toBe(true);
    expect(planWrites(8 * MiB, { pattern: 'sequential', mib: 2, start: 8 * MiB + 1.5 * MiB }).map((w) => w.offset)).toEqual([MiB, 2 * MiB]);
    expect(() => planWrites(8 * MiB, { pattern: 'sequential', mib: 1, start: -1 })).toThrow('start offset must be a whole number of bytes from 0, got -1');
  });

  it('hotspot puts most writes in a small region; random spreads them', () => {
    const size = 1024 * MiB;
    const spread = (ws: { offset: number }[]) => {
      const sorted = ws.map((w) => w.offset).sort((x, y) => x - y);
      // the narrowest window holding 80% of the writes
      const k = Math.ceil(sorted.length * 0.8);
      let best = Infinity;
      for (let i = 0; i + k - 1 < sorted.length; i++) best = Math.min(best, sorted[i + k - 1]! - sorted[i]!);
      return best;
    };
    const hot = planWrites(size, { pattern: 'hotspot', mib: 16, seed: 11 });
    const rnd = planWrites(size, { pattern: 'random', mib: 16, seed: 11 });
    expect(spread(hot)).toBeLessThanOrEqual(size / 16);
    expect(spread(rnd)).toBeGreaterThan(size / 2);
  });

  it('rejects bad options with a clear reason', () => {
    expect(() => planWrites(MiB, { pattern: 'zigzag' as 'random', mib: 1 })).toThrow('write pattern "zigzag" is not one of random, sequential, hotspot');
    expect(() => planWrites(MiB, { pattern: 'random', mib: 0 })).toThrow('amount to write must be a positive number of MiB, got 0');
    expect(() => planWrites(MiB, { pattern: 'random', mib: 1, blockBytes: 1000 })).toThrow('block size 1000 must be a positive multiple of 512 bytes');
    expect(() => planWrites(MiB, { pattern: 'random', mib: 1, blockBytes: 2 * MiB })).toThrow(/larger than the disk/);
  });
});

describe('dirtyBytes', () => {
  it('counts each touched granule once, straddles included', () => {
    const g = 65536;
    expect(dirtyBytes([{ offset: 0, len: 4096, pattern: 1 }], g, 10 * g)).toBe(g);
    expect(dirtyBytes([{ offset: g - 1, len: 2, pattern: 1 }, { offset: 0, len: 1, pattern: 2 }], g, 10 * g)).toBe(2 * g);
    expect(dirtyBytes([{ offset: 9 * g, len: 100, pattern: 1 }], g, 9 * g + 100)).toBe(100);
  });
});

describe('simulateWrites / writeAt (HMP command lines and error detection)', () => {
  it('writes through the drive id when there is one, else through the device path', async () => {
    const a = recorder();
    await writeAt(a.client, disk(), 65536, 4096, 0xab);
    await writeAt(a.client, disk(), 0, 65536, 'zero');
    const b = recorder();
    await writeAt(b.client, disk({ drive: undefined }), 0, 512, 7);
    expect(a.commands).toEqual(['qemu-io drive-vda "write -P 0xab 65536 4096"', 'qemu-io drive-vda "write -z 0 65536"']);
    expect(b.commands).toEqual(['qemu-io -d /machine/peripheral/vda/virtio-backend "write -P 0x07 0 512"']);
  });

  it('refuses a disk with no BlockBackend rather than falling back to the node name', async () => {
    const r = recorder();
    await expect(writeAt(r.client, disk({ drive: undefined, qdevPath: undefined }), 0, 512, 1)).rejects.toThrow('disk vda has neither a drive id nor a device path');
    expect(r.commands).toEqual([]);
  });

  it('a non-empty HMP reply is an error that quotes QEMU', async () => {
    const r = recorder(() => "Error: Cannot find device='' nor node-name='drive-vda'\r\n");
    await expect(simulateWrites(r.client, disk(), { pattern: 'random', mib: 1 })).rejects.toThrow("write to vda at offset");
    await expect(writeAt(r.client, disk(), 0, 512, 1)).rejects.toThrow("failed: Error: Cannot find device='' nor node-name='drive-vda'");
  });

  it('finds I/O errors in the stdout log, and only in what was appended', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-writer-'));
    try {
      const file = path.join(dir, 'qemu.log');
      fs.writeFileSync(file, 'write failed: Input/output error\n'); // an old failure must not count
      let n = 0;
      const r = recorder(() => '', { file, line: () => (++n === 3 ? 'write failed: No medium found\n' : `wrote 65536/65536 bytes at offset ${n}\n`) });
      const progress: number[] = [];
      const opts = { pattern: 'sequential', mib: 1, blockBytes: 65536 } as const;
      const third = planWrites(disk().virtualSize, opts)[2]!.offset;
      await expect(simulateWrites(r.client, disk(), { ...opts, logFile: file, onProgress: (d) => progress.push(d) }))
        .rejects.toThrow(`write to vda at offset ${third} failed (QEMU reported: write failed: No medium found)`);
      expect(progress).toEqual([65536, 131072]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checks ranges and patterns before sending anything', async () => {
    const r = recorder();
    await expect(writeAt(r.client, disk({ virtualSize: MiB }), MiB - 512, 1024, 1)).rejects.toThrow('write of 1024 bytes at offset 1048064 goes past the end of vda (1048576 bytes)');
    await expect(writeAt(r.client, disk(), 0, 512, 256)).rejects.toThrow("write pattern 256 must be a byte (0..255) or 'zero'");
    await expect(writeAt(r.client, disk({ readOnly: true }), 0, 512, 1)).rejects.toThrow('disk vda is read-only');
    await expect(simulateWrites(r.client, disk(), { pattern: 'random', mib: 1, rateMibPerS: -1 })).rejects.toThrow('write rate must be a positive number of MiB/s, got -1');
    expect(r.commands).toEqual([]);
  });

  it('stops when the signal aborts and says how far it got', async () => {
    const ac = new AbortController();
    const r = recorder();
    const run = simulateWrites(r.client, disk(), { pattern: 'random', mib: 1, signal: ac.signal, onProgress: (d) => { if (d >= 4 * 65536) ac.abort(); } });
    await expect(run).rejects.toThrow('write simulation cancelled after 262144 bytes');
    expect(r.commands).toHaveLength(4);
  });

  it('a throttled run can be cancelled while it sleeps', async () => {
    const ac = new AbortController();
    const r = recorder();
    const run = simulateWrites(r.client, disk(), { pattern: 'sequential', mib: 8, rateMibPerS: 1, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(run).rejects.toThrow(/cancelled after \d+ bytes/);
    expect(r.commands.length).toBeLessThan(8);
  });
});
