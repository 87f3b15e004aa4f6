// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DirtyMap, JobInfo } from '../../../shared/contract';
import { StoreProvider } from '../store/context';
import { createStore } from '../store/store';
import { checkpoint, disk, FakeApi, MiB, vmInfo } from '../test/fake-api';
import { DirtyMapSection, DirtyStrip } from './DirtyMap';
import { JobCard } from './JobsPanel';
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

describe('<DirtyStrip>', () => {
  it('shades only the regions that changed and says the figures in words', () => {
    const { container } = render(<DirtyStrip map={map()} />);
    const cells = container.querySelectorAll('rect.dm-cell');
    expect([...cells].map((c) => c.getAttribute('opacity'))).toEqual(['0.625', '1']);
    expect(screen.getByRole('img').getAttribute('aria-label')).toBe('vda: 8.0 MiB changed since base (128 granules of 64.0 KiB); 4 regions of 256 MiB');
  });
});

describe('<DirtyMapSection>', () => {
  it('reads one map per disk with a bitmap on request, and shows a clear error when it fails', async () => {
    const api = setupApi();
    let fail = false;
    api.handle('dirtymap:get', (_vm, d, since, buckets) => {
      if (fail) throw new Error('NBD export failed: bitmap base is busy');
      return map({ disk: d, since, buckets: new Array(buckets).fill(0) });
    });
    const store = createStore(api);
    await store.getState().start();
    await waitFor(() => expect(store.getState().byVm.demo?.info).toBeDefined());
    render(<StoreProvider store={store}><DirtyMapSection checkpoint={checkpoint('base', undefined, 1000, ['vda'])} disks={store.getState().byVm.demo!.info!.disks} /></StoreProvider>);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Map the changed blocks' })));
    expect(api.callsTo('dirtymap:get')).toEqual([['demo', 'vda', 'base', 128]]);
    expect(screen.getAllByRole('img')).toHaveLength(1);
    fail = true;
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Refresh the dirty map' })));
    expect(screen.getByRole('alert').textContent).toBe('Could not read the dirty map: NBD export failed: bitmap base is busy');
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
    fireEvent.change(screen.getByLabelText('QMP endpoint'), { target: { value: 'ftp://x' } });
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Add VM' })));
    expect(api.callsTo('vm:add')).toEqual([['ftp://x']]); // no trailing undefined: JSON would make it null
    expect(screen.getByRole('alert').textContent).toBe('endpoint "ftp://x" is not unix:PATH or tcp:HOST:PORT');
    expect(store.getState().vms).toHaveLength(2);
  });
});
