// Tidemark through libvirt against plain `virsh` on the same guest-less domain in the same run:
// checkpoint create, incremental push and incremental pull with 64 MiB dirty (256 × 256 KiB at a
// 4 MiB stride) of a 1 GiB disk filled with data. Tools alternate first/second every round; each
// row prints both medians [min..max] and the median of the per-round ratios Tidemark / virsh.
// Figures only, never pass/fail.
//   npx tsx bench/libvirt.ts [--rounds N]
//
// Tidemark: its libvirt client (one interactive virsh per connection) and the libvirt backup code
// (electron/engine/libvirt-driver/backup/): a push into the repository (staged target, renamed in,
// checksummed, manifest), a pull copying only the dirty extents into a qcow2 layer.
// virsh: one process per command, as a shell script does it: checkpoint-create-as; push =
// qemu-img create (overlay) + backup-begin --reuse-external --checkpointxml + domjobinfo polled
// every 50 ms; pull = backup-begin + nbdcopy of the export + domjobabort. virsh has no dirty-extent
// reader, so its pull copies the whole 1 GiB export (what stock tools do); a second virsh pull row
// without the copy shows libvirt's own share.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildBackupXml } from '../electron/libvirt/backup-xml';
import { buildCheckpointXml } from '../electron/libvirt/checkpoint-xml';
import { createCheckpoint } from '../electron/libvirt/checkpoints';
import { LibvirtConnection } from '../electron/libvirt/connection';
import { BackupRepository } from '../electron/engine/backup/repository';
import { libvirtBackupOps, type LibvirtDomainHandle } from '../electron/engine/libvirt-driver/backup';
import { silentReporter } from '../electron/engine/operation';
import { guestWrite } from '../test/libvirt/guest-writes';
import { LOCAL_URI, LibvirtTestLab } from '../test/libvirt/lab';
import { median, stats, time } from './measure';

