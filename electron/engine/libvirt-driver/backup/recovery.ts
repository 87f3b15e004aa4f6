// What a libvirt backup leaves behind when its process dies, and how the next backup (or
// backup-cancel) removes it: libvirt's job, if it is still ours (its targets or scratch files are
// in our folders), the staging and run folders on this machine, and the checkpoint libvirt
// recorded at begin.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { abortJob, describeBackup, jobInfo, waitForJobEnd } from '../../../libvirt/backups';
import type { BackupJournal, StrategyJournal } from '../../backup/lock';
import type { OperationLog } from '../../operation';
import type { LibvirtDomainHandle } from './handle';
import { deleteBackupCheckpoint, type LibvirtPendingCheckpoint } from './checkpoint';
import { ensureConnected } from './link';

/** The strategy's part of the journal. */
export interface LibvirtBackupState {
  /** Folders on this machine that belong to this backup alone (staging, run, forward). */
  ownDirs: string[];
  /** Paths libvirt's job uses (push targets, pull scratch files, the socket): how a job is known to be ours. */
  jobPaths: string[];
}

export const STRATEGY_NAMES = ['libvirt-push', 'libvirt-pull'];

export function libvirtStateOf(s: StrategyJournal | undefined): LibvirtBackupState | undefined {
  if (!s || !STRATEGY_NAMES.includes(s.name)) return undefined;
  const st = s.state as Partial<LibvirtBackupState> | undefined;
  return { ownDirs: Array.isArray(st?.ownDirs) ? st.ownDirs.filter((x): x is string => typeof x === 'string') : [], jobPaths: Array.isArray(st?.jobPaths) ? st.jobPaths.filter((x): x is string => typeof x === 'string') : [] };
}

function isOwnFolder(dir: string): boolean {
  if (!path.isAbsolute(dir) || !/^\.?tidemark-[A-Za-z0-9._-]+$/.test(path.basename(dir))) return false;
  try {
    return fs.lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Ends the domain's backup job when it uses one of `paths` (it is ours); true when one was ended. */
export async function abortOurJob(h: LibvirtDomainHandle, paths: string[], log?: OperationLog): Promise<boolean> {
  const info = await jobInfo(h.conn, h.uuid);
  if (info.type === 'none' || info.operation !== 'backup') return false;
  const desc = await describeBackup(h.conn, h.uuid).catch(() => undefined);
  const used = desc ? [desc.server?.socket, ...desc.disks.flatMap((d) => [d.target, d.scratch])].filter((x): x is string => !!x) : [];
  if (!used.some((p) => paths.includes(p))) {
    log?.add(`domain ${h.name} runs a backup job that is not this backup's; left alone`);
    return false;
  }
  await abortJob(h.conn, h.uuid).catch(() => undefined);
  await waitForJobEnd(h.conn, h.uuid, { timeoutMs: 60_000 });
  log?.add('libvirt backup job ended');
  return true;
}

export async function recoverLibvirtLeftovers(h: LibvirtDomainHandle, strategy: StrategyJournal | undefined, journal: BackupJournal, log: OperationLog): Promise<void> {
  const st = libvirtStateOf(strategy);
  await ensureConnected(h.conn);
  if (st) {
    await abortOurJob(h, st.jobPaths, log).catch((e: Error) => log.add(`could not end the libvirt job: ${e.message}`));
    for (const d of st.ownDirs) {
      // The journal is a file others may write: only a folder of ours (folders.ts names them
      // "tidemark-…"/".tidemark-…", made by mkdtemp), a real folder and no link, is removed.
      if (isOwnFolder(d)) fs.rmSync(d, { recursive: true, force: true });
      else log.add(`the journal names ${JSON.stringify(d)} as a folder of backup ${journal.backupId}; it is not one: left alone`);
    }
  }
  // libvirt recorded the checkpoint when the backup began: the session counts it as recorded, so it is undone here.
  const name = journal.prepared?.checkpoint.name;
  if (name && journal.executed) {
    await deleteBackupCheckpoint(h, journal.prepared as LibvirtPendingCheckpoint, log).then(
      () => log.add(`checkpoint ${name} of unfinished backup ${journal.backupId} deleted`),
      (e: Error) => log.add(`checkpoint ${name} of unfinished backup ${journal.backupId} not deleted: ${e.message}`),
    );
  }
}
