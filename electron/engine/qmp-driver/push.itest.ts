// Push backups against a real QEMU: full, incremental and differential into a qcow2 chain, in
// both bitmap layouts, restored and compared byte for byte with a shadow copy of each point.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BitmapLayout } from '../../../shared/domain';
import { type BackupRig, backupRigPerSuite, compareWith, KiB, MiB } from '../backup/itest-helpers';
import type { BackupManifest } from '../backup/manifest';
import { runBackup } from './push';
import { imageInfo } from '../backup/qemuimg';
import { restoreTo } from '../backup/restore';
import { verifyBackups } from '../backup/verify';
import { RecordingReporter } from '../operation';

const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 32 * MiB },
  { name: 'vdc', sizeBytes: 16 * MiB, legacy: true },
];

async function liveBitmaps(rig: BackupRig, disk: string): Promise<{ name?: string; count: number; recording: boolean }[]> {
  const nodes = await rig.client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; count: number; recording: boolean }[] }[]>('query-named-block-nodes', { flat: true });
  return nodes.find((n) => n['node-name'] === `${disk}-fmt`)?.['dirty-bitmaps'] ?? [];
}

async function tidemarkNodes(rig: BackupRig): Promise<string[]> {
  const nodes = await rig.client.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true });
  return nodes.map((n) => n['node-name']).filter((n) => n.startsWith('tidemark-'));
}

