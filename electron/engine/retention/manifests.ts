// The manifests of one VM as retention sees and changes them: read once per run (refusing the VM
// when any manifest cannot be read, since a file it names might then be deleted), re-read when the
// manifests folder changes, and rewritten atomically one at a time (repository.writeManifest).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { withChecksum, type FileChecksum } from '../backup/checksum';
import { MANIFEST_VERSION, type BackupManifest, type BackupManifestDisk } from '../backup/manifest';
import type { BackupRepository } from '../backup/repository';
import { fsyncDir } from '../../os/atomic-file';
import type { NewLink } from './plan';

export class RetentionRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionRefusedError';
  }
}

/** The VM's manifests, or a refusal naming every file that could not be read. */
export function readAllManifests(repo: BackupRepository, vmId: string): BackupManifest[] {
  const scan = repo.scan(vmId);
  if (scan.problems.length > 0) {
    throw new RetentionRefusedError(
      `retention refuses to touch VM ${JSON.stringify(vmId)}: ${scan.problems.length === 1 ? 'a manifest' : 'manifests'} cannot be read, and a layer ${scan.problems.length === 1 ? 'it names' : 'they name'} might be deleted:\n  ` +
        scan.problems.map((p) => `${p.file}: ${p.message}`).join('\n  '),
    );
  }
  return scan.manifests;
}

export class ManifestView {
  private byId = new Map<string, BackupManifest>();
  private listing = '';

  constructor(private readonly repo: BackupRepository, private readonly vmId: string) {
    this.reload();
  }

  private get dir(): string {
    return path.join(this.repo.vmDir(this.vmId), 'manifests');
  }

  private manifestFile(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  private currentListing(): string {
    try {
      return fs.readdirSync(this.dir).filter((f) => f.endsWith('.json')).sort().join('\n');
    } catch {
      return '';
    }
  }

  reload(): void {
    this.byId = new Map(readAllManifests(this.repo, this.vmId).map((m) => [m.id, m]));
    this.listing = this.currentListing();
  }

  /** Re-reads everything when a manifest file appeared or vanished behind our back. */
  refreshIfChanged(): void {
    if (this.currentListing() !== this.listing) this.reload();
  }

  get(id: string): BackupManifest | undefined {
    return this.byId.get(id);
  }

  all(): BackupManifest[] {
    return [...this.byId.values()];
  }

  entry(id: string, disk: string): BackupManifestDisk | undefined {
    return this.byId.get(id)?.disks.find((d) => d.name === disk);
  }

  /** Points whose layer of `disk` builds on `point`'s. */
  dependentsOn(disk: string, point: string): string[] {
    return this.all().filter((m) => m.disks.some((d) => d.name === disk && d.base === point)).map((m) => m.id);
  }

  /**
   * Takes `disk` out of `id`'s manifest, so no backup can choose that layer as a base any more; a
   * manifest left without disks is deleted, with its job log.
   */
  removeEntry(id: string, disk: string): void {
    const m = this.byId.get(id);
    if (!m || !m.disks.some((d) => d.name === disk)) return;
    const rest = m.disks.filter((d) => d.name !== disk);
    if (rest.length > 0) {
      this.write(withDisks(m, rest));
      return;
    }
    fs.rmSync(this.manifestFile(id), { force: true });
    fsyncDir(this.dir);
    fs.rmSync(this.repo.logPath(this.vmId, id), { force: true });
    this.byId.delete(id);
    this.listing = this.currentListing();
  }

  /** Points `id`'s layer of `disk` at its new base with the new file's size and checksum. */
  relink(id: string, disk: string, link: NewLink, sum: FileChecksum): void {
    const m = this.byId.get(id);
    const d = m?.disks.find((x) => x.name === disk);
    if (!m || !d) throw new Error(`backup ${id} has no layer of ${disk} any more; cannot record its new checksum`);
    const nd: BackupManifestDisk = withChecksum({ ...d, kind: link.kind, fileSize: sum.size }, sum);
    delete nd.base;
    delete nd.backingFile;
    delete nd.since;
    if (link.newBase !== undefined) {
      nd.base = link.newBase;
      nd.backingFile = `${link.newBase}.qcow2`;
      if (link.since !== undefined) nd.since = link.since;
    }
    const disks = m.disks.map((x) => (x.name === disk ? nd : x));
    // Written as the current version: the new checksum may be one version 1 cannot hold.
    this.write({ ...withDisks(m, disks), version: MANIFEST_VERSION });
  }

  private write(m: BackupManifest): void {
    this.repo.writeManifest(m);
    this.byId.set(m.id, m);
    this.listing = this.currentListing();
  }
}

/** `m` with new disks, and the manifest-level kind and since that match them. */
function withDisks(m: BackupManifest, disks: BackupManifestDisk[]): BackupManifest {
  const out: BackupManifest = { ...m, disks };
  const partial = disks.filter((d) => d.kind !== 'full');
  delete out.since;
  if (partial.length === 0) {
    out.kind = 'full';
    return out;
  }
  out.kind = partial.some((d) => d.kind === 'differential') ? 'differential' : 'incremental';
  const since = partial.find((d) => d.since !== undefined)?.since;
  if (since !== undefined) out.since = since;
  return out;
}
