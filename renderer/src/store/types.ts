// The renderer store's shapes, apart from the code that fills them: the state of each VM, the
// slices (backups, dirty maps) and the store itself. Slices and views import these; nothing here
// imports a slice or the store, so there are no import circles.

import type { StoreApi } from 'zustand/vanilla';
import type {
  AppApi, BackupBeginOptions, BackupBeginResult, BackupDetails, BackupInventory, BackupRecord, BackupVerifyReport, DirtyMap, FleetBackups,
  JobInfo, LabInfo, PullBeginOptions, PullBeginResult,
  PullExportInfo, PullExportOptions, RestoreOutcome, RestoreRequest, ScheduleInfo, VmSummary, WriteSimOptions,
} from '../../../shared/contract';
import type {
  BitmapInfo, ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthIssue, HealthReport, VmInfo,
} from '../../../shared/domain';
import type { DiskHistory } from '../model/samples';

export interface VmView {
  info?: VmInfo;
  checkpoints: Checkpoint[];
  current?: string;
  health?: HealthReport;
  /** Latest live bitmaps per disk (from vm:bitmaps). */
  live?: Record<string, BitmapInfo[]>;
  liveAt?: number;
  /** History of dirty counts per disk and bitmap (bounded per bitmap; see model/samples.ts). */
  samples: Record<string, DiskHistory>;
  /** Exact "changes since" per checkpoint, fetched on demand (checkpoint:changes). */
  changes: Record<string, ChangesSince>;
  /** When each of `changes` was asked for, and the chain fingerprint of each disk then. */
  changesMeta: Record<string, { at: number; fingerprints: Record<string, string> }>;
  loading: boolean;
  /** Why loading the VM failed, when it did. */
  error?: string;
}

export interface AppState extends BackupSlice, DirtyMapSlice, InventorySlice {
  transport: AppApi['transport'];
  vms: VmSummary[];
  vmsLoaded: boolean;
  selectedVmId?: string;
  byVm: Record<string, VmView>;
  jobs: Record<string, JobInfo>;
  lab?: LabInfo;
  /** Selected checkpoint of the selected VM; also the baseline of the dirty-bytes area. */
  selected?: string;
  /** The last thing worth announcing to screen readers (aria-live). */
  announcement: string;
  /** A page-level error (the host is unreachable, …). */
  error?: string;
  /** Backup schedules of every VM (schedule:list, the host's default place), read with the selected VM. */
  schedules?: ScheduleInfo[];

  start(): Promise<void>;
  stop(): void;
  selectVm(vmId: string | undefined): Promise<void>;
  loadVm(vmId: string): Promise<void>;
  /** Re-reads the schedules (when a VM is selected or loaded, and after a schedule changes). */
  loadSchedules(): Promise<void>;
  select(name: string | undefined): void;
  addVm(endpoint: string, label?: string): Promise<VmSummary>;
  removeVm(vmId: string): Promise<void>;
  startLab(): Promise<LabInfo>;
  stopLab(): Promise<LabInfo>;
  createCheckpoint(options: CreateCheckpointOptions): Promise<Checkpoint>;
  deleteCheckpoint(name: string, mode: DeleteMode): Promise<DeleteResult>;
  fetchChanges(name: string): Promise<ChangesSince>;
  startWrites(options: WriteSimOptions): Promise<JobInfo>;
  cancelJob(jobId: string): Promise<void>;
  announce(text: string): void;
}


export function emptyVmView(): VmView {
  return { checkpoints: [], samples: {}, changes: {}, changesMeta: {}, loading: false };
}

// ---------------------------------------------------------------- backups

