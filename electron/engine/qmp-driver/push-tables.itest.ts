// A push incremental of a large disk allocates its target's L2 tables ahead, where the changes are
// (push.ts tablesAhead), against a real QEMU: the layer holds exactly the changes, restores to the
// disk at that point, verify passes, nothing is left in QEMU; and recovery removes what a push that
// died while reading the changes left behind.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { type BackupRig, backupRigPerSuite, compareWith, KiB, MiB } from '../backup/itest-helpers';
import { restoreTo } from '../backup/restore';
import { verifyBackups } from '../backup/verify';
import { ExportManager, nbdSocketPath } from '../../nbd/qemu-exports';
import { runBackup } from './push';
import { recoverQmpLeftovers } from './recovery';

const GiB = 1024 * MiB;
// vda: 64 GiB (128 L2 tables), read for its changes; vdb: 32 MiB (1 table), not worth reading.
const DISKS = [
  { name: 'vda', sizeBytes: 64 * GiB },
  { name: 'vdb', sizeBytes: 32 * MiB },
];

async function exportIds(rig: BackupRig): Promise<string[]> {
  return (await rig.client.execute<{ id: string }[]>('query-block-exports')).map((e) => e.id);
}

async function bitmapNames(rig: BackupRig, disk: string): Promise<string[]> {
  const nodes = await rig.client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true });
  return (nodes.find((n) => n['node-name'] === `${disk}-fmt`)?.['dirty-bitmaps'] ?? []).map((b) => b.name ?? '');
}

