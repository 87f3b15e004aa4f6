// PURE decisions of creating a checkpoint from libvirt XML (checkpoint-create, libvirt's rules):
// the disks of a new checkpoint the XML describes, and the record a redefinition writes
// (--redefine [--validate]: metadata for bitmaps that already exist). No I/O here.

import type { BitmapLayout, Checkpoint, CheckpointDisk, CreateCheckpointOptions, DiskInfo } from '../../../shared/domain';
import { bitmapIsValidForCheckpoint } from './health';
import { shown } from './plan';
import type { ParsedCheckpointXml } from './xml';

/** The rules of the request itself, checked before anything is read or locked. */
export function checkXmlRequest(parsed: ParsedCheckpointXml, options: { redefine?: boolean; validate?: boolean }): void {
  if (options.redefine) {
    if (parsed.name === undefined) throw new Error('a redefined checkpoint needs a <name>');
    return;
  }
  if (options.validate) throw new Error('"validate" only applies to a redefinition');
  if (parsed.parent !== undefined) throw new Error('a new checkpoint cannot name its parent (it is always the current checkpoint); use redefine to record an existing one');
}

/** As libvirt: metadata for a disk the VM does not have is refused (even without validate). */
export function assertDisksKnown(parsed: ParsedCheckpointXml, disks: readonly DiskInfo[], vmLabel: string): void {
  for (const d of parsed.disks ?? []) {
    if (!disks.some((x) => x.name === d.name)) throw new Error(`unknown disk ${shown(d.name)} in checkpoint XML (VM ${vmLabel} has ${disks.map((x) => x.name).join(', ') || 'no disks'})`);
  }
}

/**
 * The disk choice of a new checkpoint described by XML, as libvirt: listed disks as listed (the
 * parser defaults them to checkpoint='bitmap'), unlisted ones 'no'. Without <disks>: undefined,
 * so the create defaults apply.
 */
export function disksFromXml(parsed: ParsedCheckpointXml, disks: readonly DiskInfo[], vmLabel: string): CreateCheckpointOptions['disks'] {
  assertDisksKnown(parsed, disks, vmLabel);
  if (!parsed.disks) return undefined;
  return disks.map((d) => {
    const listed = parsed.disks!.find((x) => x.name === d.name);
    return { name: d.name, checkpoint: listed?.checkpoint ?? 'no' } as const;
  });
}

export interface RedefineInput {
  /** The parsed XML; it must have a name. */
  parsed: ParsedCheckpointXml & { name: string };
  checkpoints: ReadonlyMap<string, Checkpoint>;
  /** The VM's current checkpoint as recorded (it may lack metadata). */
  current: string | undefined;
  layout: BitmapLayout;
  disks: readonly DiskInfo[];
  /** Check that every bitmap the XML names is present, consistent, persistent (and recording, independent). */
  validate: boolean;
  nowMs: number;
  vmLabel: string;
}

/**
 * The record a redefinition writes, and the VM's current checkpoint afterwards. Redefining an
 * existing checkpoint with the same parent and disks keeps its disks and times; a different
 * definition is refused. A new one becomes current when there is none, or when its parent is the
 * current checkpoint (so redefining a saved series in order works).
 */
export function planRedefine(input: RedefineInput): { checkpoint: Checkpoint; current: string | undefined } {
  const { parsed, checkpoints, layout } = input;
  const name = parsed.name;
  if (parsed.parent !== undefined && !checkpoints.has(parsed.parent)) throw new Error(`parent ${parsed.parent} for checkpoint ${name} not found`);
  assertDisksKnown(parsed, input.disks, input.vmLabel);
  const disks: CheckpointDisk[] = (parsed.disks ?? []).map((d) => {
    const out: CheckpointDisk = { name: d.name, checkpoint: d.checkpoint };
    if (d.checkpoint === 'bitmap') out.bitmap = d.bitmap ?? name;
    return out;
  });
  if (input.validate) {
    for (const d of disks) {
      if (d.checkpoint !== 'bitmap') continue;
      const disk = input.disks.find((x) => x.name === d.name);
      const ok = disk ? bitmapIsValidForCheckpoint(disk, d.bitmap!, layout).ok : false;
      if (!ok) throw new Error(`checkpoint inconsistent: missing or broken bitmap '${d.bitmap}' for disk '${d.name}'`);
    }
  }
  const existing = checkpoints.get(name);
  if (existing) {
    const same = existing.parent === parsed.parent && JSON.stringify(existing.disks.map((d) => [d.name, d.checkpoint])) === JSON.stringify(disks.map((d) => [d.name, d.checkpoint]));
    if (!same) throw new Error(`checkpoint ${name} already exists with a different definition`);
  }
  const creationTime = parsed.creationTime ?? existing?.creationTime ?? Math.floor(input.nowMs / 1000);
  const checkpoint: Checkpoint = {
    name,
    ...(parsed.description !== undefined ? { description: parsed.description } : {}),
    ...(parsed.parent !== undefined ? { parent: parsed.parent } : {}),
    creationTime,
    createdAtMs: existing?.createdAtMs ?? creationTime * 1000,
    disks: existing ? existing.disks : disks,
    layout,
    ...(parsed.domainXml !== undefined ? { domainXml: parsed.domainXml } : {}),
  };
  const cur = input.current;
  const becomesCurrent = !existing && (cur === undefined || !checkpoints.has(cur) || cur === parsed.parent);
  return { checkpoint, current: becomesCurrent ? name : cur };
}
