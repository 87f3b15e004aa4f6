// The VM-driver seam: everything the host (and through it the contract, the CLI and the renderer)
// needs from "a VM", and nothing about how the hypervisor is reached. The QMP driver
// (engine/qmp-driver/) is its first implementation: QEMU's QMP socket, Tidemark's own checkpoint
// metadata, backups through QMP transactions. A libvirt driver is the second: virsh or a binding,
// never QMP; every read is async; one connection lists several domains; libvirt keeps the
// checkpoint metadata. Nothing above this file knows which one it talks to.
//
// Ids: `VmDriver.id` is THE VM id, the one the contract, the host, the jobs and the events use
// ("demo", "ep-…", "<libvirt URI>#<domain UUID>"). What is written to disk about a VM (manifests,
// metadata folders) is keyed by its DurableIdentity (engine/identity.ts), which nobody translates
// results back from.

import type { BackupStatusInfo, DirtyMap, VmSummary } from '../../shared/contract';
import type {
  BitmapInfo, BitmapLayout, ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthReport, ListFilter, VmInfo,
} from '../../shared/domain';
import type { BackupManifest } from './backup/manifest';
import type { BackupRepository } from './backup/repository';
import type { RestoreHooks } from './backup/restore';
import type { PointExport } from './backup/strategy';
import type { DurableIdentity } from './identity';
import type { OperationReporter } from './operation';

export type { DurableIdentity, PointExport, RestoreHooks };

export type ConnectionState = VmSummary['connection'];

/** What a driver can do; the host and the renderer adapt to it rather than to the driver's kind. */
export interface DriverCapabilities {
  /** Bitmap layouts it can create (libvirt: only 'independent'). */
  layouts: readonly BitmapLayout[];
  /** 'live': counts can be polled cheaply and often (QMP query-named-block-nodes); 'on-demand':
   *  only when asked (libvirt: checkpoint-dumpxml --size), so the poller leaves them alone. */
  bitmapCounts: 'live' | 'on-demand';
  /** A dirty map (where the changes are) can be read. */
  dirtyMap: boolean;
  /** The disks' image files are on this machine (in-place restore, image checks). */
  localImages: boolean;
  /** Who keeps the checkpoint metadata: Tidemark (STATE/vms/<key>/, watched for other processes'
   *  changes) or the hypervisor (libvirt's own checkpoint XML). */
  metadata: 'tidemark' | 'hypervisor';
  /** The backup modes it runs (push: the hypervisor writes the layers; pull: NBD export). */
  backupModes: readonly ('push' | 'pull')[];
  /** Pulls whose exports an outside tool reads until backup-end. */
  exportOnly: boolean;
}

/** Live bitmap state of one disk (what the poller compares and pushes as 'vm:bitmaps'). */
export interface DiskBitmaps {
  disk: string;
  bitmaps: BitmapInfo[];
}

/** Checkpoints of one VM, libvirt's vocabulary. Every call is async (libvirt reads are). */
export interface CheckpointOps {
  list(filter?: ListFilter): Promise<Checkpoint[]>;
  /** Throws an error naming the checkpoint when it does not exist. */
  get(name: string): Promise<Checkpoint>;
  current(): Promise<Checkpoint | undefined>;
  parent(name: string): Promise<Checkpoint | undefined>;
  create(options: CreateCheckpointOptions): Promise<Checkpoint>;
  delete(name: string, mode: DeleteMode): Promise<DeleteResult>;
  /** Dirty bytes per disk since `name`. */
  changesSince(name: string): Promise<ChangesSince>;
  dumpXml(name: string, options?: { size?: boolean; noDomain?: boolean }): Promise<string>;
  /** A new checkpoint from <domaincheckpoint> XML (virsh checkpoint-create). */
  createFromXml(xml: string, options?: { validate?: boolean }): Promise<Checkpoint>;
  /** Records an existing checkpoint from its XML (virsh checkpoint-create --redefine [--redefine-validate]). */
  redefine(xml: string, options?: { validate?: boolean }): Promise<Checkpoint>;
}

/** One backup: push and pull are modes of one operation, as libvirt's virDomainBackupBegin. */
export interface BackupBegin {
  mode: 'push' | 'pull';
  repo: BackupRepository;
  /** Full backup of every disk. */
  full?: boolean;
  /** Changes since this checkpoint (incremental if it is the newest backed-up one, else differential). */
  since?: string;
  /** Name of the checkpoint created with the backup; false: none; default: the backup id. */
  checkpoint?: string | false;
  /** Disks to back up (default: all). */
  disks?: string[];
  /** push: speed limit per disk, MiB/s. */
  speedMiBps?: number;
  /** pull: where the scratch (fleece) images go, and when to give up on their growth. */
  scratch?: { dir?: string; maxBytes?: number };
  /** pull: copy nothing; `onReady` gets the exports, and the backup ends with `end()` (from any process). */
  exportOnly?: {
    onReady(exports: PointExport[]): void;
    /** Serve on TCP instead of a unix socket; TLS is then required. */
    tcp?: { host: string; port: number; tlsDir: string };
  };
}

