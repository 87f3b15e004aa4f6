// Health of a libvirt domain's checkpoints: libvirt's checkpoint metadata against the bitmaps in the
// disk images, with the same plain consequences as QMP mode (engine/checkpoints/health.ts).
// Where the bitmaps are seen:
// - local host, domain shut off: `qemu-img info -U --output=json` on each image lists its bitmaps
//   with their flags ('auto' = recording, 'in-use' = QEMU died without writing it back, i.e.
//   inconsistent). Not while the domain runs: QEMU writes new bitmaps into the image only when it
//   closes it (measured here: a checkpoint made while running is not in `qemu-img info` yet);
// - running domain (local or remote): checkpoint-dumpxml --size, where libvirt leaves out the size
//   of a bitmap it cannot use. Foreign bitmaps of a running domain cannot be seen (libvirt has no
//   API that lists a disk's bitmaps; asking QEMU would go behind libvirt's back);
// - remote host, domain shut off: nothing. libvirt has no API that lists a disk's bitmaps and
//   qemu-img runs only here, so the report says so instead of guessing.
// checkLibvirtHealth is PURE; readImageBitmaps is the one local read.

import type { Checkpoint, HealthIssue } from '../../../shared/domain';
import type { DomainDisk } from '../../libvirt/domain-xml';
import { imageInfo } from '../backup/qemuimg';
import { TEMP_BITMAP_PREFIX } from '../names';
import { whyNoBitmap } from './plan';

/** The bitmaps of one disk's top image, or why they could not be read. */
export type ImageBitmaps = { bitmaps: { name: string; flags: string[] }[] } | { unreadable: string };

export interface LibvirtHealthInput {
  /** libvirt's checkpoints; with sizes (dumpxml --size) when `sizesComputed`. */
  checkpoints: readonly Checkpoint[];
  sizesComputed: boolean;
  disks: readonly DomainDisk[];
  running: boolean;
  /** Disk → its image's bitmaps (local host only); undefined on a remote host. */
  images?: ReadonlyMap<string, ImageBitmaps>;
  /** The remote host's name, for the "cannot see" wording. */
  remoteHost?: string;
}

export function checkLibvirtHealth(input: LibvirtHealthInput): HealthIssue[] {
  const issues: HealthIssue[] = [];
  const disks = new Map(input.disks.map((d) => [d.target, d]));
  const ours = new Map<string, Set<string>>();
  for (const cp of input.checkpoints) {
    for (const d of cp.disks) {
      if (d.checkpoint !== 'bitmap') continue;
      const bitmap = d.bitmap ?? cp.name;
      if (!ours.has(d.name)) ours.set(d.name, new Set());
      ours.get(d.name)!.add(bitmap);
      const base = { disk: d.name, checkpoint: cp.name, bitmap };
      const unusable = `checkpoint ${cp.name} cannot be used as a base for ${d.name}; the next backup of ${d.name} based on it will be full`;
      const disk = disks.get(d.name);
      if (!disk) {
        issues.push({ ...base, state: 'bitmap-missing', severity: 'error', message: `disk ${d.name} of checkpoint ${cp.name} is no longer attached to the domain`, consequence: unusable });
        continue;
      }
      const image = input.images?.get(d.name);
      if (image && 'bitmaps' in image) {
        const b = image.bitmaps.find((x) => x.name === bitmap);
        if (!b) {
          issues.push({ ...base, state: 'bitmap-missing', severity: 'error', message: `bitmap ${bitmap} of checkpoint ${cp.name} is missing in the image of ${d.name} (${disk.source ?? '?'})`, consequence: unusable });
          continue;
        }
        if (b.flags.includes('in-use') && !input.running) {
          issues.push({
            ...base, state: 'bitmap-inconsistent', severity: 'error',
            message: `bitmap ${bitmap} on ${d.name} is inconsistent (QEMU was not shut down cleanly)`,
            consequence: `${unusable}; delete the checkpoint to clean up`,
          });
          continue;
        }
        if (!b.flags.includes('auto')) {
          issues.push({
            ...base, state: 'bitmap-not-recording', severity: 'error',
            message: `bitmap ${bitmap} on ${d.name} is not recording`,
            consequence: `writes to ${d.name} are not tracked for checkpoint ${cp.name}; a backup based on it would miss data, so it is refused`,
          });
          continue;
        }
      }
      if (input.running && input.sizesComputed && d.size === undefined) {
        issues.push({
          ...base, state: 'bitmap-inconsistent', severity: 'error',
          message: `libvirt computes no size for bitmap ${bitmap} on ${d.name}: it is missing or inconsistent in QEMU`,
          consequence: `${unusable}; delete the checkpoint to clean up`,
        });
      }
    }
  }

  for (const disk of input.disks) {
    if (disk.device !== 'disk') continue;
    const why = whyNoBitmap(disk);
    if (why !== undefined) {
      issues.push({
        state: 'disk-incapable', severity: 'info', disk: disk.target,
        message: `${disk.target} cannot hold checkpoint bitmaps: ${why}`,
        consequence: `checkpoints leave ${disk.target} out; every backup of ${disk.target} is full`,
      });
      continue;
    }
    const image = input.images?.get(disk.target);
    if (image && 'unreadable' in image) {
      issues.push({
        state: 'bitmaps-unknown', severity: 'warning', disk: disk.target,
        message: `the bitmaps in the image of ${disk.target} cannot be read: ${image.unreadable}`,
        consequence: `a missing or damaged bitmap on ${disk.target} shows only when libvirt uses it (the next incremental backup would then fail and a full one is needed)`,
      });
    } else if (!image && input.remoteHost !== undefined && !(input.running && input.sizesComputed)) {
      issues.push({
        state: 'bitmaps-unknown', severity: 'info', disk: disk.target,
        message: `the image of ${disk.target} is on ${input.remoteHost}: its bitmaps cannot be seen from here while the domain is shut off ` +
          '(libvirt has no API that lists a disk\'s bitmaps, and qemu-img runs only on this machine)',
        consequence: `a missing or damaged bitmap on ${disk.target} shows once the domain runs, or when the next incremental backup fails (a full one is then needed)`,
      });
    }
    const mine = ours.get(disk.target) ?? new Set<string>();
    for (const b of image && 'bitmaps' in image ? image.bitmaps : []) {
      if (b.name.startsWith(TEMP_BITMAP_PREFIX) || mine.has(b.name)) continue;
      issues.push({
        state: 'foreign-bitmap', severity: 'info', disk: disk.target, bitmap: b.name,
        message: `foreign bitmap ${b.name} on ${disk.target} is left alone`,
        consequence: `Tidemark neither uses nor changes it; a checkpoint named ${b.name} cannot be created`,
      });
    }
  }
  return issues;
}

/** The bitmaps of each listed disk's top image (local host; qemu-img -U reads images QEMU has open). */
export async function readImageBitmaps(disks: readonly DomainDisk[]): Promise<Map<string, ImageBitmaps>> {
  const out = new Map<string, ImageBitmaps>();
  for (const d of disks) {
    if (d.device !== 'disk' || whyNoBitmap(d) !== undefined) continue;
    if (d.type !== 'file' || d.source === undefined) {
      out.set(d.target, { unreadable: `it is a ${d.type} disk, not an image file on this machine` });
      continue;
    }
    try {
      const info = await imageInfo(d.source, { shared: true, format: 'qcow2' });
      out.set(d.target, { bitmaps: info.bitmaps.map((b) => ({ name: b.name, flags: b.flags })) });
    } catch (e) {
      out.set(d.target, { unreadable: (e as Error).message.split('\n')[0]! });
    }
  }
  return out;
}
