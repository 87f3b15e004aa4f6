// The page: top bar, VMs panel (collapsible), action bar, timeline, details and jobs; dialogs on
// top. Keyboard: skip links to the timeline and the details, Delete on a checkpoint opens the
// delete dialog, Escape clears the selection, and focus lands on something that exists after
// every dialog (the new or surviving checkpoint in the tree, else the button that opened it).

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { Checkpoint } from '../../shared/domain';
import { DetailsPanel } from './components/DetailsPanel';
import { JobsPanel } from './components/JobsPanel';
import { Legend } from './components/Legend';
import { VmPanel } from './components/VmPanel';
import { BackupDialog } from './dialogs/BackupDialog';
import { CreateCheckpointDialog } from './dialogs/CreateCheckpointDialog';
import { DeleteDialog } from './dialogs/DeleteDialog';
import { RestoreDialog } from './dialogs/RestoreDialog';
import { RetentionDialog } from './retention/RetentionDialog';
import { WriteSimDialog } from './dialogs/WriteSimDialog';
import { BackupsView } from './inventory/BackupsView';
import { FleetView } from './inventory/FleetView';
import { focusInventory, type Page } from './inventory/pages';
import { backupMarks } from './model/backup-marks';
import { isSameVm } from './model/vm-ids';
import { useApp, useAppStore } from './store/context';
import { changedFigures } from './store/figures';
import { dirtyMapTarget } from './store/dirtymap-target';
import { emptyVmView } from './store/types';
import { shortName } from './format';
import { lastSizeRef, type BoxSize } from './scroll-box';
import { HEATMAP_CELLS } from './timeline/heatmap';
import { Timeline } from './timeline/Timeline';
import { schedulesOfVm } from './timeline/schedule-marks';

type DialogState =
  | { kind: 'create' }
  | { kind: 'delete'; target: string }
  | { kind: 'backup' }
  | { kind: 'restore'; backup?: string }
  | { kind: 'write' }
  | { kind: 'retention' };

