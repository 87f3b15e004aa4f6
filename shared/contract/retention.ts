// The contract, retention and schedules (issue 13): prune and forever-forward merge of a VM's
// backups (with a dry run that returns the simulator's table), and backup schedules (systemd
// timers or cron). The policy and the preview are types the engine (electron/engine/retention/)
// and the renderer share, so they live here.

import * as v from 'valibot';
import { args, matching, num, oneOf, optionalArg, record, text } from '../schema';
import type { BackupKind } from './manifest';
import { repoPathSchema as repoPath } from './backups';
import { vmIdSchema as vmId } from './vm';

/** Keep rules, in the vocabulary of restic, borg and PBS (a count of 0 or absent: the rule is off). */
export interface KeepPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

/** What happens to one layer: kept as is, rewritten (a fold landed in it, or rebased), merged into a later point, deleted. */
export type LayerAction = 'keep' | 'rewrite' | 'merge' | 'delete';

export interface PreviewLayer {
  disk: string;
  action: LayerAction;
  /** merge: the point whose layer receives this one's data. */
  into?: string;
  /** Kept points: layers from the full to this point afterwards. */
  chainLength?: number;
  fileSize: number;
}

export interface PreviewRow {
  id: string;
  /** Start of the backup (ms since the epoch) and the same as wall-clock text in the preview's zone. */
  time: number;
  local: string;
  kind: BackupKind;
  keep: boolean;
  /** Keep rules (and pins) for a kept point; the reason for a removed one. */
  why: string[];
  layers: PreviewLayer[];
}

/** The simulator's table: one row per point, newest first. */
export interface RetentionPreview {
  timeZone: string;
  rows: PreviewRow[];
  bytesFreed: { atLeast: number; atMost: number };
  checkpointsFreed: string[];
}

/** What a prune or merge decided (dry run) or did; `kept`, `removed` and `merged` are the shape scripts rely on. */
export interface RetentionReport {
  vmId: string;
  repo: string;
  /** "prune --keep-daily 7 --max-chain 10", … */
  what: string;
  dryRun: boolean;
  /** Points kept, newest first, with the rules or pins that keep them. */
  kept: { id: string; reasons: string[] }[];
  /** Points removed, newest first, with why. */
  removed: { id: string; reason: string }[];
  /** Per fold: the removed layers whose data now lives in `child`'s layer. */
  merged: { disk: string; child: string; layers: string[]; becomesFull: boolean }[];
  /** Layers rebased onto an older base (branch points whose parent goes). */
  rebased: { disk: string; child: string; from: string; onto?: string }[];
  preview: RetentionPreview;
  /** Checkpoints that only removed backups used (left in the VM; checkpoint-delete drops their bitmaps). */
  checkpointsFreed: string[];
  /** An interrupted prune or merge that was finished first. */
  finishedEarlier?: { what: string; stepsRun: number; stepsTotal: number };
  /** After a real run: steps carried out and the bytes freed on disk. */
  result?: { stepsRun: number; stepsTotal: number; bytesFreed: number };
}

/** The outcome of finishing an interrupted run only (backup-prune --finish). */
export interface RetentionFinishReport {
  vmId: string;
  repo: string;
  finished?: { what: string; stepsRun: number; stepsTotal: number; removed: string[] };
}

export interface ScheduleInfo {
  id: string;
  vm: { id: string; name?: string };
  /** hourly | daily | weekly | monthly | a systemd calendar expression. */
  every: string;
  connect: string;
  stateDir: string;
  repo?: string;
  mode: 'push' | 'pull';
  policy?: KeepPolicy;
  maxChain?: number;
  user: boolean;
  createdAt: number;
  files: string[];
  /** Next run (ms since the epoch), when it can be computed here. */
  next?: number;
}

export interface ScheduleListing {
  /** Where schedules were looked for (systemd unit folder or cron folder). */
  target: { kind: 'systemd' | 'cron'; dir: string; user: boolean };
  schedules: ScheduleInfo[];
  problems: { file: string; message: string }[];
}

export interface ScheduleAddResult {
  schedule: ScheduleInfo;
  /** systemd's normalized calendar expression. */
  normalized: string;
  /** What remains for the admin (copy units, crontab -e); empty when the schedule is active. */
  todo: string[];
}

const count = num({ min: 0, max: 1_000_000, integer: true });
export const keepPolicySchema = record({
  last: optionalArg(count),
  hourly: optionalArg(count),
  daily: optionalArg(count),
  weekly: optionalArg(count),
  monthly: optionalArg(count),
  yearly: optionalArg(count),
});
export const maxChainSchema = num({ min: 1, max: 10_000, integer: true });

export const pruneOptionsSchema = record({
  repo: optionalArg(repoPath),
  policy: optionalArg(keepPolicySchema),
  maxChain: optionalArg(maxChainSchema),
  /** Decide only: the simulator's table, nothing changes. */
  dryRun: optionalArg(v.boolean()),
});
export type PruneOptions = v.InferOutput<typeof pruneOptionsSchema>;

export const mergeOptionsSchema = record({
  repo: optionalArg(repoPath),
  maxChain: maxChainSchema,
  dryRun: optionalArg(v.boolean()),
});
export type MergeOptions = v.InferOutput<typeof mergeOptionsSchema>;

/** Where schedules live: the system's units (default), the user's (--user), or a folder (--unit-dir, files only). */
export const scheduleWhereSchema = record({
  user: optionalArg(v.boolean()),
  unitDir: optionalArg(text({ min: 1, max: 4096 })),
});
export type ScheduleWhere = v.InferOutput<typeof scheduleWhereSchema>;

export const scheduleIdSchema = matching(/^[a-z0-9][a-z0-9-]{0,47}$/, 'a schedule id (1–48 lower-case letters, digits and "-")', 48);

export const scheduleAddOptionsSchema = record({
  /** hourly | daily | weekly | monthly | a systemd calendar expression (OnCalendar=). */
  every: text({ min: 1, max: 200 }),
  /** Default: the VM's name and the period ("web-01-daily"). */
  id: optionalArg(scheduleIdSchema),
  repo: optionalArg(repoPath),
  mode: optionalArg(oneOf('push', 'pull')),
  policy: optionalArg(keepPolicySchema),
  maxChain: optionalArg(maxChainSchema),
  user: optionalArg(v.boolean()),
  unitDir: optionalArg(text({ min: 1, max: 4096 })),
});
export type ScheduleAddOptions = v.InferOutput<typeof scheduleAddOptionsSchema>;

export const retentionArgs = {
  'backup:prune': args(vmId, pruneOptionsSchema),
  'backup:merge': args(vmId, mergeOptionsSchema),
  'backup:finish-retention': args(vmId, optionalArg(repoPath)),
  'schedule:add': args(vmId, scheduleAddOptionsSchema),
  'schedule:list': args(optionalArg(scheduleWhereSchema)),
  'schedule:remove': args(scheduleIdSchema, optionalArg(scheduleWhereSchema)),
};

export interface RetentionResults {
  'backup:prune': RetentionReport;
  'backup:merge': RetentionReport;
  'backup:finish-retention': RetentionFinishReport;
  'schedule:add': ScheduleAddResult;
  'schedule:list': ScheduleListing;
  'schedule:remove': { id: string; removed: string[] };
}
