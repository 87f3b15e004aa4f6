// The pure parts of libvirt backups: the plan → <domainbackup> disks, domstats parsing, which
// bitmaps are usable, and which folders QEMU can reach.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBackupXml } from '../../../libvirt/backup-xml';
import type { LibvirtCheckpoint } from '../../../libvirt/checkpoint-xml';
import type { BackupPlan, DiskPlan } from '../../backup/plan';
import { qemuCanTraverse } from './folders';
import { changesUnusable, parseBlockCapacities, toCheckpoint } from './vm-view';
import { pullDisks, pushDisks } from './xml-plan';

const disk = (name: string) => ({ name, nodeName: name, format: 'qcow2', virtualSize: 1 << 26, imageFile: `/i/${name}`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [] });
const plan = (disks: DiskPlan[]): BackupPlan => ({ kind: 'incremental', disks, checkpointDisks: [], notes: [] });

describe('libvirt backup XML from a plan', () => {
  const p = plan([
    { disk: disk('vda'), kind: 'incremental', since: 'c1', base: 'B1' },
    { disk: disk('vdb'), kind: 'full', fallbackReason: 'new disk' },
  ]);

  it('push: per-disk modes, every domain disk listed, the one not planned as backup=no', () => {
    const disks = pushDisks(p, ['vda', 'vdb', 'vdc'], (d) => `/stage/${d}.qcow2`);
    expect(disks).toEqual([
      { name: 'vda', target: '/stage/vda.qcow2', format: 'qcow2', backupmode: 'incremental', incremental: 'c1' },
      { name: 'vdb', target: '/stage/vdb.qcow2', format: 'qcow2', backupmode: 'full' },
      { name: 'vdc', backup: false },
    ]);
    const xml = buildBackupXml({ mode: 'push', disks });
    expect(xml).toContain("<disk name='vda' backup='yes' type='file' backupmode='incremental' incremental='c1'>");
    expect(xml).toContain("<disk name='vdc' backup='no'/>");
    expect(xml).not.toContain('<incremental>');
  });

  it('pull: scratch files instead of targets', () => {
    expect(pullDisks(p, ['vda', 'vdb'], (d) => `/run/${d}.scratch`)).toEqual([
      { name: 'vda', scratch: '/run/vda.scratch', backupmode: 'incremental', incremental: 'c1' },
      { name: 'vdb', scratch: '/run/vdb.scratch', backupmode: 'full' },
    ]);
  });
});

describe('domain facts', () => {
  it('reads capacities from domstats --block, ignoring what it does not know', () => {
    const text = "Domain: 'x'\n  block.count=2\n  block.0.name=vda\n  block.0.capacity=67108864\n  block.1.name=vdb\n  block.1.capacity=garbage\n  block.1.allocation=5\n";
    expect([...parseBlockCapacities(text)]).toEqual([['vda', 67108864]]);
  });

  it('a bitmap without a size (inconsistent or missing) is not usable, naming why', () => {
    const cps: LibvirtCheckpoint[] = [{ name: 'c1', hasDomain: false, creationTime: 5, disks: [{ name: 'vda', checkpoint: 'bitmap', size: 0 }, { name: 'vdb', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' }] }];
    expect(changesUnusable(cps, 'c1', 'vda')).toBeUndefined();
    expect(changesUnusable(cps, 'c1', 'vdb')).toMatch(/inconsistent or missing/);
    expect(changesUnusable(cps, 'c1', 'vdc')).toBe('checkpoint c1 has no bitmap on vdc');
    expect(changesUnusable(cps, 'nope', 'vda')).toMatch(/not in libvirt's metadata/);
    expect(toCheckpoint(cps[0]!)).toMatchObject({ name: 'c1', creationTime: 5, createdAtMs: 5000, layout: 'independent', disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1', size: 0 }, { name: 'vdb', bitmap: 'c1' }, { name: 'vdc', checkpoint: 'no' }] });
  });
});

describe('folders QEMU can reach', () => {
  it('follows owner, group and other bits all the way up', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-trav-'));
    try {
      const ids = { uid: 64055, gid: 64055 };
      fs.chmodSync(root, 0o711);
      const priv = path.join(root, 'priv');
      fs.mkdirSync(priv, { mode: 0o700 });
      expect(qemuCanTraverse(root, ids)).toBe(qemuCanTraverse(path.dirname(root), ids));
      expect(qemuCanTraverse(priv, ids)).toBe(false);
      expect(qemuCanTraverse(priv, undefined)).toBe(true); // QEMU as root
      expect(qemuCanTraverse(path.join(root, 'missing'), ids)).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
