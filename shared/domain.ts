// Domain types shared by the engine, the contract, the CLI and the renderer.
// Plain data only: everything here must survive JSON.stringify unchanged. Shapes that are also
// checked at run time (checkpoints as stored on disk, the checkpoint arguments of the contract) are
// schemas, and their types come from them.

import * as v from 'valibot';
import { list, num, oneOf, optionalArg, record, size, text } from './schema';

/** One dirty bitmap as QEMU reports it (query-named-block-nodes / query-block). */
export interface BitmapInfo {
  /** Absent for anonymous bitmaps, which exist while block jobs run. */
  name?: string;
  recording: boolean;
  persistent: boolean;
  busy: boolean;
  inconsistent: boolean;
  /** Dirty bytes; absent when the driver cannot tell (a shut-off libvirt domain: libvirt computes
   *  sizes only for a running one). Never shown as 0. */
  count?: number;
  granularity: number;
}

export interface DiskInfo {
  /** Guest device id when it has one, else its drive id, else its node name. */
  name: string;
  /** qdev id of the guest device, if any. */
  device?: string;
  /** QOM path of the device's block backend (for HMP qemu-io -d). */
  qdevPath?: string;
  /** Drive id (BlockBackend name), if any. */
  drive?: string;
  /** Node name of the format node where checkpoint bitmaps live. */
  nodeName: string;
  format: string;
  virtualSize: number;
  imageFile: string;
  clusterSize?: number;
  /** Bitmap granularity used for new bitmaps (QEMU's default: the cluster size, at least 64 KiB... as reported). */
  granularity: number;
  /** True when the image can store persistent bitmaps (qcow2 v3). */
  bitmapCapable: boolean;
  /** Why not, in plain words, when bitmapCapable is false. */
  bitmapIncapableReason?: string;
  readOnly: boolean;
  bitmaps: BitmapInfo[];
}

export interface VmIdentity {
  /** Stable key for metadata: the UUID when QEMU has a non-zero one, else the name, else the endpoint. */
  id: string;
  name?: string;
  uuid?: string;
  endpoint: string;
}

export interface VmInfo extends VmIdentity {
  /** QEMU run state (query-status), e.g. "running", "paused", "prelaunch". */
  status: string;
  qemuVersion: string;
  disks: DiskInfo[];
}

/** `independent`: every checkpoint's bitmap keeps recording (libvirt today).
 *  `chained`: one recording bitmap, older ones disabled, each covering its own interval (libvirt 2019). */
export const bitmapLayoutSchema = oneOf('independent', 'chained');
export type BitmapLayout = v.InferOutput<typeof bitmapLayoutSchema>;

export const checkpointDiskSchema = record({
  name: text({ min: 1, max: 4096 }),
  checkpoint: oneOf('bitmap', 'no'),
  /** Bitmap name; equals the checkpoint name when checkpoint = 'bitmap'. */
  bitmap: v.optional(text()),
  /** Dirty bytes since the checkpoint (only filled in when asked for, as virsh --size). */
  size: v.optional(num({ min: 0 })),
  /** Set when this bitmap can no longer give complete "changes since" for this disk (chained layout:
   *  a later bitmap on its path was lost); says why. Such a checkpoint is not used as a base. */
  incomplete: v.optional(text({ max: 8192 })),
});
export type CheckpointDisk = v.InferOutput<typeof checkpointDiskSchema>;

/** A checkpoint, also as stored in STATE/vms/<vm-key>/checkpoints/<file>.json. */
export const checkpointSchema = record({
  name: text({ min: 1, max: 4096 }),
  description: v.optional(text({ max: 1024 * 1024 })),
  parent: v.optional(text()),
  /** Seconds since the epoch, as libvirt's <creationTime>. */
  creationTime: size(),
  /** Milliseconds since the epoch; finer than creationTime, for ordering and the timeline. */
  createdAtMs: size(),
  disks: list(checkpointDiskSchema, { max: 4096 }),
  layout: bitmapLayoutSchema,
  /** The <domain> element of a redefined libvirt checkpoint, kept verbatim for dumpxml. */
  domainXml: v.optional(text({ max: 16 * 1024 * 1024 })),
});
export type Checkpoint = v.InferOutput<typeof checkpointSchema>;