/** Re-render every `ms` so ages and spans that run to "now" stay current (no engine polling). */
export function useClock(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

const NO_CHECKPOINTS: Checkpoint[] = [];

/** Below this window width the VMs panel starts closed (the timeline needs the room). */
const SIDEBAR_MIN_WINDOW = 1200;

/** Focuses the tree's tab stop (the selected, current or first checkpoint), else the timeline. */
export function focusTimeline(): void {
  const item = document.querySelector<HTMLElement>('#timeline [role="treeitem"][tabindex="0"]');
  (item ?? document.querySelector<HTMLElement>('#timeline'))?.focus();
}

/** Tells the store when the page is hidden: dirty maps are not read for a page nobody sees. */
function usePageVisibility(setVisible: (visible: boolean) => void): void {
  useEffect(() => {
    const update = () => setVisible(document.visibilityState !== 'hidden');
    update();
    document.addEventListener('visibilitychange', update);
    return () => document.removeEventListener('visibilitychange', update);
  }, [setVisible]);
}

export function App() {
  const clock = useClock(2000);
  const vms = useApp((s) => s.vms);
  const vmId = useApp((s) => s.selectedVmId);
  const view = useApp((s) => (s.selectedVmId !== undefined ? s.byVm[s.selectedVmId] : undefined));
  const selected = useApp((s) => s.selected);
  const select = useApp((s) => s.select);
  const announcement = useApp((s) => s.announcement);
  const pageError = useApp((s) => s.error);
  const transport = useApp((s) => s.transport);
  const createCheckpoint = useApp((s) => s.createCheckpoint);
  const deleteCheckpoint = useApp((s) => s.deleteCheckpoint);
  const startWrites = useApp((s) => s.startWrites);
  const records = useApp((s) => (s.selectedVmId !== undefined ? s.backups[s.selectedVmId] : undefined));
  const jobs = useApp((s) => s.jobs);
  const dirtyMaps = useApp((s) => s.dirtyMaps);
  const watchDirtyMaps = useApp((s) => s.watchDirtyMaps);
  const store = useAppStore();
  // The timeline's place, measured while the VM's data loads: the timeline draws its first render
  // at that size instead of measuring its own box first (a forced layout and a render more).
  const wrapSize = useRef<BoxSize>(undefined);
  const wrapRef = useMemo(() => lastSizeRef(wrapSize), []);
  const [dialog, setDialog] = useState<DialogState>();
  // Which view fills the main column (issue 12): the timeline, the VM's backups, or the fleet.
  const [page, setPage] = useState<Page>('timeline');
  const goTo = useCallback((p: Page) => {
    setPage(p);
    if (p === 'timeline') setTimeout(focusTimeline, 0);
    else focusInventory(p);
  }, []);
  const [openToken, setOpenToken] = useState(0);
  const [sidebarOpen, setSidebarOpen] = useState(() => typeof window === 'undefined' || window.innerWidth >= SIDEBAR_MIN_WINDOW);
  const [focusRequest, setFocusRequest] = useState<{ name: string; token: number }>();
  const requestFocus = useCallback((name: string) => setFocusRequest((f) => ({ name, token: (f?.token ?? 0) + 1 })), []);
  const clearSelection = useCallback(() => select(undefined), [select]);

  const vm = vms.find((v) => v.id === vmId);
  const v = view ?? emptyVmView();
  const checkpoints = view?.checkpoints ?? NO_CHECKPOINTS;
  const disks = useMemo(() => v.info?.disks ?? [], [v.info]);
  const issues = useMemo(() => v.health?.issues ?? [], [v.health]);
  const marks = useMemo(
    () => (vmId !== undefined ? backupMarks(records ?? [], checkpoints, Object.values(jobs), (id) => isSameVm(id, vmId, v.info), disks.map((d) => d.name)) : []),
    [records, checkpoints, jobs, vmId, disks, v.info],
  );
  const allSchedules = useApp((s) => s.schedules);
  const schedules = useMemo(() => (vmId !== undefined && allSchedules ? schedulesOfVm(allSchedules, vmId, v.info) : []), [allSchedules, vmId, v.info]);
  // "now" follows the clock, but never lags the newest live sample.
  const now = Math.max(clock, v.liveAt ?? 0);

  const connected = vm?.connection === 'connected';

  // The disk maps follow the timeline's baseline (the selected checkpoint, else the current one),
  // for the disks where it has a bitmap; the store reads them while they change.
  usePageVisibility(useMemo(() => (visible: boolean) => store.getState().setPageVisible(visible), [store]));
  const baseline = checkpoints.find((c) => c.name === (selected ?? v.current));
  // (Only while the timeline is shown: the other views draw no disk maps.) Watched from the store's
  // updates as well as on mount: the update that brings the VM's data starts the watch before React
  // renders it, so the maps' first state costs no render of its own.
  useEffect(() => {
    if (page !== 'timeline') {
      watchDirtyMaps(undefined);
      return;
    }
    // The watch's own update calls this again: the same target then changes nothing (watchDirtyMaps).
    const sync = () => watchDirtyMaps(dirtyMapTarget(store.getState(), HEATMAP_CELLS));
    sync();
    return store.subscribe(sync);
  }, [page, store, watchDirtyMaps]);
  const shownMaps = useMemo(() => {
    if (!dirtyMaps.target || dirtyMaps.target.vmId !== vmId || dirtyMaps.target.since !== baseline?.name) return undefined;
    if (connected) return dirtyMaps.disks;
    return Object.fromEntries(Object.entries(dirtyMaps.disks).map(([d, st]) => [d, { ...st, offline: true }]));
  }, [dirtyMaps, vmId, baseline?.name, connected]);

  const figures = useMemo(() => (view ? changedFigures(view, baseline?.name, disks, shownMaps) : undefined), [view, baseline?.name, disks, shownMaps]);

  const ready = connected && !!v.info;
  const noSelection = selected === undefined;
  const openDelete = useCallback((name: string) => {
    if (ready) setDialog({ kind: 'delete', target: name });
  }, [ready]);

  // Escape anywhere outside a dialog clears the selection (the checkpoint list comes back).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || e.defaultPrevented || document.querySelector('[role="dialog"]')) return;
      if (store.getState().selected !== undefined) clearSelection();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [store, clearSelection]);

  return (
    <div className={`app${sidebarOpen ? '' : ' sidebar-closed'}`}>
      <div className="skip-links">
        <a className="skip-link" href="#timeline" onClick={(e) => { e.preventDefault(); focusTimeline(); }}>Skip to the timeline</a>
        <a className="skip-link" href="#details" onClick={(e) => { e.preventDefault(); document.getElementById('details')?.focus(); }}>Skip to the checkpoint details</a>
        <a className="skip-link" href="#backups" onClick={(e) => { e.preventDefault(); goTo('backups'); }}>Skip to the backups table</a>
        <a className="skip-link" href="#fleet" onClick={(e) => { e.preventDefault(); goTo('fleet'); }}>Skip to the fleet overview</a>
      </div>
      <header className="topbar">
        <button
          type="button" className="sidebar-toggle" aria-controls="sidebar" aria-expanded={sidebarOpen}
          onClick={() => setSidebarOpen((o) => !o)} title={sidebarOpen ? 'Hide the VMs panel' : 'Show the VMs panel'}
        >
          <span aria-hidden="true">☰</span> VMs
        </button>
        <span className="brand"><span className="brand-mark" aria-hidden="true">◭</span>Tidemark</span>
        <nav className="page-nav" aria-label="Views">
          {(['timeline', 'backups', 'fleet'] as const).map((p) => (
            <button key={p} type="button" aria-current={page === p ? 'page' : undefined} onClick={() => goTo(p)}>{p === 'timeline' ? 'Timeline' : p === 'backups' ? 'Backups' : 'Fleet'}</button>
          ))}
        </nav>
        {vm && (
          <>
            <span className="vm-title" title={vm.label}>{vm.label}</span>
            <span className={`badge ${connected ? 'ok' : vm.connection === 'connecting' ? 'warn' : 'bad'}`}>
              {connected ? '● connected' : vm.connection === 'connecting' ? '◌ connecting' : '○ disconnected'}
            </span>
            {v.info && <span className="badge">{v.info.disks.length} disks · {checkpoints.length} checkpoints</span>}
          </>
        )}
        <span className="spacer" />
        <span className="badge" title="How this page reaches the engine">{transport}</span>
      </header>

      {sidebarOpen && <VmPanel />}

      {page !== 'timeline' && (
        <main className="main page-main" aria-label={page === 'fleet' ? 'Fleet overview' : 'Backups'} tabIndex={-1}>
          {pageError && <div className="alert" role="alert">Cannot reach the Tidemark engine: {pageError}</div>}
          {page === 'fleet' ? (
            <FleetView now={now} onOpen={(id, p) => { void store.getState().selectVm(id); goTo(p); }} />
          ) : vm ? (
            <BackupsView key={vm.id} vm={vm} now={now} onRestore={v.info ? (backup) => setDialog({ kind: 'restore', backup }) : undefined} />
          ) : (
            <div className="empty-timeline muted">Select or add a VM.</div>
          )}
        </main>
      )}

      {page === 'timeline' && <main className="main" aria-label="Checkpoints and backups" tabIndex={-1}>
        <div className="actionbar" role="toolbar" aria-label="Actions">
          <button type="button" className="primary" disabled={!ready} onClick={() => setDialog({ kind: 'create' })}>Create checkpoint</button>
          <button type="button" disabled={!ready} onClick={() => setDialog({ kind: 'backup' })}>Back up</button>
          <button type="button" disabled={!v.info} onClick={() => setDialog({ kind: 'restore' })}>Restore</button>
          <button type="button" disabled={!vm} onClick={() => setDialog({ kind: 'retention' })} title="Simulate a keep policy, then prune and merge">Retention…</button>
          <button type="button" disabled={!ready || noSelection} onClick={() => selected !== undefined && openDelete(selected)} title="Delete the selected checkpoint (Delete key in the tree)">
            Delete checkpoint
          </button>
          <span className="sep" />
          <button type="button" disabled={!ready || vm?.kind !== 'demo'} onClick={() => setDialog({ kind: 'write' })} title={vm?.kind !== 'demo' ? 'Only for the demo VM' : undefined}>
            Simulate writes
          </button>
          <span className="spacer" />
          <span className="selection-info" aria-live="polite" title={selected}>
            {!vm ? 'No VM selected' : !connected ? `${vm.label} is ${vm.connection}${vm.detail ? `: ${vm.detail}` : ''}` : selected ? `Selected: ${shortName(selected, 40)} (Escape clears)` : 'Select a checkpoint (click, or the tree’s arrow keys) to see what changed since it'}
          </span>
        </div>

        <div className="timeline-wrap" ref={wrapRef}>
          {pageError && <div className="alert" role="alert">Cannot reach the Tidemark engine: {pageError}</div>}
          {vm && v.info ? (
            <>
              <Timeline
                boxHint={wrapSize.current}
                vmLabel={vm.label}
                checkpoints={checkpoints}
                current={v.current}
                disks={disks}
                live={v.live}
                samples={v.samples}
                issues={issues}
                backups={marks}
                now={now}
                selected={selected}
                onSelect={select}
                onOpen={(name) => {
                  select(name);
                  setOpenToken((t) => t + 1);
                }}
                onDelete={openDelete}
                onClearSelection={clearSelection}
                focusRequest={focusRequest}
                figures={figures}
                dirtyMaps={shownMaps}
                schedules={schedules}
              />
              <Legend />
            </>
          ) : (
            <div className="empty-timeline muted">{vm ? (v.loading ? 'Loading…' : v.error ?? `${vm.label} is ${vm.connection}.`) : 'Select or add a VM.'}</div>
          )}
        </div>

        <div className="bottom">
          <DetailsPanel now={now} openToken={openToken} backups={marks} figures={figures} />
          <JobsPanel />
        </div>
      </main>}

      <div className="visually-hidden" aria-live="polite" role="status">{announcement}</div>

      {dialog?.kind === 'create' && v.info && vm && (
        <CreateCheckpointDialog
          vm={v.info} vmLabel={vm.label} checkpoints={checkpoints} current={v.current} now={Date.now()}
          onCreate={async (options) => {
            const cp = await createCheckpoint(options);
            requestFocus(cp.name);
            return cp;
          }}
          onClose={() => setDialog(undefined)}
        />
      )}
      {dialog?.kind === 'delete' && vm && (
        <DeleteDialog
          vmLabel={vm.label} checkpoints={checkpoints} target={dialog.target} current={v.current}
          onDelete={async (name, mode) => {
            // Afterwards the selection and the keyboard focus move to what is left: the parent, else NOW's checkpoint.
            const parent = checkpoints.find((c) => c.name === name)?.parent;
            const result = await deleteCheckpoint(name, mode);
            const left = store.getState().byVm[vmId ?? '']?.checkpoints ?? [];
            const next = mode === 'children-only' ? name : [parent, store.getState().byVm[vmId ?? '']?.current].find((n) => n !== undefined && left.some((c) => c.name === n));
            select(next);
            if (next !== undefined) requestFocus(next);
            return result;
          }}
          onClose={() => setDialog(undefined)}
        />
      )}
      {dialog?.kind === 'write' && v.info && (
        <WriteSimDialog disks={v.info.disks} onStart={startWrites} onClose={() => setDialog(undefined)} />
      )}
      {dialog?.kind === 'backup' && v.info && vm && (
        <BackupDialog vm={vm} info={v.info} checkpoints={checkpoints} current={v.current} selected={selected} onClose={() => setDialog(undefined)} />
      )}
      {dialog?.kind === 'retention' && vm && <RetentionDialog vm={vm} onClose={() => setDialog(undefined)} />}
      {dialog?.kind === 'restore' && v.info && vm && (
        <RestoreDialog vm={vm} info={v.info} checkpoints={checkpoints} current={v.current} live={v.live} initialBackup={dialog.backup} onClose={() => setDialog(undefined)} />
      )}
    </div>
  );
}