export interface BackupOutcome {
  backupId: string;
  /** Written last; absent for an export-only pull. */
  manifest?: BackupManifest;
  /** The checkpoint created with the backup. */
  checkpoint?: string;
  /** Largest size the scratch images reached (pull). */
  scratchPeakBytes: number;
}

export interface BackupOps {
  /** Runs one backup; resolves when it is recorded (export-only: when it was ended). */
  begin(spec: BackupBegin, reporter: OperationReporter): Promise<BackupOutcome>;
  /** Ends this VM's export-only pull in `repo`, from any process, without a live connection. */
  end(repo: BackupRepository, outcome: 'success' | 'failure'): Promise<{ backupId: string }>;
  /** The backup running for this VM in `repo` (any process), with live progress where the driver has it. */
  status(repo: BackupRepository): Promise<BackupStatusInfo>;
  /** Stops the backup running for this VM in `repo` (any process), or cleans up after a dead one. */
  cancel(repo: BackupRepository): Promise<{ backupId: string; how: 'cancelled' | 'cleaned-up' }>;
}

export interface DriverEvents {
  /** The connection came up, went down or is being retried. */
  state: { connection: ConnectionState; detail?: string };
  /** Bitmap counts the driver learnt without being polled (e.g. from a hypervisor event). */
  bitmaps: { disks: DiskBitmaps[] };
  /** A hypervisor job of this VM changed state or made progress (a backup's block job, libvirt's domain
   *  job): bitmaps' busy flags change with it. Progress where the hypervisor reports it with the event. */
  job: { jobId: string; status: string; done?: number; total?: number };
  /** The checkpoints changed outside this driver (a hypervisor event); the host re-reads and tells listeners. */
  checkpoints: Record<string, never>;
}

export type DriverEvent = keyof DriverEvents;

/** One VM behind a connection. It lives as long as its registry entry, connected or not. */
export interface VmDriver {
  /** THE VM id (contract, host, jobs, events). */
  readonly id: string;
  readonly capabilities: DriverCapabilities;
  /** How the VM list shows it, with its own connection state. */
  summary(): VmSummary;
  /** Its durable identity: live when connected, else as last seen (or recorded); undefined before the first connection. */
  identity(): DurableIdentity | undefined;
  /** Connects when the driver connects on demand (the CLI); otherwise throws, naming why, unless connected. */
  ready(): Promise<void>;
  /** The live VM: identity, disks and their bitmaps. */
  info(): Promise<VmInfo>;
  health(): Promise<HealthReport>;
  /** Bitmap state of every disk now (for the poller); [] when not connected. */
  liveBitmaps(): Promise<DiskBitmaps[]>;
  /** The checkpoint metadata changed elsewhere: re-read it before the next answer. */
  invalidate(): void;
  readonly checkpoints: CheckpointOps;
  readonly backup: BackupOps;
  /** In-place restore of this VM's disks (it must be stopped; the driver records the new branch). */
  readonly restore: RestoreHooks;
  /** Where `disk` changed since checkpoint `since` (capabilities.dirtyMap). */
  dirtyMap(disk: string, since: string, buckets?: number): Promise<DirtyMap>;
  on<E extends DriverEvent>(event: E, listener: (payload: DriverEvents[E]) => void): () => void;
  /** Disconnects; the driver answers nothing afterwards. */
  close(): Promise<void>;
}

/**
 * One entry of the VM registry: the demo VM, a QMP endpoint (one VM), or a libvirt URI (many VMs,
 * one connection, each VM with its own state, shown side by side in the VM panel).
 */
export interface VmConnection {
  /** Registry id ("demo", "ep-…"); for one-VM connections also its VM's id. */
  readonly id: string;
  readonly kind: VmSummary['kind'];
  /** The VMs behind it, in display order (QMP: exactly one). */
  vms(): readonly VmDriver[];
  /** Calls `listener` when the set of VMs changed (libvirt: a domain was defined or undefined). */
  onVmsChanged(listener: () => void): () => void;
  /** Keep connected from now on: connect, and reconnect by itself after a drop. */
  start(): void;
  /** Stops reconnecting and disconnects every VM. */
  close(): Promise<void>;
}
