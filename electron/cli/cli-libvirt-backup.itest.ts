// The CLI's backup commands on a libvirt domain, end to end through the libvirt driver (real libvirtd,
// qemu:///system, as root; in-process through runCli): a push full and a pull incremental into one
// repository, backup-list and backup-verify, restores byte-identical to the shadow copy, and the
// checkpoints as virsh lists them.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupRecord } from '../../shared/contract';
import { differsFrom, MiB, openBackupRig, type BackupRig } from '../../test/libvirt/backup-rig';
import { LOCAL_URI, LibvirtTestLab, runsAsRoot } from '../../test/libvirt/lab';
import { runCli } from './main';

let lab: LibvirtTestLab;
let rig: BackupRig;
let stateDir: string;

async function ok(args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: false, env: { ...process.env, TIDEMARK_STATE_DIR: stateDir } });
  if (code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${code}: ${err}`);
  return out;
}

beforeAll(async () => {
  if (!runsAsRoot) return;
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-cli-lvbackup-'));
  lab = await LibvirtTestLab.open();
  rig = await openBackupRig(lab);
}, 180_000);

afterAll(async () => {
  await rig?.close();
  await lab?.close();
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
}, 120_000);

describe.skipIf(!runsAsRoot)('tidemark backup commands on a libvirt domain', () => {
  it('push full, pull incremental, list, verify, restore', async () => {
    const D = ['--connect', LOCAL_URI, '--domain', rig.dom.name];
    const R = ['--repo', rig.repo.root];
    await rig.write('vda', 0, 3 * MiB, 0x71);
    rig.snapshot('k1');
    const full = JSON.parse(await ok([...D, 'backup-begin', '--full', '--checkpoint', 'k1', ...R, '--json'])) as BackupRecord;
    expect(full).toMatchObject({ kind: 'full', checkpoint: 'k1', vm: { id: rig.dom.uuid, name: rig.dom.name } });
    await rig.write('vdb', MiB, MiB, 0x72);
    rig.snapshot('k2');
    const inc = (JSON.parse(await ok([...D, 'backup-begin', '--mode', 'pull', '--checkpoint', 'k2', ...R, '--json'])) as { backup: BackupRecord }).backup;
    expect(inc.disks.map((d) => [d.name, d.kind, d.base, d.bytesCopied])).toEqual([['vda', 'incremental', full.id, 0], ['vdb', 'incremental', full.id, MiB]]);
    expect(await ok(['backup-list', ...R])).toContain(inc.id);
    await ok(['backup-verify', ...R]);
    for (const [b, label] of [[full, 'k1'], [inc, 'k2']] as const) {
      for (const d of ['vda', 'vdb']) {
        const out = path.join(rig.shadow, `cli-${b.id}-${d}.qcow2`);
        await ok(['restore', ...R, '--backup', b.id, '--disk', d, '--to', out]);
        expect(differsFrom(out, rig.snap(label, d))).toBe('');
      }
    }
    expect(execFileSync('virsh', ['-q', '-c', LOCAL_URI, 'checkpoint-list', rig.dom.uuid, '--name', '--topological'], { encoding: 'utf8' }).trim().split('\n')).toEqual(['k1', 'k2']);
  }, 300_000);
});
