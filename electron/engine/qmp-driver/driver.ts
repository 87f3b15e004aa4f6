// The QMP driver: the VM-driver seam (engine/driver.ts) over one QMP connection (link.ts), the
// checkpoint engine, Tidemark's own metadata, and the QMP backup strategies. Reads of a VM whose
// QEMU is not running come from its recorded metadata when allowed (the CLI): list, get, current,
// dumpxml without sizes. Backups, pulls and the dirty map load on first use.

import type { BackupStatusInfo } from '../../../shared/contract';
import type { QuiesceOption, VmInfo } from '../../../shared/domain';
import type { AroundTransaction } from '../checkpoints/api';
import { RecordedCheckpoints, type CheckpointReader } from '../checkpoints/query';
import type { CheckpointEngine } from '../checkpoints/engine';
import type { BackupOps, CheckpointOps, DiskBitmaps, DriverCapabilities, DriverEvent, DriverEvents, RestoreHooks, VmDriver } from '../driver';
import { TypedEmitter } from '../emitter';
import type { DurableIdentity } from '../identity';
import { loadLater } from '../lazy';
import { readLiveBitmaps } from '../vm/discovery';
import { QmpLink, type QmpTarget } from './link';

// Specifiers of the modules loaded on first use (variables: see loadLater).
const PUSH = './push';
const PULL = './pull';
const QUIESCE = './quiesce';
const CONTROL = './backup-control';
const EXPORT_END = '../backup/control';
const RESTORE_HOOKS = './restore-hooks';
const DIRTY_MAP = '../dirtymap/dirtymap';

export const QMP_CAPABILITIES: DriverCapabilities = {
  layouts: ['independent', 'chained'],
  bitmapCounts: 'live',
  dirtyMap: true,
  localImages: true,
  metadata: 'tidemark',
  backupModes: ['push', 'pull'],
  exportOnly: true,
};

export interface QmpDriverOptions {
  /** THE VM id. */
  id: string;
  target: QmpTarget;
  stateDir: string;
  mode: 'eager' | 'on-demand';
  /** Answer checkpoint reads from recorded metadata while nothing runs at the endpoint. */
  offlineReads: boolean;
}

export class QmpVmDriver implements VmDriver {
  readonly id: string;
  readonly capabilities = QMP_CAPABILITIES;
  readonly link: QmpLink;
  readonly checkpoints: CheckpointOps;
  readonly backup: BackupOps;
  readonly restore: RestoreHooks;
  private readonly events = new TypedEmitter<DriverEvents>();
  /** Disk → format node, from the last discovery (for the bitmap poll). */
  private nodes: Map<string, string> | undefined;
  /** Set when the metadata changed on disk since the engine last read it. */
  private stale = false;
  private known: DurableIdentity | undefined;

  constructor(private readonly o: QmpDriverOptions) {
    this.id = o.id;
    this.link = new QmpLink(o.target, {
      stateDir: o.stateDir,
      mode: o.mode,
      onState: () => this.events.emit('state', { connection: this.link.state, ...(this.link.detail !== undefined ? { detail: this.link.detail } : {}) }),
      onOpen: (engine, client) => {
        this.nodes = undefined; // filled by the first bitmap poll
        this.stale = false;
        this.known = { key: engine.vmId };
        client.onEvent((e) => {
          if (e.event === 'JOB_STATUS_CHANGE') this.events.emit('job', { jobId: String(e.data.id), status: String(e.data.status) });
        });
      },
    });
    this.checkpoints = this.checkpointOps();
    this.backup = this.backupOps();
    this.restore = {
      // The in-place restore opens every image without sharing: QEMU's own lock refuses a running VM's images.
      assertStopped: async () => undefined,
      recordInPlace: async (r) => {
        const mod = await loadLater<typeof import('./restore-hooks')>(() => require('./restore-hooks'), () => import(RESTORE_HOOKS));
        return mod.metadataRestoreHooks(this.o.stateDir, r.backup.vm.id).recordInPlace(r);
      },
    };
  }

