// The contract, the dirty map and pull-mode backups (issue 5): the channels' argument schemas and their results.

import * as v from 'valibot';
import { args, list, num, oneOf, optionalArg, record, text } from '../schema';
import { diskNameSchema as diskName, repoPathSchema as repoPath } from './backups';
import type { JobInfo } from './lab';
import type { BackupKind, BackupRecord } from './manifest';
import { vmIdSchema as vmId } from './vm';
import { quiesceOptionSchema } from '../domain';

/** A run of granules that are all dirty or all clean since the baseline checkpoint. */
export interface DirtyExtent {
  offset: number;
  length: number;
  dirty: boolean;
}

/** Which granules of a disk changed since a checkpoint (read over NBD from a temporary bitmap). */
export interface DirtyMap {
  vmId: string;
  disk: string;
  /** The baseline checkpoint. */
  since: string;
  /** Bitmap granularity in bytes: the smallest unit that can be dirty. */
  granularity: number;
  virtualSize: number;
  /** Sorted, contiguous, covering [0, virtualSize). */
  extents: DirtyExtent[];
  dirtyBytes: number;
  /** Dirty fraction (0..1) of each of `buckets.length` equal regions of the disk. */
  buckets: number[];
  bucketBytes: number;
  /** When the map was taken (ms since the epoch) and how long it took. */
  at: number;
  elapsedMs: number;
}

const pullCommon = {
  repo: optionalArg(repoPath),
  full: optionalArg(v.boolean()),
  since: optionalArg(text({ min: 1 })),
  checkpoint: optionalArg(text({ min: 1 })),
  noCheckpoint: optionalArg(v.boolean()),
  disks: optionalArg(list(diskName, { max: 256 })),
  /** Where the fleecing images go (default STATE/run/fleece). */
  fleeceDir: optionalArg(text({ min: 1 })),
  /** Give up when the fleecing images together exceed this many MiB. */
  fleeceMaxMiB: optionalArg(num({ min: 1, max: 1024 * 1024 * 1024 })),
  /** Guest agent freeze around the pull's transaction. */
  quiesce: optionalArg(quiesceOptionSchema),
};

/** A pull-mode backup into a repository (Tidemark copies the dirty extents over NBD). */
export const pullBeginOptionsSchema = record(pullCommon);
export type PullBeginOptions = v.InferOutput<typeof pullBeginOptionsSchema>;

/** A pull whose exports an outside tool reads; it ends with pull:end. `repo`: the repository whose lock the pull holds. */
export const pullExportOptionsSchema = record({
  ...pullCommon,
  /** Serve on TCP instead of the unix socket; TLS is required (tls-creds-x509 directory). */
  tcp: optionalArg(record({ host: text({ min: 1, max: 255 }), port: num({ min: 1, max: 65535, integer: true }), tlsDir: text({ min: 1 }) })),
});
export type PullExportOptions = v.InferOutput<typeof pullExportOptionsSchema>;

export interface PullBeginResult {
  job: JobInfo;
  backup: BackupRecord;
  /** Largest size the fleecing images reached (guest writes during the pull). */
  fleecePeakBytes: number;
}

export interface PullExportInfo {
  disk: string;
  kind: BackupKind;
  since?: string;
  /** nbd+unix:///NAME?socket=PATH or nbds://HOST:PORT/NAME. */
  uri: string;
  exportName: string;
  /** qemu:dirty-bitmap:… to read the changes since `since` (nbdinfo --map=…). */
  dirtyContext?: string;
  size: number;
}

export interface PullExportResult {
  /** The host job that holds the exports open. */
  jobId: string;
  exports: PullExportInfo[];
}

export const pullArgs = {
  'dirtymap:get': args(vmId, diskName, text({ min: 1 }), optionalArg(num({ min: 1, max: 4096, integer: true }))),
  'pull:begin': args(vmId, pullBeginOptionsSchema),
  'pull:export': args(vmId, pullExportOptionsSchema),
  /** Ends an export-only pull (in any process): success records its checkpoint, failure rolls it back. */
  'pull:end': args(vmId, oneOf('success', 'failure'), optionalArg(repoPath)),
  /** Waits until this process's export-only pull of the VM has ended; its final job. */
  'pull:wait': args(vmId),
};

export interface PullResults {
  'dirtymap:get': DirtyMap;
  'pull:begin': PullBeginResult;
  'pull:export': PullExportResult;
  'pull:end': { backupId: string };
  'pull:wait': JobInfo;
}
