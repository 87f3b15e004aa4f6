// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DirtyMap, JobInfo } from '../../../shared/contract';
import { StoreProvider } from '../store/context';
import { createStore } from '../store/store';
import { checkpoint, disk, FakeApi, MiB, vmInfo } from '../test/fake-api';
import type { PullSession } from '../store/types';
import { DirtyMapSection } from './DirtyMap';
import { JobCard, JobsPanel } from './JobsPanel';
import { exportCommands, PullExportCard, shellQuote } from './PullExportCard';
import { VmPanel } from './VmPanel';

afterEach(cleanup);

const map = (over: Partial<DirtyMap> = {}): DirtyMap => ({
  vmId: 'demo', disk: 'vda', since: 'base', granularity: 65536, virtualSize: 1024 * MiB,
  extents: [], dirtyBytes: 8 * MiB, buckets: [0, 0.5, 0, 1], bucketBytes: 256 * MiB, at: 1, elapsedMs: 12, ...over,
});

function setupApi() {
  return new FakeApi()
    .handle('vm:list', () => [
      { id: 'demo', label: 'Demo VM', endpoint: 'unix:/q', kind: 'demo', connection: 'connected' },
      { id: 'far', label: 'Far', endpoint: 'tcp:10.1.1.1:4444', kind: 'endpoint', connection: 'disconnected', detail: 'ECONNREFUSED' },
    ])
    .handle('lab:status', () => ({ running: true, qmp: '', qmpSecondary: '', disks: [] }))
    .handle('job:list', () => [])
    .handle('vm:info', () => vmInfo('uuid-1', [disk('vda'), disk('vdc', { bitmapCapable: false, bitmapIncapableReason: 'qcow2 v2 (compat 0.10) cannot store persistent bitmaps' })]))
    .handle('checkpoint:list', () => [checkpoint('base', undefined, 1000, ['vda'])])
    .handle('checkpoint:current', () => checkpoint('base', undefined, 1000, ['vda']))
    .handle('vm:health', () => ({
      vmId: 'uuid-1', checkedAt: 1, issues: [{ state: 'bitmap-inconsistent', severity: 'error', disk: 'vda', checkpoint: 'base', bitmap: 'base', message: 'bitmap base on vda is inconsistent', consequence: 'the next backup of vda will be full' }],
    }))
    .handle('backup:list', () => ({ repo: '/r', backups: [], problems: [] }));
}

describe('<DirtyMapSection>', () => {
  it('lists, per disk with a bitmap, the dirty bytes, the cells by kind and the dirty ranges of the live map', async () => {
    const api = setupApi();
    api.handle('dirtymap:get', (_vm, d, since) => map({
      disk: d, since, buckets: [1, 0.5, 0, 0],
      extents: [{ offset: 0, length: 8 * MiB, dirty: true }, { offset: 8 * MiB, length: 1016 * MiB, dirty: false }],
    }));
    const store = createStore(api);
    await store.getState().start();
    await waitFor(() => expect(store.getState().byVm.demo?.info).toBeDefined());
    const cp = checkpoint('base', undefined, 1000, ['vda']);
    render(<StoreProvider store={store}><DirtyMapSection checkpoint={cp} disks={store.getState().byVm.demo!.info!.disks} /></StoreProvider>);
    // Not watched yet: it says so instead of fetching on its own.
    expect(screen.getByRole('table', { name: 'Dirty regions since base' }).textContent).toContain('reading the dirty map…');
    expect(api.callsTo('dirtymap:get')).toEqual([]);
    await act(async () => store.getState().watchDirtyMaps({ vmId: 'demo', since: 'base', disks: ['vda'], cells: 4 }));
    const row = await screen.findByText('0–8 MiB');
    expect(row.closest('tr')!.textContent).toBe('vda8.0 MiB of 1.0 GiB (0.8%)█ 1 · ▄ 1 · ▁ 20–8 MiB');
    expect(screen.queryByText(/vdc/)).toBeNull(); // no bitmaps there: nothing to map
    store.getState().stop();
  });

  it('shows why a map cannot be read', async () => {
    const api = setupApi();
    api.handle('dirtymap:get', () => {
      throw new Error('NBD export failed: bitmap base is busy');
    });
    const store = createStore(api);
    await store.getState().start();
    await waitFor(() => expect(store.getState().byVm.demo?.info).toBeDefined());
    render(<StoreProvider store={store}><DirtyMapSection checkpoint={checkpoint('base', undefined, 1000, ['vda'])} disks={store.getState().byVm.demo!.info!.disks} /></StoreProvider>);
    await act(async () => store.getState().watchDirtyMaps({ vmId: 'demo', since: 'base', disks: ['vda'], cells: 4 }));
    expect((await screen.findByText(/cannot read the dirty map/)).textContent).toBe('cannot read the dirty map: NBD export failed: bitmap base is busy');
    store.getState().stop();
  });
});

