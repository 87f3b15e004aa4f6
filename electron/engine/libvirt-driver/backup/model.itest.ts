// The seeded model test in libvirt mode: random guest writes, checkpoints created and deleted through
// libvirt, push and pull backups (full, automatic, or since a random checkpoint: incremental or
// differential) into one repository, and restores of random backup points compared byte for byte
// with a shadow copy of what each disk held then. Ends with backup-verify over the repository.
// TIDEMARK_MODEL_SEED=N replays a run; TIDEMARK_MODEL_OPS=N sets the number of operations (default 24).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCheckpoint, deleteCheckpoint, listCheckpointNames } from '../../../libvirt/checkpoints';
import { LibvirtTestLab, runsAsRoot } from '../../../../test/libvirt/lab';
import { differsFrom, openBackupRig, type BackupRig } from '../../../../test/libvirt/backup-rig';
import { prng } from '../../lab/writer';
import { silentReporter } from '../../operation';
import { restoreTo } from '../../backup/restore';
import { describeFailures, verifyBackups } from '../../backup/verify';
import type { BackupManifest } from '../../backup/manifest';
import { libvirtBackupOps } from '.';

const SEED = process.env.TIDEMARK_MODEL_SEED ? Number(process.env.TIDEMARK_MODEL_SEED) : Math.floor(Math.random() * 2 ** 31);
const OPS = process.env.TIDEMARK_MODEL_OPS ? Number(process.env.TIDEMARK_MODEL_OPS) : 24;

let lab: LibvirtTestLab;
let rig: BackupRig;

beforeAll(async () => {
  if (!runsAsRoot) return;
  lab = await LibvirtTestLab.open();
  rig = await openBackupRig(lab);
}, 120_000);

afterAll(async () => {
  await rig?.close();
  await lab?.close();
}, 120_000);

describe.skipIf(!runsAsRoot)(`libvirt model (seed ${SEED}, ${OPS} operations)`, () => {
  it('every restore matches the shadow copy of its point', async () => {
    const rnd = prng(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const ops = libvirtBackupOps(rig.handle);
    const backups: BackupManifest[] = [];
    const history: string[] = [];
    let n = 0;
    const sizes = Object.fromEntries(rig.dom.disks.map((d) => [d.target, d.sizeBytes]));
    try {
      for (let step = 0; step < OPS; step++) {
        const r = rnd();
        if (r < 0.35 || backups.length === 0 && r < 0.5) {
          const disk = rig.dom.disks[int(rig.dom.disks.length)]!.target;
          const len = (1 + int(512)) * 4096;
          const off = int(Math.floor((sizes[disk]! - len) / 512)) * 512;
          const pattern = 1 + int(255);
          await rig.write(disk, off, len, pattern);
          history.push(`write ${disk} ${off}+${len} =${pattern}`);
        } else if (r < 0.75 || backups.length === 0) {
          const mode = rnd() < 0.5 ? 'push' : 'pull';
          const cps = await listCheckpointNames(rig.conn, rig.dom.uuid);
          const k = rnd();
          const spec = k < 0.2 || backups.length === 0 ? { full: true } : k < 0.5 && cps.length > 0 ? { since: cps[int(cps.length)]! } : {};
          const name = `m${n++}`;
          history.push(`${mode} ${JSON.stringify(spec)} → ${name}`);
          const b = await ops.begin({ mode, repo: rig.repo, checkpoint: name, ...spec }, silentReporter());
          backups.push(b.manifest!);
          rig.snapshot(b.backupId);
          history.push(`  = ${b.backupId} ${b.manifest!.kind} ${b.manifest!.disks.map((d) => `${d.name}:${d.kind}${d.base ? `<${d.base}` : ''}`).join(' ')}`);
        } else if (r < 0.85) {
          const name = `x${n++}`;
          await createCheckpoint(rig.conn, rig.dom.uuid, { name, disks: rig.dom.disks.map((d) => ({ name: d.target, checkpoint: 'bitmap' })) });
          history.push(`checkpoint ${name}`);
        } else if (r < 0.92) {
          const cps = await listCheckpointNames(rig.conn, rig.dom.uuid);
          if (cps.length > 1) {
            const victim = cps[int(cps.length)]!;
            await deleteCheckpoint(rig.conn, rig.dom.uuid, victim);
            history.push(`delete checkpoint ${victim}`);
          }
        } else {
          const m = backups[int(backups.length)]!;
          const d = m.disks[int(m.disks.length)]!;
          const out = `${rig.shadow}/restore-${step}.qcow2`;
          await restoreTo({ repo: rig.repo, backup: m.id, disk: d.name, to: out });
          history.push(`restore ${m.id} ${d.name}`);
          expect(differsFrom(out, rig.snap(m.id, d.name)), `restore of ${m.id} ${d.name}`).toBe('');
        }
      }
      // Finally every backup point, every disk.
      for (const m of backups) {
        for (const d of m.disks) {
          const out = `${rig.shadow}/final-${m.id}-${d.name}.qcow2`;
          await restoreTo({ repo: rig.repo, backup: m.id, disk: d.name, to: out });
          expect(differsFrom(out, rig.snap(m.id, d.name)), `restore of ${m.id} ${d.name}`).toBe('');
        }
      }
      expect(describeFailures(await verifyBackups(rig.repo))).toEqual([]);
      expect(backups.some((m) => m.kind !== 'full')).toBe(true);
    } catch (e) {
      throw new Error(`seed ${SEED}, after:\n  ${history.slice(-25).join('\n  ')}\n${(e as Error).message}`, { cause: e });
    }
  }, 900_000);
});