  summary() {
    const link = this.link;
    const t = this.o.target;
    const s = { id: this.id, label: t.label(), endpoint: link.state === 'connected' && link.connectedAt ? link.connectedAt : t.endpoint(), kind: t.kind, connection: link.state };
    return link.detail !== undefined && link.state !== 'connected' ? { ...s, detail: link.detail } : s;
  }

  identity(): DurableIdentity | undefined {
    return this.link.engine ? (this.known ?? { key: this.link.engine.vmId }) : this.o.target.remembered();
  }

  async ready(): Promise<void> {
    await this.link.ensure();
  }

  on<E extends DriverEvent>(event: E, listener: (payload: DriverEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  invalidate(): void {
    this.stale = true;
  }

  private remember(vm: VmInfo): VmInfo {
    this.nodes = new Map(vm.disks.map((d) => [d.name, d.nodeName]));
    this.known = { key: vm.id, ...(vm.name ? { name: vm.name } : {}), ...(vm.uuid ? { uuid: vm.uuid } : {}) };
    return vm;
  }

  /** The engine, with its metadata re-read first if another process changed it. */
  private async engine(): Promise<CheckpointEngine> {
    const engine = await this.link.ensure();
    if (this.stale) {
      this.stale = false;
      this.remember(await engine.vm());
    }
    return engine;
  }

  /** What checkpoint reads go to: the live engine, or the recorded metadata of a VM that is not running. */
  private async reader(): Promise<CheckpointReader> {
    try {
      return await this.engine();
    } catch (err) {
      const key = this.o.offlineReads && this.o.target.nothingRuns(err) ? this.identity()?.key : undefined;
      if (key === undefined) throw err; // never connected: no recorded identity to read
      return new RecordedCheckpoints(this.o.stateDir, key, this.o.target.recordedName());
    }
  }

  async info(): Promise<VmInfo> {
    return this.remember(await (await this.engine()).vm());
  }

  async health() {
    return { ...(await (await this.engine()).health()), vmId: this.id };
  }

  async liveBitmaps(): Promise<DiskBitmaps[]> {
    const client = this.link.liveClient();
    const engine = await this.link.ensure();
    if (!this.nodes) this.remember(await engine.vm());
    return readLiveBitmaps(client, this.nodes!);
  }

  async dirtyMap(disk: string, since: string, buckets?: number) {
    const engine = await this.engine();
    const mod = await loadLater<typeof import('../dirtymap/dirtymap')>(() => require('../dirtymap/dirtymap'), () => import(DIRTY_MAP));
    return mod.readDirtyMap({ qmp: this.link.liveClient(), engine, stateDir: this.o.stateDir, vmId: this.id }, { disk, since, buckets });
  }

  async close(): Promise<void> {
    await this.link.close();
  }

  /** Quiesce: the guest agent freeze around one transaction (loaded only when asked for). */
  private async around(q: QuiesceOption, log?: (line: string) => void): Promise<AroundTransaction> {
    const mod = await loadLater<typeof import('./quiesce')>(() => require('./quiesce'), () => import(QUIESCE));
    await mod.checkGuestAgent(this.link.liveClient(), q);
    return mod.quiesceAround(this.link.liveClient(), q, log);
  }

  private checkpointOps(): CheckpointOps {
    return {
      list: async (filter) => (await this.reader()).list(filter),
      get: async (name) => (await this.reader()).get(name),
      current: async () => (await this.reader()).current(),
      parent: async (name) => {
        const r = await this.reader();
        const p = r.get(name).parent;
        return p === undefined ? undefined : r.list().find((c) => c.name === p);
      },
      create: async (options) => {
        const { quiesce, ...rest } = options;
        const engine = await this.engine();
        return engine.create(rest, quiesce ? await this.around(quiesce) : undefined);
      },
      delete: async (name, mode) => (await this.engine()).delete(name, mode),
      changesSince: async (name) => (await this.engine()).changesSince(name),
      dumpXml: async (name, options) => (await this.reader()).dumpXml(name, options ?? {}),
      createFromXml: async (xml, options) => (await this.engine()).createFromXml(xml, { ...(options?.validate !== undefined ? { validate: options.validate } : {}) }),
      redefine: async (xml, options) => (await this.engine()).createFromXml(xml, { redefine: true, ...(options?.validate !== undefined ? { validate: options.validate } : {}) }),
    };
  }

  private backupOps(): BackupOps {
    const control = () => loadLater<typeof import('./backup-control')>(() => require('./backup-control'), () => import(CONTROL));
    return {
      begin: async (spec, reporter) => {
        const engine = await this.engine();
        const client = this.link.liveClient();
        const around = spec.quiesce ? await this.around(spec.quiesce, (l) => reporter.log(l)) : undefined;
        const point = { repo: spec.repo, full: spec.full, since: spec.since, checkpoint: spec.checkpoint, disks: spec.disks, reporter, ...(around ? { aroundTransaction: around } : {}) };
        if (spec.mode === 'push') {
          const { runBackup } = await loadLater<typeof import('./push')>(() => require('./push'), () => import(PUSH));
          const m = await runBackup(engine, client, { ...point, stateDir: this.o.stateDir, speedMiBps: spec.speedMiBps });
          return { backupId: m.id, manifest: m, ...(m.checkpoint ? { checkpoint: m.checkpoint } : {}), scratchPeakBytes: 0 };
        }
        const { runPull } = await loadLater<typeof import('./pull')>(() => require('./pull'), () => import(PULL));
        const r = await runPull(engine, client, {
          ...point, stateDir: this.o.stateDir, fleeceDir: spec.scratch?.dir,
          ...(spec.scratch?.maxBytes !== undefined ? { fleece: { maxBytes: spec.scratch.maxBytes } } : {}),
          ...(spec.exportOnly ? { exportOnly: spec.exportOnly } : {}),
        });
        return r.mode === 'repository'
          ? { backupId: r.backupId, manifest: r.manifest, ...(r.manifest.checkpoint ? { checkpoint: r.manifest.checkpoint } : {}), scratchPeakBytes: r.fleecePeakBytes }
          : { backupId: r.backupId, ...(r.checkpoint ? { checkpoint: r.checkpoint } : {}), scratchPeakBytes: r.fleecePeakBytes };
      },
      // Through the repository only: the process holding the exports may hold the VM's only free QMP socket.
      end: async (repo, outcome) => {
        const mod = await loadLater<typeof import('../backup/control')>(() => require('../backup/control'), () => import(EXPORT_END));
        const key = this.identity()?.key ?? mod.runningExports(repo).find((x) => x.endpoint === this.o.target.endpoint())?.vmKey;
        if (key === undefined) throw new Error(`no pull backup of VM ${this.o.target.label()} is running in ${repo.root}`);
        return mod.requestExportEnd(repo, key, outcome);
      },
      status: async (repo) => {
        const engine = await this.link.ensure();
        const st = await (await control()).backupStatus(repo, engine.vmId, this.link.client);
        const none: BackupStatusInfo = { running: false, stale: false, progress: [], log: [] };
        if (!st.journal) return none;
        const j = st.journal;
        const progress = st.jobs?.length ? st.jobs.map((x) => ({ disk: x.disk, done: x.done, total: x.total })) : j.progress;
        const out: BackupStatusInfo = { running: st.running, stale: st.stale, backupId: j.backupId, phase: j.phase, pid: j.pid, startedAt: j.startedAt, kind: j.kind, progress, log: j.log };
        if (j.since !== undefined) out.since = j.since;
        if (j.checkpoint !== undefined) out.checkpoint = j.checkpoint;
        return out;
      },
      cancel: async (repo) => {
        const engine = await this.engine();
        return (await control()).cancelBackup(engine, this.link.liveClient(), repo);
      },
    };
  }
}