describe('<PullExportCard>', () => {
  const session = (repo?: string): PullSession => ({
    vmId: 'demo', jobId: 'job-1', ...(repo ? { repo } : {}),
    exports: [
      { disk: 'vda', kind: 'incremental', since: 'c1', uri: 'nbd+unix:///tidemark-pull-ab?socket=/state/run/nbd-1.sock', exportName: 'tidemark-pull-ab', dirtyContext: 'qemu:dirty-bitmap:tidemark-tmp-bk-1', size: 1024 * MiB },
      { disk: 'vdc', kind: 'full', uri: "nbd+unix:///tidemark-pull-cd?socket=/it's here/nbd.sock", exportName: 'tidemark-pull-cd', size: 64 * MiB },
    ],
  });

  it('quotes for the shell and offers the map, info and copy commands', () => {
    expect(shellQuote('plain/path.raw')).toBe('plain/path.raw');
    expect(shellQuote("a b'c")).toBe("'a b'\\''c'");
    const [vda, vdc] = session().exports;
    expect(exportCommands(vda!).map((c) => c.command)).toEqual([
      "nbdinfo --map=qemu:dirty-bitmap:tidemark-tmp-bk-1 'nbd+unix:///tidemark-pull-ab?socket=/state/run/nbd-1.sock'",
      "nbdinfo 'nbd+unix:///tidemark-pull-ab?socket=/state/run/nbd-1.sock'",
      "nbdcopy --progress 'nbd+unix:///tidemark-pull-ab?socket=/state/run/nbd-1.sock' vda.raw",
    ]);
    expect(exportCommands(vdc!).map((c) => c.label)).toEqual(['export info', 'full copy']); // a full export has no dirty map
    expect(exportCommands(vdc!)[0]!.command).toBe("nbdinfo 'nbd+unix:///tidemark-pull-cd?socket=/it'\\''s here/nbd.sock'");
  });

  it('copies a URI to the clipboard, or selects it when the clipboard is refused', async () => {
    const store = createStore(setupApi());
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    render(<StoreProvider store={store}><PullExportCard session={session()} /></StoreProvider>);
    const vda = screen.getByRole('region', { name: 'Export of vda' });
    expect(vda.textContent).toContain('incremental since c1: the dirty regions are in qemu:dirty-bitmap:tidemark-tmp-bk-1');
    await act(async () => fireEvent.click(within(vda).getByRole('button', { name: 'Copy NBD URI of vda' })));
    expect(writeText).toHaveBeenCalledWith('nbd+unix:///tidemark-pull-ab?socket=/state/run/nbd-1.sock');
    expect(vda.textContent).toContain('✓ NBD URI copied');
    writeText.mockRejectedValue(new Error('Write permission denied.'));
    const vdc = screen.getByRole('region', { name: 'Export of vdc' });
    await act(async () => fireEvent.click(within(vdc).getByRole('button', { name: 'Copy NBD URI of vdc' })));
    const field = within(vdc).getByRole('textbox', { name: 'NBD URI of vdc' }) as HTMLTextAreaElement;
    expect(document.activeElement).toBe(field);
    expect([field.selectionStart, field.selectionEnd]).toEqual([0, field.value.length]);
    expect(vdc.textContent).toContain('Selected: press Ctrl+C to copy');
    Reflect.deleteProperty(navigator, 'clipboard');
  });

  it('ends the pull with the outcome, in the repository the pull holds', async () => {
    const api = setupApi().handle('pull:end', () => ({ backupId: 'p1' }));
    const store = createStore(api);
    render(<StoreProvider store={store}><PullExportCard session={session('/mnt/repo')} /></StoreProvider>);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: '✓ External copy succeeded' })));
    expect(api.callsTo('pull:end')).toEqual([['demo', 'success', '/mnt/repo']]);
    cleanup();
    const other = createStore(api);
    render(<StoreProvider store={other}><PullExportCard session={session()} /></StoreProvider>);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: '✕ External copy failed' })));
    expect(api.callsTo('pull:end')[1]).toEqual(['demo', 'failure']); // no trailing undefined (JSON null)
  });

  it('appears in Jobs for an open export-only pull, read back from its log after a reload', async () => {
    const job: JobInfo = {
      id: 'job-9', kind: 'pull', vmId: 'demo', state: 'running', title: 'Pull backup (export only)', startedAt: Date.now(), progress: [],
      log: ['started: Pull backup (export only)', 'vda: nbd+unix:///tidemark-pull-ab?socket=/s/nbd.sock (changes since c1: qemu:dirty-bitmap:tidemark-tmp-bk-1)', 'waiting for backup-end'],
    };
    const api = setupApi().handle('job:list', () => [job]);
    const store = createStore(api);
    await store.getState().start();
    render(<StoreProvider store={store}><JobsPanel /></StoreProvider>);
    const vda = await screen.findByRole('region', { name: 'Export of vda' });
    expect(within(vda).getByRole('textbox', { name: 'NBD URI of vda' }).textContent).toBe('nbd+unix:///tidemark-pull-ab?socket=/s/nbd.sock');
    expect(within(vda).getByRole('textbox', { name: /^nbdinfo command for vda: which regions changed since c1/ })).toBeTruthy();
    await act(async () => api.emit('job:update', { ...job, state: 'failed', error: 'cancelled' }));
    expect(screen.queryByRole('region', { name: 'Export of vda' })).toBeNull();
  });
});

