// A process that starts an export-only pull of a libvirt domain and is then killed (SIGKILL) by the
// test, for the crash-recovery case of electron/engine/libvirt-driver/backup/faults.itest.ts.
//   backup-child.ts UUID NAME REPO → prints "ready <journal file>" once the exports are up, then waits.
import { LibvirtConnection } from '../../electron/libvirt/connection';
import { BackupRepository } from '../../electron/engine/backup/repository';
import { libvirtBackupOps } from '../../electron/engine/libvirt-driver/backup';
import { silentReporter } from '../../electron/engine/operation';
import { LOCAL_URI } from './lab';

async function main(): Promise<void> {
  const [uuid, name, repoRoot] = process.argv.slice(2) as [string, string, string];
  const conn = await LibvirtConnection.open(LOCAL_URI);
  const repo = BackupRepository.open(repoRoot);
  const h = { conn, uuid, name, uri: LOCAL_URI, local: true, identity: { key: uuid, name, uuid } };
  await libvirtBackupOps(h).begin({ mode: 'pull', repo, checkpoint: 'crashed', exportOnly: { onReady: () => process.stdout.write('ready\n') } }, silentReporter());
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
