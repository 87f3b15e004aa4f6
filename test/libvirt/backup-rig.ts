// A libvirt domain with a backup repository and a raw "shadow" per disk that receives the same
// writes as the guest-less domain's disks (HMP qemu-io through the lab's connection), so that what a
// disk held at any backup point is known independently of Tidemark and of libvirt (the oracle).
// TESTS ONLY (product code never imports test/libvirt).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LibvirtConnection } from '../../electron/libvirt/connection';
import { BackupRepository } from '../../electron/engine/backup/repository';
import type { LibvirtDomainHandle } from '../../electron/engine/libvirt-driver/backup';
import { guestWrite } from './guest-writes';
import { LOCAL_URI, type LibvirtTestLab, type TestDomain } from './lab';

export const MiB = 1024 * 1024;

export interface BackupRig {
  dom: TestDomain;
  /** A product connection (no monitor commands). */
  conn: LibvirtConnection;
  handle: LibvirtDomainHandle;
  repo: BackupRepository;
  shadow: string;
  write(disk: string, offset: number, length: number, pattern: number): Promise<void>;
  /** Keeps every disk's current content under `label`. */
  snapshot(label: string): void;
  snap(label: string, disk: string): string;
  /** The shadow holds `label`'s content again (after a restore to that point). */
  resetTo(label: string): void;
  close(): Promise<void>;
}

export async function openBackupRig(lab: LibvirtTestLab, options: { uri?: string; local?: boolean; dom?: TestDomain; repoDir?: string } = {}): Promise<BackupRig> {
  const dom = options.dom ?? (await lab.createDomain());
  const uri = options.uri ?? LOCAL_URI;
  const conn = await LibvirtConnection.open(uri);
  const base = path.join(dom.dir, `rig-${Math.random().toString(36).slice(2, 8)}`);
  fs.mkdirSync(base, { mode: 0o711 });
  fs.chmodSync(base, 0o711);
  const repoRoot = options.repoDir ?? path.join(base, 'repo');
  const repo = BackupRepository.open(repoRoot, { create: true });
  fs.chmodSync(repoRoot, 0o700); // the repository is private, as the product makes it
  const shadow = path.join(base, 'shadow');
  fs.mkdirSync(path.join(shadow, 'snap'), { recursive: true, mode: 0o700 });
  const fds = new Map<string, number>();
  for (const d of dom.disks) {
    const f = path.join(shadow, `${d.target}.raw`);
    fs.writeFileSync(f, '');
    fs.truncateSync(f, d.sizeBytes);
    fds.set(d.target, fs.openSync(f, 'r+'));
  }
  const snap = (label: string, disk: string) => path.join(shadow, 'snap', `${label}-${disk}.raw`);
  return {
    dom, conn, repo, shadow, snap,
    handle: { conn, uuid: dom.uuid, name: dom.name, uri, local: options.local ?? true, identity: { key: dom.uuid, name: dom.name, uuid: dom.uuid } },
    async write(disk, offset, length, pattern) {
      await guestWrite(lab.conn, dom, disk, { offset, length, pattern });
      fs.writeSync(fds.get(disk)!, Buffer.alloc(length, pattern), 0, length, offset);
    },
    snapshot(label) {
      for (const d of dom.disks) execFileSync('cp', ['--sparse=always', path.join(shadow, `${d.target}.raw`), snap(label, d.target)]);
    },
    resetTo(label) {
      for (const d of dom.disks) execFileSync('cp', ['--sparse=always', snap(label, d.target), path.join(shadow, `${d.target}.raw`)]);
    },
    async close() {
      for (const fd of fds.values()) fs.closeSync(fd);
      fds.clear();
      await conn.close();
    },
  };
}

/** qemu-img compare (non-strict) of a backup chain's top layer with a raw oracle: '' when identical. */
export function differsFrom(image: string, raw: string): string {
  try {
    execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', image, raw], { stdio: 'pipe' });
    return '';
  } catch (e) {
    const err = e as { status?: number; stdout?: Buffer; stderr?: Buffer };
    if (err.status === 1) return String(err.stdout ?? '').trim() || 'differ';
    throw new Error(`qemu-img compare failed: ${String(err.stderr ?? '')}`);
  }
}