describe('<JobCard>', () => {
  const job: JobInfo = {
    id: 'j1', kind: 'backup', vmId: 'demo', state: 'running', title: 'Backup (full) to /r', startedAt: Date.now() - 2000,
    progress: [{ disk: 'vda', done: 3 * MiB, total: 12 * MiB }, { disk: 'vdb', done: 0, total: 0 }], log: ['vda: started', 'vdb: nothing to copy'],
  };

  it('shows a determinate bar per disk in bytes to copy, and the log', () => {
    render(<JobCard job={job} />);
    const bars = screen.getAllByRole('progressbar');
    expect(bars.map((b) => [b.getAttribute('aria-label'), b.getAttribute('value')])).toEqual([['Backup (full) to /r: vda', '25'], ['Backup (full) to /r: vdb', '100']]);
    expect(screen.getByText('3.0 MiB / 12.0 MiB (25%)')).toBeTruthy();
    expect(screen.getByText('Log (2 lines)')).toBeTruthy();
    expect(screen.queryByRole('button', { name: /Cancel/ })).toBeNull(); // no onCancel: the dialog has its own
  });

  it('cancels a running job and reports a refusal', async () => {
    const onCancel = vi.fn().mockRejectedValue(new Error('job j1 has already ended'));
    render(<JobCard job={job} onCancel={onCancel} />);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Cancel Backup (full) to /r' })));
    expect(onCancel).toHaveBeenCalledWith('j1');
    expect(screen.getByRole('alert').textContent).toBe('Could not cancel: job j1 has already ended');
  });
});

