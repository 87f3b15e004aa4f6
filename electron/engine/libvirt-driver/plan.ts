// PURE: what a libvirt checkpoint operation asks libvirt for, decided before the one libvirt call.
// - create: the <domaincheckpoint> (name, description, every disk 'bitmap' or 'no' by the --diskspec
//   rules of QMP mode), the chained layout refused, quiesce as a freeze around the call;
// - delete: virsh's flags for a DeleteMode, and which checkpoints go and which get a new parent;
// - reads: libvirt's checkpoint → the contract's Checkpoint (libvirt's layout is always independent).

import type { Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult } from '../../../shared/domain';
import type { CheckpointSpec, LibvirtCheckpoint } from '../../libvirt/checkpoint-xml';
import type { DeleteCheckpointOptions } from '../../libvirt/checkpoints';
import type { DomainDisk } from '../../libvirt/domain-xml';
import { defaultCheckpointName, deleteOrder, shown } from '../checkpoints/plan';
import { validateCheckpointName } from '../names';

export const CHAINED_REFUSED =
  'libvirt domains use the independent bitmap layout only: libvirt gives every checkpoint its own bitmap that keeps ' +
  'recording, and has no chained layout (that one exists only for VMs Tidemark reaches over QMP)';

/** Why a disk of the domain cannot hold a checkpoint bitmap, or undefined when it can. */
export function whyNoBitmap(d: DomainDisk): string | undefined {
  if (d.device !== 'disk') return `it is a ${d.device}`;
  if (d.readonly) return 'it is read-only';
  if (d.format !== 'qcow2') return `its format is ${d.format ?? 'unknown'}, and bitmaps need qcow2`;
  return undefined;
}

export interface CreatePlan {
  spec: CheckpointSpec;
  /** Freeze the guest's filesystems (libvirt's guest-agent call) around the create, thaw on every path. */
  quiesce: boolean;
}

/**
 * The checkpoint to ask libvirt for. Every disk is listed (libvirt turns unlisted disks into 'no'
 * once one is listed): a listed disk as asked, an unlisted one when it can hold a bitmap.
 */
export function planCreate(input: {
  options: CreateCheckpointOptions & { quiesce?: boolean };
  disks: readonly DomainDisk[];
  existing: ReadonlySet<string>;
  nowMs: number;
  domain: string;
}): CreatePlan {
  const { options, disks, domain } = input;
  if (options.layout === 'chained') throw new Error(`domain ${domain}: ${CHAINED_REFUSED}`);
  const name = options.name === undefined ? defaultCheckpointName(input.nowMs, input.existing) : validateCheckpointName(options.name);
  if (input.existing.has(name)) throw new Error(`checkpoint ${shown(name)} already exists on domain ${domain}`);
  const byName = new Map(disks.map((d) => [d.target, d]));
  const asked = new Map<string, 'bitmap' | 'no'>();
  for (const r of options.disks ?? []) {
    if (!byName.has(r.name)) throw new Error(`unknown disk ${shown(r.name)} (domain ${domain} has ${disks.map((d) => d.target).join(', ') || 'no disks'})`);
    if (asked.has(r.name)) throw new Error(`disk ${shown(r.name)} is listed twice`);
    asked.set(r.name, r.checkpoint);
  }
  const chosen = disks.map((d) => {
    const why = whyNoBitmap(d);
    const want = asked.get(d.target) ?? (why === undefined ? 'bitmap' : 'no');
    if (want === 'bitmap' && why !== undefined) throw new Error(`disk ${d.target} cannot hold a checkpoint bitmap: ${why}`);
    return { name: d.target, checkpoint: want };
  });
  if (!chosen.some((d) => d.checkpoint === 'bitmap')) throw new Error(`domain ${domain}: no disk takes part in checkpoint ${shown(name)} (none can hold a bitmap, or every one was left out)`);
  const spec: CheckpointSpec = { name, disks: chosen, ...(options.description !== undefined ? { description: options.description } : {}) };
  return { spec, quiesce: options.quiesce === true };
}

/** virsh checkpoint-delete's flags for a DeleteMode. */
export function deleteFlags(mode: DeleteMode): DeleteCheckpointOptions {
  switch (mode) {
    case 'plain': return { mode: 'only' };
    case 'children': return { mode: 'children' };
    case 'children-only': return { mode: 'children-only' };
    case 'metadata': return { mode: 'only', metadataOnly: true };
    default: throw new Error(`unknown delete mode ${JSON.stringify(mode)} (use plain, children, children-only, metadata)`);
  }
}

/** What a delete does to the tree (libvirt's rules: the children of a deleted checkpoint move to its parent). */
export function planDelete(checkpoints: ReadonlyMap<string, Checkpoint>, name: string, mode: DeleteMode): DeleteResult {
  const order = deleteOrder({ layout: 'independent', checkpoints, current: undefined }, name, mode);
  const gone = new Set(order);
  const reparented: DeleteResult['reparented'] = [];
  if (mode === 'plain' || mode === 'metadata') {
    const parent = checkpoints.get(name)!.parent;
    for (const cp of checkpoints.values()) {
      if (cp.parent === name) reparented.push({ name: cp.name, ...(parent !== undefined ? { parent } : {}) });
    }
  }
  return { deleted: order.filter((n) => gone.has(n)), reparented };
}

/** libvirt's checkpoint as the contract shows it. Sizes only when libvirt computed them (--size). */
export function toCheckpoint(cp: LibvirtCheckpoint): Checkpoint {
  const creationTime = cp.creationTime ?? 0;
  return {
    name: cp.name,
    ...(cp.description !== undefined ? { description: cp.description } : {}),
    ...(cp.parent !== undefined ? { parent: cp.parent } : {}),
    creationTime,
    createdAtMs: creationTime * 1000,
    disks: cp.disks.map((d) => ({
      name: d.name,
      checkpoint: d.checkpoint,
      ...(d.checkpoint === 'bitmap' ? { bitmap: d.bitmap ?? cp.name } : {}),
      ...(d.size !== undefined ? { size: d.size } : {}),
    })),
    layout: 'independent',
  };
}