export type HealthState =
  | 'ok'
  | 'bitmap-missing'
  | 'bitmap-inconsistent'
  | 'bitmap-not-recording'
  | 'bitmap-recording-unexpectedly'
  | 'bitmap-busy'
  | 'metadata-missing'
  | 'foreign-bitmap'
  | 'disk-incapable'
  /** A checkpoint being created right now (its bitmaps exist, its metadata follows when the operation succeeds). */
  | 'checkpoint-pending'
  /** Bitmaps of a checkpoint whose operation died or gave up before recording it. */
  | 'checkpoint-left-over'
  /** The bitmaps in a disk's image cannot be seen (a libvirt domain on a remote host, an unreadable image). */
  | 'bitmaps-unknown';

export interface HealthIssue {
  state: HealthState;
  severity: 'info' | 'warning' | 'error';
  disk: string;
  checkpoint?: string;
  bitmap?: string;
  /** What is wrong, in plain words. */
  message: string;
  /** What it means for the admin, e.g. "the next backup of vdb will be full". */
  consequence: string;
}

export interface HealthReport {
  vmId: string;
  checkedAt: number;
  issues: HealthIssue[];
}

/** Dirty bytes per disk since a checkpoint (the temporary merged bitmap's count). */
export interface ChangesSince {
  checkpoint: string;
  disks: { disk: string; bytes: number; granularity: number; virtualSize: number; usable: boolean; reason?: string }[];
}

export const deleteModeSchema = oneOf('plain', 'children', 'children-only', 'metadata');
export type DeleteMode = v.InferOutput<typeof deleteModeSchema>;

/** A checkpoint name as an argument: names are checked properly by the engine (electron/engine/names.ts); here only shape and a sane bound. */
export const checkpointNameSchema = text({ max: 4096 });
const checkpointName = checkpointNameSchema;

/** Freeze the guest's file systems through the QEMU guest agent around the one transaction. */
export const quiesceOptionSchema = record({
  /** The agent's socket (unix:PATH); default: the VM's own org.qemu.guest_agent.0 channel. */
  agent: optionalArg(text({ min: 1, max: 4096 })),
});
export type QuiesceOption = v.InferOutput<typeof quiesceOptionSchema>;

export const createCheckpointOptionsSchema = record({
  /** File-system consistent: guest agent freeze just before the transaction, thaw right after
   *  (libvirt domains: libvirt's domfsfreeze/domfsthaw around its one call; `agent` is for QMP VMs). */
  quiesce: optionalArg(quiesceOptionSchema),
  /** Default: a timestamp (seconds since the epoch, as libvirt). */
  name: optionalArg(checkpointName),
  description: optionalArg(text({ max: 65536 })),
  /** Per-disk include/exclude. Disks not listed take `checkpoint='bitmap'` when they can hold
   *  persistent bitmaps, else 'no'. Unknown disk names are an error. */
  disks: optionalArg(list(record({ name: text({ min: 1, max: 256 }), checkpoint: oneOf('bitmap', 'no') }), { max: 256 })),
  /** Only honoured at a VM's first checkpoint (or when it has none left); otherwise must match. */
  layout: optionalArg(bitmapLayoutSchema),
});
export type CreateCheckpointOptions = v.InferOutput<typeof createCheckpointOptionsSchema>;

export const listFilterSchema = record({
  roots: optionalArg(v.boolean()),
  leaves: optionalArg(v.boolean()),
  noLeaves: optionalArg(v.boolean()),
  /** Only the direct children of this checkpoint (virsh --from without --descendants). */
  from: optionalArg(checkpointName),
  /** With `from`: all descendants instead of direct children. */
  descendants: optionalArg(v.boolean()),
  /** Parents before children (otherwise sorted by creation time). */
  topological: optionalArg(v.boolean()),
});
export type ListFilter = v.InferOutput<typeof listFilterSchema>;

export interface DeleteResult {
  deleted: string[];
  /** Children that got a new parent. */
  reparented: { name: string; parent?: string }[];
}