describe('<VmPanel>', () => {
  it('lists VMs with their connection in words, and disks with health as glyph, words and consequence', async () => {
    const api = setupApi();
    const store = createStore(api);
    await store.getState().start();
    render(<StoreProvider store={store}><VmPanel /></StoreProvider>);
    await waitFor(() => expect(screen.getByRole('region', { name: 'Disks' })).toBeTruthy());
    const vms = within(screen.getByRole('list', { name: 'Virtual machine list' })).getAllByRole('listitem');
    expect(vms.map((li) => li.querySelector('.conn')!.textContent)).toEqual(['● connected', '○ disconnected — ECONNREFUSED']);
    const vda = screen.getByRole('region', { name: 'Disks' }).querySelector('[data-disk="vda"]')!;
    expect(vda.textContent).toContain('✕ Error: bitmap base on vda is inconsistent');
    expect(vda.textContent).toContain('→ the next backup of vda will be full');
    const vdc = screen.getByRole('region', { name: 'Disks' }).querySelector('[data-disk="vdc"]')!;
    expect(vdc.textContent).toContain('⊘ No bitmaps: qcow2 v2 (compat 0.10) cannot store persistent bitmaps');
  });

  it('adds an endpoint, and shows the engine refusal without adding anything', async () => {
    const api = setupApi();
    api.handle('vm:add', (endpoint) => {
      throw new Error(`endpoint ${JSON.stringify(endpoint)} is not unix:PATH or tcp:HOST:PORT`);
    });
    const store = createStore(api);
    await store.getState().start();
    render(<StoreProvider store={store}><VmPanel /></StoreProvider>);
    fireEvent.change(screen.getByLabelText('QMP endpoint or libvirt URI'), { target: { value: 'ftp://x' } });
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Add VM' })));
    expect(api.callsTo('vm:add')).toEqual([['ftp://x']]); // no trailing undefined: JSON would make it null
    expect(screen.getByRole('alert').textContent).toBe('endpoint "ftp://x" is not unix:PATH or tcp:HOST:PORT');
    expect(store.getState().vms).toHaveLength(2);
  });

  it('lists libvirt domains with their state, a connection without domains as a row of its own, and removes the whole connection', async () => {
    const api = setupApi();
    const uri = 'qemu+ssh://root@h1/system';
    api.handle('vm:list', () => [
      { id: `${uri}#0b5a3c8e-1f2d-4c3b-9a8e-7d6c5b4a3f21`, label: 'web1', endpoint: uri, kind: 'libvirt', connection: 'connected', connectionId: 'lv-1', domainState: 'running' },
      { id: `${uri}#1b5a3c8e-1f2d-4c3b-9a8e-7d6c5b4a3f21`, label: 'db1', endpoint: uri, kind: 'libvirt', connection: 'connected', connectionId: 'lv-1', domainState: 'shutoff' },
      { id: 'lv-2', label: 'qemu+ssh://h2/system', endpoint: 'qemu+ssh://h2/system', kind: 'libvirt', connection: 'disconnected', connectionId: 'lv-2', detail: 'cannot connect' },
    ]);
    api.handle('vm:remove', () => undefined);
    const store = createStore(api);
    await store.getState().start();
    render(<StoreProvider store={store}><VmPanel /></StoreProvider>);
    const list = screen.getByRole('list', { name: 'Virtual machine list' });
    const rows = within(list).getAllByRole('listitem');
    expect(rows.map((r) => r.querySelector('[data-domain-state]')?.textContent ?? null)).toEqual(['running', 'shut off', null]);
    expect(rows[2]!.querySelector('button.vm-select')).toBeNull(); // nothing to select behind a connection row
    expect(rows[2]!.textContent).toContain('○ disconnected — cannot connect');
    expect(within(list).getAllByRole('button', { name: /^Remove connection/ })).toHaveLength(2);
    await act(async () => fireEvent.click(within(rows[0]!).getByRole('button', { name: `Remove connection ${uri}` })));
    expect(api.callsTo('vm:remove')).toEqual([['lv-1']]);
  });
});