const MiB = 1024 * 1024;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { maxBuffer: 16 * MiB }, (e, out, err) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${err || e.message}`)) : resolve(out))));
}
const virsh = (...args: string[]) => run('virsh', ['-q', '-c', LOCAL_URI, ...args]);

async function virshWaitJob(dom: string): Promise<void> {
  for (;;) {
    const out = await virsh('domjobinfo', dom);
    if (/Job type:\s+None/.test(out)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const done = await virsh('domjobinfo', dom, '--completed');
  if (!/Completed/.test(done)) throw new Error(`virsh backup did not complete: ${done}`);
}

interface Row {
  name: string;
  tidemark: number[];
  virsh: number[];
}

function report(r: Row): void {
  const ratios = r.tidemark.map((t, i) => t / r.virsh[i]!);
  console.log(`${r.name.padEnd(34)} Tidemark ${stats(r.tidemark)}   virsh ${stats(r.virsh)}   Tidemark/virsh ${median(ratios).toFixed(2)}`);
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i > 0 ? Number(process.argv[i + 1]) : 5;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const lab = await LibvirtTestLab.open();
  let conn: LibvirtConnection | undefined;
  try {
    const dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 1024 }] });
    for (let off = 0; off < 1024 * MiB; off += 64 * MiB) await guestWrite(lab.conn, dom, 'vda', { offset: off, length: 64 * MiB, pattern: 0x5a });
    conn = await LibvirtConnection.open(LOCAL_URI);
    const h: LibvirtDomainHandle = { conn, uuid: dom.uuid, name: dom.name, uri: LOCAL_URI, local: true, identity: { key: dom.uuid, name: dom.name, uuid: dom.uuid } };
    const ops = libvirtBackupOps(h);
    const work = path.join(dom.dir, 'bench');
    fs.mkdirSync(work, { mode: 0o711 });
    fs.chmodSync(work, 0o711);
    const repoRoot = path.join(work, 'repo');
    const repo = BackupRepository.open(repoRoot, { create: true });
    fs.chmodSync(repoRoot, 0o700);
    const vdir = await lab.qemuDir(dom, 'virsh');
    const xmlDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-xml-'));
    const xml = (name: string, text: string) => {
      const f = path.join(xmlDir, name);
      fs.writeFileSync(f, text);
      return f;
    };
    const cpXml = (name: string) => xml(`cp-${name}.xml`, buildCheckpointXml({ name, disks: [{ name: 'vda', checkpoint: 'bitmap' }] }));

    // Baselines (untimed): Tidemark's full push; virsh's full push with its own checkpoint.
    await ops.begin({ mode: 'push', repo, full: true, checkpoint: 'tm0' }, silentReporter());
    let vLast = 'v0';
    let vTarget = path.join(vdir, 'full.qcow2');
    await virsh('backup-begin', dom.uuid, '--backupxml', xml('full.xml', buildBackupXml({ mode: 'push', disks: [{ name: 'vda', target: vTarget }] })), '--checkpointxml', cpXml('v0'));
    await virshWaitJob(dom.uuid);

    let stride = 1;
    const dirty = async () => {
      // 64 MiB as 256 × 256 KiB at a 4 MiB stride; a new pattern each time.
      for (let k = 0; k < 256; k++) await guestWrite(lab.conn, dom, 'vda', { offset: k * 4 * MiB, length: 256 * 1024, pattern: (stride * 7) & 0xff });
      stride++;
    };
    const rows: Row[] = [
      { name: 'checkpoint create (1 disk)', tidemark: [], virsh: [] },
      { name: 'incremental push, 64 MiB dirty', tidemark: [], virsh: [] },
      { name: 'incremental pull, 64 MiB dirty', tidemark: [], virsh: [] },
      { name: '  virsh pull without the copy', tidemark: [], virsh: [] },
    ];
    console.log(`Tidemark vs virsh through libvirt 9.0 (qemu:///system), 1 GiB vda; ${rounds} rounds; ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    for (let r = 0; r < rounds; r++) {
      const tmFirst = r % 2 === 0;
      const pair = async (row: Row, tm: () => Promise<unknown>, vs: () => Promise<unknown>) => {
        if (tmFirst) {
          row.tidemark.push(await time(tm));
          row.virsh.push(await time(vs));
        } else {
          row.virsh.push(await time(vs));
          row.tidemark.push(await time(tm));
        }
      };
      await pair(rows[0]!, () => createCheckpoint(conn!, dom.uuid, { name: `tmc${r}`, disks: [{ name: 'vda', checkpoint: 'bitmap' }] }),
        () => virsh('checkpoint-create-as', dom.uuid, `vc${r}`, '--diskspec', 'vda,checkpoint=bitmap'));
      // Later backups are incremental since each tool's own last backup checkpoint, not these.
      await virsh('checkpoint-delete', dom.uuid, `tmc${r}`);
      await virsh('checkpoint-delete', dom.uuid, `vc${r}`);

      await dirty();
      await pair(rows[1]!, () => ops.begin({ mode: 'push', repo, checkpoint: `tmp${r}` }, silentReporter()), async () => {
        const target = path.join(vdir, `inc${r}.qcow2`);
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', vTarget, target, String(1024 * MiB)]);
        await virsh('backup-begin', dom.uuid, '--reuse-external', '--backupxml', xml(`p${r}.xml`, buildBackupXml({ mode: 'push', incremental: vLast, disks: [{ name: 'vda', target }] })), '--checkpointxml', cpXml(`vp${r}`));
        await virshWaitJob(dom.uuid);
        vLast = `vp${r}`;
        vTarget = target;
      });

      await dirty();
      const socket = path.join(vdir, 'pull.sock');
      const virshPull = (copy: boolean, name: string) => async () => {
        await virsh('backup-begin', dom.uuid, '--backupxml', xml(`b-${name}.xml`, buildBackupXml({ mode: 'pull', incremental: vLast, server: { transport: 'unix', socket }, disks: [{ name: 'vda', scratch: path.join(vdir, `${name}.scratch.qcow2`) }] })), '--checkpointxml', cpXml(name));
        const out = path.join(work, `${name}.raw`);
        if (copy) await run('nbdcopy', [`nbd+unix:///vda?socket=${socket}`, out]);
        await virsh('domjobabort', dom.uuid);
        await virshWaitJob(dom.uuid).catch(() => undefined); // an aborted pull's record says "Operation canceled"
        fs.rmSync(out, { force: true });
        vLast = name;
      };
      await pair(rows[2]!, () => ops.begin({ mode: 'pull', repo, checkpoint: `tml${r}` }, silentReporter()), virshPull(true, `vl${r}`));
      rows[3]!.virsh.push(await time(virshPull(false, `vn${r}`)));
      rows[3]!.tidemark.push(rows[2]!.tidemark[r]!);
      process.stdout.write(`round ${r + 1}/${rounds} done\n`);
    }
    for (const row of rows) report(row);
    console.log('Tidemark\'s push and pull also read the domain and its checkpoints first and record each layer (sha256, qemu-img info, manifest); virsh\'s do neither.');
    fs.rmSync(xmlDir, { recursive: true, force: true });
  } finally {
    await conn?.close();
    await lab.close();
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