/** The L1 entries of a qcow2 file that point to an L2 table. */
function usedL1Entries(file: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(48);
    fs.readSync(fd, head, 0, 48, 0);
    const l1 = Buffer.alloc(head.readUInt32BE(36) * 8);
    fs.readSync(fd, l1, 0, l1.length, Number(head.readBigUInt64BE(40)));
    let used = 0;
    for (let i = 0; i < l1.length; i += 8) if (l1.readBigUInt64BE(i) !== 0n) used++;
    return used;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * QEMU refuses, once, the first command `matches` picks (the error says `message`); every other command
 * goes through. `matched()`: how many commands it picked, the refused one included.
 */
function refuseOnce(rig: BackupRig, matches: (cmd: string, args?: Record<string, unknown>) => boolean, message: string): { matched(): number; restore(): void } {
  const execute = rig.client.execute.bind(rig.client);
  let n = 0;
  const spy = vi.spyOn(rig.client, 'execute').mockImplementation(((cmd: string, args?: Record<string, unknown>) => {
    if (matches(cmd, args) && n++ === 0) return Promise.reject(new Error(message));
    return execute(cmd, args);
  }) as typeof rig.client.execute);
  return { matched: () => n, restore: () => spy.mockRestore() };
}

/** A push backup now, the rig's shadow snapshotted at it; with the backup's log. */
async function backedUp(rig: BackupRig, options: { stateDir?: string } = { stateDir: rig.stateDir }): Promise<{ inc: Awaited<ReturnType<typeof runBackup>>; log: string }> {
  const inc = await runBackup(rig.engine, rig.client, { repo: rig.repo, ...options });
  rig.shadow.snapshot(inc.id);
  return { inc, log: fs.readFileSync(rig.repo.logPath(rig.engine.vmId, inc.id), 'utf8') };
}

/** No export and no bitmap of Tidemark's is left in QEMU. */
async function expectNothingLeft(rig: BackupRig): Promise<void> {
  expect(await exportIds(rig)).toEqual([]);
  expect((await bitmapNames(rig, 'vda')).filter((n) => n.startsWith('tidemark-'))).toEqual([]);
}

/** Backup `id`'s vda, restored, equals the disk when it was taken. */
async function expectRestored(rig: BackupRig, id: string, file: string): Promise<void> {
  const to = path.join(rig.root, file);
  await restoreTo({ repo: rig.repo, backup: id, disk: 'vda', to });
  expect(compareWith(to, 'qcow2', rig.shadow.snapFile(id, 'vda'))).toBe('');
}

describe('push incrementals of a large disk: L2 tables allocated ahead', () => {
  const rigOf = backupRigPerSuite(DISKS);

  it('allocates a table per changed region, holds exactly the changes, restores, verifies, leaves nothing in QEMU', async () => {
    const r = rigOf();
    await r.shadow.write('vda', 0, 1 * MiB, 0x11);
    await r.shadow.write('vdb', 0, 1 * MiB, 0x12);
    const full = await runBackup(r.engine, r.client, { repo: r.repo, stateDir: r.stateDir });
    r.shadow.snapshot(full.id);
    // Three regions in three L2 tables (512 MiB each), one of them across a table's end; vdb too.
    await r.shadow.write('vda', 1 * GiB + 64 * KiB, 256 * KiB, 0x21);
    await r.shadow.write('vda', 20 * GiB - 64 * KiB, 128 * KiB, 0x22);
    await r.shadow.write('vda', 64 * GiB - 64 * KiB, 64 * KiB, 0x23);
    await r.shadow.write('vdb', 5 * MiB, 64 * KiB, 0x24);
    const execute = vi.spyOn(r.client, 'execute');
    const { inc, log } = await backedUp(r);
    // The map was read at the tables' granularity (512 MiB), and still names exactly the changed tables.
    const adds = execute.mock.calls.flatMap(([cmd, args]) => (cmd === 'transaction' ? (args as { actions: { type: string; data: Record<string, unknown> }[] }).actions : []))
      .filter((a) => a.type === 'block-dirty-bitmap-add' && String(a.data.name).endsWith('-map'));
    // QEMU removes the map's bitmap while the target is written, and before the backup's transaction.
    const sent = execute.mock.calls.map(([cmd, args]) => ({ cmd, args: (args ?? {}) as { name?: string; actions?: { type: string }[] } }));
    const mapRemoved = sent.findIndex((c) => c.cmd === 'block-dirty-bitmap-remove' && String(c.args.name).endsWith('-map'));
    const backupTx = sent.findIndex((c) => c.cmd === 'transaction' && c.args.actions!.some((a) => a.type === 'blockdev-backup'));
    expect(mapRemoved).toBeGreaterThan(-1);
    expect(mapRemoved).toBeLessThan(backupTx);
    execute.mockRestore();
    expect(adds.map((a) => a.data.granularity)).toEqual([512 * MiB]);

    expect(log).toContain('vda: 4 L2 tables of the target allocated ahead, where the changes are');
    expect(log).not.toMatch(/vdb: .*allocated ahead/);
    const vda = inc.disks.find((d) => d.name === 'vda')!;
    expect([vda.kind, vda.bytesCopied]).toEqual(['incremental', 448 * KiB]);
    const layer = path.join(r.repo.vmDir(r.engine.vmId), vda.image);
    expect(usedL1Entries(layer)).toBe(4);
    expect(execFileSync('qemu-img', ['check', layer]).toString()).toContain('No errors were found on the image.');
    // The layer alone holds the changes and nothing else (its backing left out).
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', `json:${JSON.stringify({ driver: 'qcow2', file: { driver: 'file', filename: layer }, backing: null })}`]).toString()) as { start: number; length: number; data: boolean }[];
    expect(map.filter((m) => m.data).map((m) => [m.start, m.length])).toEqual([
      [1 * GiB + 64 * KiB, 256 * KiB],
      [20 * GiB - 64 * KiB, 128 * KiB],
      [64 * GiB - 64 * KiB, 64 * KiB],
    ]);

    await expectNothingLeft(r);
    expect((await verifyBackups(r.repo)).problems).toEqual([]);
    for (const m of [full, inc]) {
      for (const d of m.disks) {
        const to = path.join(r.root, `${m.id}-${d.name}.qcow2`);
        await restoreTo({ repo: r.repo, backup: m.id, disk: d.name, to });
        expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, d.name))).toBe('');
        fs.rmSync(to);
      }
    }
  });

  it('without the state directory the push reads no map, and the backup is the same', async () => {
    const r = rigOf();
    await r.shadow.write('vda', 30 * GiB, 64 * KiB, 0x31);
    const { inc, log } = await backedUp(r, {});
    expect(log).not.toContain('allocated ahead');
    await expectRestored(r, inc.id, 'plain.qcow2');
  });

  it('when the changes cannot be read (another NBD server runs in QEMU), the push goes on without, correct, and leaves nothing behind', async () => {
    const r = rigOf();
    const other = path.join(r.root, 'someone-elses-nbd.sock');
    await r.client.execute('nbd-server-start', { addr: { type: 'unix', data: { path: other } } });
    try {
      await r.shadow.write('vda', 40 * GiB, 128 * KiB, 0x41);
      const { inc, log } = await backedUp(r);
      expect(log).toMatch(/vda: where the changes are could not be read \(.*NBD server.*\); QEMU allocates the target's L2 tables itself/);
      await expectNothingLeft(r);
      await expectRestored(r, inc.id, 'without.qcow2');
    } finally {
      await r.client.execute('nbd-server-stop');
    }
  });

  it('recovery removes the export and bitmap of a push that died while reading the changes, and nothing else', async () => {
    const r = rigOf();
    const tmp = 'tidemark-tmp-bk-dead00-0';
    const map = `${tmp}-map`;
    await r.client.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name: map, disabled: true, persistent: false });
    const exports = ExportManager.for(r.client, nbdSocketPath(r.stateDir, r.engine.vmId));
    await exports.add({ nodeName: 'vda-fmt', bitmaps: [map], prefix: map });
    const other = await exports.add({ nodeName: 'vdb-fmt', prefix: 'tidemark-map' });
    const lines: string[] = [];
    const journal = (tmpBitmap: string) => ({ name: 'qmp-push', state: { disks: [{ disk: 'vda', jobId: 'tidemark-bk-dead00-0', targetNode: 'tidemark-bkt-dead00-0', tmpBitmap, sourceNode: 'vda-fmt' }] } });
    // A journal whose temporary bitmap is not named as a push names it touches nothing (its prefix would match every export).
    await recoverQmpLeftovers(r.client, journal('tidemark'), 'dead00', { add: (l) => lines.push(l) });
    expect((await exportIds(r)).length).toBe(2);
    await recoverQmpLeftovers(r.client, journal(tmp), 'dead00', { add: (l) => lines.push(l) });
    expect(await exportIds(r)).toEqual([other.id]);
    expect(await bitmapNames(r, 'vda')).not.toContain(map);
    expect(lines.join('\n')).toMatch(/export tm-exp-tidemark-tmp-bk-dead00-0-map-[0-9a-f]+ of a change map removed/);
    expect(lines.join('\n')).toContain(`bitmap ${map} of a change map removed`);
    await other.remove();
    expect(await exportIds(r)).toEqual([]);
  });
  it('when QEMU cannot remove the map\'s export at once, the push says so, removes what is left, and the backup is correct', async () => {
    const r = rigOf();
    await r.shadow.write('vda', 50 * GiB, 64 * KiB, 0x51);
    const refusal = refuseOnce(r, (cmd, args) => cmd === 'block-export-del' && String(args?.id).includes('-map-'), 'injected: the export is still in use');
    try {
      const { inc, log } = await backedUp(r);
      expect(refusal.matched()).toBeGreaterThan(0);
      expect(log).toContain('vda: the map of the changes was not removed at once (injected: the export is still in use); removing what is left');
      expect(log).toContain('vda: 1 L2 table of the target allocated ahead, where the changes are');
      await expectNothingLeft(r);
      // The clean-up stopped QEMU's NBD server behind the export manager's back: its next export starts it again.
      const after = await ExportManager.for(r.client, nbdSocketPath(r.stateDir, r.engine.vmId)).add({ nodeName: 'vdb-fmt', prefix: 'after' });
      await after.remove();
      await expectRestored(r, inc.id, 'removed-late.qcow2');
    } finally {
      refusal.restore();
    }
  });
  it('when QEMU cannot remove the map\'s bitmap at once, the push says so and removes it: no bitmap of it is left after a backup that succeeded', async () => {
    const r = rigOf();
    await r.shadow.write('vda', 60 * GiB, 64 * KiB, 0x61);
    const refusal = refuseOnce(r, (cmd, args) => cmd === 'block-dirty-bitmap-remove' && String(args?.name).endsWith('-map'), 'injected: the bitmap is busy');
    try {
      const { inc, log } = await backedUp(r);
      expect(refusal.matched()).toBe(2); // the push's own removal, refused; then the clean-up's, done
      expect(log).toContain('vda: the map of the changes was not removed at once (injected: the bitmap is busy); removing what is left');
      expect(log).toMatch(/bitmap tidemark-tmp-bk-[0-9a-f]{6}-0-map of a change map removed/);
      await expectNothingLeft(r);
      await expectRestored(r, inc.id, 'bitmap-removed-late.qcow2');
    } finally {
      refusal.restore();
    }
  });
});
