// Folders QEMU can reach (DEVELOPERS.md, "Files QEMU can reach"). QEMU runs as its own user
// (libvirt-qemu); libvirt relabels files for it, never folders. The repository stays 0700, so:
// push targets are staged in a `0710 root:<qemu gid>` folder on the repository's file system and
// renamed in afterwards; a local pull's scratch files and socket go in a `0730 root:<qemu gid>`
// run folder (QEMU binds the socket there). A remote pull uses a folder on that host that QEMU
// can write and only it and root can read: libvirt's own /var/lib/libvirt/qemu by default.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackupRepository } from '../../backup/repository';

/** QEMU's uid and gid from the running domain's DAC label; undefined when QEMU runs as root. */
export type QemuIds = { uid: number; gid: number } | undefined;

/** Where a remote pull's socket and scratch files go by default (libvirt's QEMU state folder: 0750 QEMU's user). */
export const REMOTE_RUN_DIR = '/var/lib/libvirt/qemu';

/** True when QEMU (uid/gid) can pass through every folder from / down to `dir`. */
export function qemuCanTraverse(dir: string, ids: QemuIds): boolean {
  if (!ids) return true;
  let d = path.resolve(dir);
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      return false;
    }
    const ok = st.uid === ids.uid ? (st.mode & 0o100) !== 0 : st.gid === ids.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
    if (!ok) return false;
    const up = path.dirname(d);
    if (up === d) return true;
    d = up;
  }
}

/** A fresh folder `mode` root:<qemu gid> under `parent`. */
function qemuFolder(parent: string, prefix: string, mode: number, ids: QemuIds): string {
  const dir = fs.mkdtempSync(path.join(parent, prefix)); // 0700
  try {
    if (ids) fs.chownSync(dir, process.getuid?.() ?? 0, ids.gid);
    fs.chmodSync(dir, mode);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return dir;
}

/**
 * The staging folder of a push: beside the repository (same file system, so the finished layers
 * are renamed in), reachable by QEMU. Inside the repository when it is itself reachable.
 */
export function pushStagingDir(repo: BackupRepository, ids: QemuIds): string {
  const dev = fs.statSync(repo.root).dev;
  const candidates = [repo.root, path.dirname(repo.root)];
  for (const parent of candidates) {
    if (!qemuCanTraverse(parent, ids) || fs.statSync(parent).dev !== dev) continue;
    return qemuFolder(parent, `.tidemark-staging-${path.basename(repo.root).slice(0, 40)}-`, 0o710, ids);
  }
  throw new Error(
    `push mode needs a folder QEMU (uid ${ids?.uid}, gid ${ids?.gid}) can reach on the file system of repository ${repo.root}, ` +
      `and neither it nor ${path.dirname(repo.root)} is one (a folder above is closed to other users); ` +
      `use --mode pull, or put the repository under a folder others may traverse (chmod o+x)`,
  );
}

/** A local pull's run folder (scratch files and the NBD socket): 0730 root:<qemu gid>, short path. */
export function pullRunDir(ids: QemuIds, parent = os.tmpdir()): string {
  if (!qemuCanTraverse(parent, ids)) throw new Error(`QEMU (uid ${ids?.uid}) cannot reach ${parent}; choose a scratch folder it can reach`);
  return qemuFolder(parent, 'tidemark-pull-', 0o730, ids);
}

/** A private local folder (the SSH-forwarded socket, qemu-nbd writers). */
export function privateRunDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A short random tag for file names in shared folders. */
export function fileTag(): string {
  return randomBytes(4).toString('hex');
}
