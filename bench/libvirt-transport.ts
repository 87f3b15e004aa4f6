// How to talk to libvirt: one `virsh` process per command versus one long-lived interactive virsh
// per connection (electron/libvirt/connection.ts), locally and over qemu+ssh:// to a loopback sshd.
// Prints figures for DEVELOPERS.md ("Talking to libvirt"); asserts nothing.
//   npx tsx bench/libvirt-transport.ts [runs]

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildCheckpointXml } from '../electron/libvirt/checkpoint-xml';
import { createCheckpoint, deleteCheckpoint } from '../electron/libvirt/checkpoints';
import { LibvirtConnection } from '../electron/libvirt/connection';
import { jobInfo } from '../electron/libvirt/backups';
import { listDomains } from '../electron/libvirt/domains';
import { LOCAL_URI, LibvirtTestLab } from '../test/libvirt/lab';
import { startTestSshd } from '../test/libvirt/sshd';
import { stats, time } from './measure';

const RUNS = Number(process.argv[2] ?? 7);

function virshOnce(uri: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile('virsh', ['-q', '-c', uri, ...args], (e, _o, err) => (e ? reject(new Error(err)) : resolve())));
}

async function series(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await time(fn));
  return out;
}

async function main(): Promise<void> {
  const lab = await LibvirtTestLab.open();
  const sshd = await startTestSshd();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-'));
  try {
    const dom = await lab.createDomain(); // 2 disks
    const disks = dom.disks.map((d) => ({ name: d.target, checkpoint: 'bitmap' as const }));
    console.log(`load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${RUNS} runs each; median [min..max]`);
    for (const [label, uri] of [['local qemu:///system', LOCAL_URI], ['qemu+ssh:// loopback', sshd.uri]] as const) {
      console.log(`\n${label}`);
      const xmlFile = path.join(tmp, 'cp.xml');
      fs.writeFileSync(xmlFile, buildCheckpointXml({ name: 'bench', disks }));
      console.log(`  one virsh per command   list --all        ${stats(await series(RUNS, () => virshOnce(uri, ['list', '--all'])))}`);
      console.log(`  one virsh per command   domjobinfo        ${stats(await series(RUNS, () => virshOnce(uri, ['domjobinfo', dom.uuid])))}`);
      console.log(
        `  one virsh per command   checkpoint create+delete ${stats(
          await series(RUNS, async () => {
            await virshOnce(uri, ['checkpoint-create', dom.uuid, '--xmlfile', xmlFile]);
            await virshOnce(uri, ['checkpoint-delete', dom.uuid, 'bench']);
          }),
        )}`,
      );
      let conn: LibvirtConnection | undefined;
      const opens = await series(Math.min(RUNS, 3), async () => {
        await conn?.close();
        conn = await LibvirtConnection.open(uri);
      });
      console.log(`  interactive virsh       open (start-up)   ${stats(opens)}`);
      const c = conn!;
      console.log(`  interactive virsh       listDomains (3 calls) ${stats(await series(RUNS, () => listDomains(c)))}`);
      console.log(`  interactive virsh       jobInfo           ${stats(await series(RUNS * 3, () => jobInfo(c, dom.uuid)))}`);
      const creates: number[] = [];
      const deletes: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        creates.push(await time(() => createCheckpoint(c, dom.uuid, { name: 'bench', disks })));
        deletes.push(await time(() => deleteCheckpoint(c, dom.uuid, 'bench')));
      }
      console.log(`  interactive virsh       checkpoint create (2 disks) ${stats(creates)}`);
      console.log(`  interactive virsh       checkpoint delete ${stats(deletes)}`);
      await c.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    await sshd.stop();
    await lab.close();
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