for (const layout of ['independent', 'chained'] as BitmapLayout[]) {
  describe(`push backups (${layout} layout)`, () => {
    const rigOf = backupRigPerSuite(DISKS);
    const points: BackupManifest[] = [];

    it('full backup with a checkpoint in the same transaction', async () => {
      const r = rigOf();
      await r.engine.create({ name: 'pre', layout }); // a checkpoint without a backup: the default stays full
      await r.shadow.write('vda', 0, 3 * MiB, 0x11);
      await r.shadow.write('vdb', 5 * MiB, 700 * KiB, 0x22);
      await r.shadow.write('vdc', 1 * MiB, 512, 0x33);
      const updates: number[] = [];
      const m = await runBackup(r.engine, r.client, { repo: r.repo, reporter: new RecordingReporter({ onChange: (j) => updates.push(j.progress.length) }) });
      r.shadow.snapshot(m.id);
      points.push(m);
      expect(m.kind).toBe('full');
      expect(m.checkpoint).toBe(m.id);
      expect(m.disks.map((d) => [d.name, d.kind, d.checkpointBitmap])).toEqual([['vda', 'full', true], ['vdb', 'full', true], ['vdc', 'full', false]]);
      // sync=top on a disk without backing: only allocated data is copied
      expect(m.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(3 * MiB);
      expect(r.engine.current()?.name).toBe(m.id);
      expect((await liveBitmaps(r, 'vda')).map((b) => b.name).sort()).toEqual([m.id, 'pre'].sort());
      expect(await tidemarkNodes(r)).toEqual([]);
      expect(updates.length).toBeGreaterThan(0);
      expect(fs.existsSync(r.repo.logPath(r.engine.vmId, m.id))).toBe(true);
    });

    it('incremental by default: only the changes since the last backup, chained onto it', async () => {
      const r = rigOf();
      await r.shadow.write('vda', 10 * MiB, 64 * KiB, 0x44);
      await r.shadow.write('vda', 0, 64 * KiB, 'zero'); // a zero write over old data must not fall through to the base
      await r.shadow.write('vdb', 5 * MiB + 100 * KiB, 4 * KiB, 0x55);
      const m = await runBackup(r.engine, r.client, { repo: r.repo });
      r.shadow.snapshot(m.id);
      points.push(m);
      const base = points[0]!;
      expect(m.kind).toBe('incremental');
      expect(m.since).toBe(base.checkpoint);
      const vda = m.disks.find((d) => d.name === 'vda')!;
      expect([vda.kind, vda.base, vda.backingFile, vda.bytesCopied]).toEqual(['incremental', base.id, `${base.id}.qcow2`, 128 * KiB]);
      expect(m.disks.find((d) => d.name === 'vdb')!.bytesCopied).toBe(64 * KiB);
      const vdc = m.disks.find((d) => d.name === 'vdc')!;
      expect(vdc.kind).toBe('full');
      expect(vdc.fallbackReason).toMatch(/cannot hold bitmaps/);
      // the layer is a plain qcow2 whose backing file is the previous layer, by relative name
      const info = await imageInfo(path.join(r.repo.vmDir(r.engine.vmId), vda.image));
      expect(info.backingFile).toBe(`${base.id}.qcow2`);
      // the temporary bitmap is gone, checkpoint bitmaps are intact
      const names = (await liveBitmaps(r, 'vda')).map((b) => b.name ?? '(anonymous)');
      expect(names.filter((n) => n.startsWith('tidemark-'))).toEqual([]);
      expect(names).toContain(base.checkpoint);
      expect(names).toContain(m.checkpoint);
    });

    it('differential: changes since an older checkpoint, onto that checkpoint\'s backup', async () => {
      const r = rigOf();
      await r.shadow.write('vda', 20 * MiB, 1 * MiB + 512, 0x66);
      await r.shadow.write('vda', 10 * MiB, 32 * KiB, 0x77); // overwrite of the previous incremental's data
      const base = points[0]!;
      const m = await runBackup(r.engine, r.client, { repo: r.repo, since: base.checkpoint });
      r.shadow.snapshot(m.id);
      points.push(m);
      expect(m.kind).toBe('differential');
      const vda = m.disks.find((d) => d.name === 'vda')!;
      expect([vda.kind, vda.base]).toEqual(['differential', base.id]);
      // changes since the full: the incremental's 128 KiB plus the new 1 MiB + 512 B (17 clusters), the overwrite is inside
      expect(vda.bytesCopied).toBe(128 * KiB + 17 * 64 * KiB);
      expect(r.engine.current()?.name).toBe(m.checkpoint);
    });

    it('a full backup on request, and a backup without a checkpoint', async () => {
      const r = rigOf();
      await r.shadow.write('vdb', 0, 2 * MiB, 0x88);
      const full = await runBackup(r.engine, r.client, { repo: r.repo, full: true, disks: ['vdb'] });
      r.shadow.snapshot(full.id);
      points.push(full);
      expect(full.disks.map((d) => [d.name, d.kind])).toEqual([['vdb', 'full']]);
      await r.shadow.write('vdb', 3 * MiB, 8 * KiB, 0x99);
      const noCp = await runBackup(r.engine, r.client, { repo: r.repo, checkpoint: false, disks: ['vdb'] });
      r.shadow.snapshot(noCp.id);
      points.push(noCp);
      expect(noCp.checkpoint).toBeUndefined();
      expect(noCp.disks[0]!.kind).toBe('incremental');
      expect(noCp.disks[0]!.base).toBe(full.id);
      expect(r.engine.current()?.name).toBe(full.checkpoint);
    });

    it('a backup is the disk at its start, whatever the guest writes while it runs; the next incremental has those writes', async () => {
      const r = rigOf();
      await r.shadow.write('vda', 24 * MiB, 8 * MiB, 0xa1);
      r.shadow.snapshot('pit');
      let copied = 0;
      const running = runBackup(r.engine, r.client, { repo: r.repo, full: true, disks: ['vda'], speedMiBps: 4, reporter: new RecordingReporter({ onChange: (j) => (copied = j.progress[0]?.done ?? 0) }) });
      while (copied === 0) await new Promise((res) => setTimeout(res, 20));
      await r.shadow.write('vda', 24 * MiB, 64 * KiB, 0xa2); // probably copied already
      await r.shadow.write('vda', 31 * MiB, 512 * KiB, 0xa3); // probably not yet
      await r.shadow.write('vda', 48 * MiB, 1 * MiB, 0xa4); // was unallocated at the start
      await r.shadow.write('vda', 0, 64 * KiB, 'zero');
      const copiedAtWrites = copied;
      const m = await running;
      expect(copiedAtWrites).toBeLessThan(m.disks[0]!.bytesCopied); // the writes really happened during the job
      const to = path.join(r.root, 'pit.qcow2');
      await restoreTo({ repo: r.repo, backup: m.id, disk: 'vda', to });
      expect(compareWith(to, 'qcow2', r.shadow.snapFile('pit', 'vda'))).toBe('');
      expect(compareWith(to, 'qcow2', r.shadow.file('vda'))).toMatch(/mismatch/i);
      const next = await runBackup(r.engine, r.client, { repo: r.repo, disks: ['vda'] });
      expect(next.disks[0]!.kind).toBe('incremental');
      const to2 = path.join(r.root, 'after.qcow2');
      await restoreTo({ repo: r.repo, backup: next.id, disk: 'vda', to: to2 });
      expect(compareWith(to2, 'qcow2', r.shadow.file('vda'))).toBe('');
    });

    it('every backup point restores byte-identical to the disk at that point, and verify passes', async () => {
      const r = rigOf();
      const report = await verifyBackups(r.repo);
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      const out = path.join(r.root, 'restored');
      fs.mkdirSync(out, { recursive: true });
      let compared = 0;
      for (const m of points) {
        for (const d of m.disks) {
          const to = path.join(out, `${m.id}-${d.name}.qcow2`);
          const res = await restoreTo({ repo: r.repo, backup: m.id, disk: d.name, to });
          expect(res.path).toBe(to);
          expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, d.name))).toBe('');
          compared++;
        }
      }
      expect(compared).toBe(3 * 3 + 2);
      // negative control: the first full of vda is not the disk as it is now
      expect(compareWith(path.join(out, `${points[0]!.id}-vda.qcow2`), 'qcow2', r.shadow.file('vda'))).toMatch(/mismatch/i);
    });
  });
}