export interface BackupSlice {
  /** Repository chosen by the user (undefined: the host's default, STATE/backups). */
  repository?: string;
  /** The repository path the host resolved (from the last listing). */
  repositoryResolved?: string;
  /** Backups per VM, oldest first. */
  backups: Record<string, BackupRecord[]>;
  backupsError?: string;
  setRepository(path: string | undefined): void;
  loadBackups(vmId: string): Promise<void>;
  startBackup(options: BackupBeginOptions): Promise<BackupBeginResult>;
  runRestore(request: RestoreRequest): Promise<RestoreOutcome>;
  /** Pull mode: Tidemark copies the dirty extents over NBD into the repository. */
  startPull(options: PullBeginOptions): Promise<PullBeginResult>;
  /** Export-only pull: opens the NBD exports for an outside tool; ends with endPullExport. */
  startPullExport(options: Omit<PullExportOptions, 'tcp'>): Promise<PullSession>;
  /** Reports how the outside copy went: success records the pull's checkpoint, failure rolls it back. */
  endPullExport(session: PullSession, outcome: 'success' | 'failure'): Promise<{ backupId: string }>;
  /** Open export-only pulls started from this page, by job id. */
  pullSessions: Record<string, PullSession>;
  onJobEnded(job: JobInfo): void;
}

/** One disk of an export-only pull as the page shows it (recovered from the job log after a reload). */
export type PullExportView = Pick<PullExportInfo, 'disk' | 'uri'> & Partial<Omit<PullExportInfo, 'disk' | 'uri'>>;

export interface PullSession {
  vmId: string;
  jobId: string;
  exports: PullExportView[];
  /** The repository whose lock the pull holds (undefined: the host's default). */
  repo?: string;
  /** Set once pull:end was answered (the job ends a moment later). */
  ended?: 'success' | 'failure';
}

// ---------------------------------------------------------------- dirty maps

export interface DiskMapState {
  /** The latest map read (kept while a newer one is read). */
  map?: DirtyMap;
  /** Why the latest read failed, when it did. */
  error?: string;
  /** Why this VM has no dirty map at all (a libvirt domain): said plainly, not as a failure. */
  unavailable?: string;
  /** A read is under way. */
  loading: boolean;
  /** The disk changed since the map was read (a newer read is due): the map is behind. */
  behind?: boolean;
  /** Set by the page while the VM is not connected: the map is as of its read, nothing newer is known. */
  offline?: boolean;
  /** chainFingerprint() of the baseline's bitmaps when the map was asked for (model/figures.ts). */
  fingerprint?: string;
}

export interface DirtyMapTarget {
  vmId: string;
  /** The baseline checkpoint. */
  since: string;
  disks: readonly string[];
  /** Cells per disk (dirtymap:get `buckets`). */
  cells: number;
}

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface DirtyMapSlice {
  /** The maps of the watched baseline (one target at a time: the selected VM's timeline). */
  dirtyMaps: { target?: DirtyMapTarget; disks: Record<string, DiskMapState> };
  pageVisible: boolean;
  /** Watch these disks since this checkpoint (undefined: stop watching). */
  watchDirtyMaps(target: DirtyMapTarget | undefined): void;
  /** The page was hidden or shown (document.visibilitychange): no reads while hidden. */
  setPageVisible(visible: boolean): void;
  /** Re-evaluates what the watched maps depend on and whether reads may run (called on events). */
  syncDirtyMaps(vmId?: string): void;
  disposeDirtyMaps(): void;
}

// ---------------------------------------------------------------- inventory (backups view, fleet overview)

export interface InventoryView {
  data?: BackupInventory;
  loading: boolean;
  error?: string;
}

/** What the fleet overview knows of one VM besides its backups (read when the overview loads). */
export interface FleetVmFacts {
  /** QEMU run state (vm:info). */
  status?: string;
  checkpoints?: number;
  issues?: HealthIssue[];
  /** Why the VM's facts could not be read. */
  error?: string;
}

export interface InventorySlice {
  /** Per VM id: its backups, failed attempts, unreadable manifests, verifications, repository usage. */
  inventory: Record<string, InventoryView>;
  /** Backup ids a verification runs for. */
  verifying: Record<string, true>;
  fleet: { backups?: FleetBackups; vms: Record<string, FleetVmFacts>; loading: boolean; loadedAt?: number; error?: string };
  loadInventory(vmId: string): Promise<void>;
  verifyBackups(vmId: string, ids: readonly string[]): Promise<BackupVerifyReport>;
  backupDetails(id: string): Promise<BackupDetails>;
  /** Deletes a backup (with the backups that build on it, when told); reloads the VM's lists. */
  deleteBackup(vmId: string, id: string, withDependents: boolean): Promise<string[]>;
  loadFleet(): Promise<void>;
}

// ---------------------------------------------------------------- the store

export type AppStore = StoreApi<AppState>;
