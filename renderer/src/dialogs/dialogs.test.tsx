// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { ReactNode } from 'react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackupRecord, JobInfo, VmSummary } from '../../../shared/contract';
import { StoreProvider } from '../store/context';
import { createStore } from '../store/store';
import { checkpoint, disk, FakeApi, MiB, vmInfo } from '../test/fake-api';
import { BackupDialog } from './BackupDialog';
import { estimateBytes, incrementalBase } from './backup-plan';
import { CreateCheckpointDialog } from './CreateCheckpointDialog';
import { DeleteDialog, planDelete } from './DeleteDialog';
import { RestoreDialog } from './RestoreDialog';

afterEach(cleanup);

const disks = [disk('vda'), disk('vdb', { virtualSize: 512 * MiB }), disk('vdc', { virtualSize: 64 * MiB, bitmapCapable: false, bitmapIncapableReason: 'qcow2 v2 (compat 0.10)' })];
const info = vmInfo('uuid-1', disks);

// a ─ b ─ c
//      └─ d
const chain = (layout: 'independent' | 'chained') => [
  checkpoint('a', undefined, 1000, ['vda', 'vdb'], layout),
  checkpoint('b', 'a', 2000, ['vda', 'vdb'], layout),
  checkpoint('c', 'b', 3000, ['vda'], layout),
  checkpoint('d', 'b', 4000, ['vda', 'vdb'], layout),
];

describe('planDelete: exactly what goes', () => {
  it('plain: the checkpoint alone; its children move up to its parent', () => {
    const p = planDelete(chain('independent'), 'b', 'plain');
    expect(p.deleted).toEqual(['b']);
    expect(p.reparented).toEqual([{ name: 'c', parent: 'a' }, { name: 'd', parent: 'a' }]);
    expect(p.bitmapEffects).toEqual(['vda: bitmap b is removed.', 'vdb: bitmap b is removed.']);
  });

  it('children: the whole subtree; children-only keeps the checkpoint', () => {
    expect(planDelete(chain('independent'), 'b', 'children').deleted).toEqual(['b', 'c', 'd']);
    expect(planDelete(chain('independent'), 'b', 'children-only').deleted).toEqual(['c', 'd']);
    expect(planDelete(chain('independent'), 'c', 'children-only').deleted).toEqual([]);
  });

  it('chained: a bitmap is merged into its predecessor on that disk, unless that goes too', () => {
    expect(planDelete(chain('chained'), 'd', 'plain').bitmapEffects).toEqual([
      'vda: bitmap d is merged into b, then removed — b then covers its interval.',
      'vdb: bitmap d is merged into b, then removed — b then covers its interval.',
    ]);
    expect(planDelete(chain('chained'), 'a', 'plain').bitmapEffects[0]).toBe('vda: bitmap a is removed (no older bitmap to merge into).');
    // A subtree: deepest first, each merged into its predecessor at that moment → all of it ends in a.
    expect(planDelete(chain('chained'), 'b', 'children').bitmapEffects).toEqual([
      'vda: bitmap c is merged into b, then removed — b then covers its interval.',
      'vda: bitmap d is merged into b, then removed — b then covers its interval.',
      'vdb: bitmap d is merged into b, then removed — b then covers its interval.',
      'vda: bitmap b is merged into a, then removed — a then covers its interval.',
      'vdb: bitmap b is merged into a, then removed — a then covers its interval.',
    ]);
  });

  it('metadata: nothing is removed from the images', () => {
    const p = planDelete(chain('independent'), 'b', 'metadata');
    expect(p.deleted).toEqual(['b']);
    expect(p.bitmapEffects).toEqual(['Bitmap b stays on vda, vdb; Tidemark forgets it (it will be listed as a foreign bitmap).']);
    expect(planDelete(chain('chained'), 'b', 'metadata').bitmapEffects[1]).toBe('Chained layout: a then misses the interval b recorded (marked incomplete).');
  });
});

describe('<DeleteDialog>', () => {
  it('focuses Cancel, names the verb, and deletes with the chosen mode', async () => {
    const onDelete = vi.fn().mockResolvedValue({ deleted: ['b', 'c', 'd'], reparented: [] });
    const onClose = vi.fn();
    render(<DeleteDialog vmLabel="demo" checkpoints={chain('independent')} target="b" onDelete={onDelete} onClose={onClose} />);
    expect(document.activeElement).toBe(screen.getByRole('button', { name: 'Cancel' }));
    fireEvent.click(screen.getByRole('radio', { name: /everything under it/ }));
    expect(within(screen.getByRole('list', { name: 'Checkpoints deleted' })).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['✕ b', '✕ c', '✕ d']);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Delete 3 checkpoints' })));
    expect(onDelete).toHaveBeenCalledWith('b', 'children');
    expect(onClose).toHaveBeenCalled();
  });

  it('shows the engine error and stays open', async () => {
    const onDelete = vi.fn().mockRejectedValue(new Error('bitmap b is busy'));
    const onClose = vi.fn();
    render(<DeleteDialog vmLabel="demo" checkpoints={chain('independent')} target="b" onDelete={onDelete} onClose={onClose} />);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Delete b' })));
    expect(screen.getByRole('alert').textContent).toBe('Could not delete: bitmap b is busy');
    expect(onClose).not.toHaveBeenCalled();
  });

  it('closes on Escape without deleting', () => {
    const onDelete = vi.fn();
    const onClose = vi.fn();
    render(<DeleteDialog vmLabel="demo" checkpoints={chain('independent')} target="b" onDelete={onDelete} onClose={onClose} />);
    fireEvent.keyDown(screen.getByRole('dialog'), { key: 'Escape' });
    expect(onClose).toHaveBeenCalled();
    expect(onDelete).not.toHaveBeenCalled();
  });
});

describe('<CreateCheckpointDialog>', () => {
  it('at the first checkpoint: offers the layouts, disables a disk without bitmaps, sends per-disk choices', async () => {
    const onCreate = vi.fn().mockResolvedValue(undefined);
    render(<CreateCheckpointDialog vm={info} vmLabel="demo" checkpoints={[]} now={Date.UTC(2026, 0, 2, 3, 4, 5)} onCreate={onCreate} onClose={() => undefined} />);
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('cp-20260102T030405Z');
    expect((screen.getByRole('checkbox', { name: /vdc/ }) as HTMLInputElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole('checkbox', { name: /vdb/ }));
    fireEvent.click(screen.getByRole('radio', { name: /Chained/ }));
    fireEvent.change(screen.getByLabelText('Description'), { target: { value: 'before upgrade' } });
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Create checkpoint' })));
    expect(onCreate).toHaveBeenCalledWith({
      name: 'cp-20260102T030405Z',
      description: 'before upgrade',
      disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'no' }, { name: 'vdc', checkpoint: 'no' }],
      layout: 'chained',
    });
  });

  it('later: shows the layout in use instead of a choice, and refuses a duplicate or bad name', () => {
    render(<CreateCheckpointDialog vm={info} vmLabel="demo" checkpoints={chain('chained')} current="d" now={0} onCreate={vi.fn()} onClose={() => undefined} />);
    expect(screen.queryByRole('radio', { name: /Chained/ })).toBeNull();
    expect(screen.getByText('chained')).toBeTruthy();
    const name = screen.getByLabelText('Name');
    fireEvent.change(name, { target: { value: 'b' } });
    expect(screen.getByText('A checkpoint named "b" already exists.')).toBeTruthy();
    expect((screen.getByRole('button', { name: 'Create checkpoint' }) as HTMLButtonElement).disabled).toBe(true);
    // The engine's own rules and words (shared/names.ts), before anything is sent.
    fireEvent.change(name, { target: { value: 'x/y' } });
    expect(screen.getByRole('alert').textContent).toBe('checkpoint name "x/y" contains "/"');
    fireEvent.change(name, { target: { value: 'c1\u202e' } });
    expect(screen.getByRole('alert').textContent).toMatch(/^checkpoint name "c1\\u202e" contains a text-direction control character \(U\+202e\)/);
    fireEvent.change(name, { target: { value: 'tidemark-tmp-x' } });
    expect(screen.getByRole('alert').textContent).toMatch(/reserved for temporary bitmaps/);
    expect((screen.getByRole('button', { name: 'Create checkpoint' }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(name, { target: { value: 'x'.repeat(300) } });
    expect(screen.queryByRole('alert')).toBeNull(); // long is fine (≤ 1023 bytes); it is shown shortened
    expect((screen.getByRole('button', { name: 'Create checkpoint' }) as HTMLButtonElement).disabled).toBe(false);
  });
});

// ---------------------------------------------------------------- dialogs that use the store

const vmSummary = (connection: VmSummary['connection']): VmSummary => ({ id: 'demo', label: 'Demo VM', endpoint: 'unix:/q', kind: 'demo', connection });

function backupRecord(id: string, startedAt: number, cp: string, kind: BackupRecord['kind'] = 'full'): BackupRecord {
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: 'uuid-1', uuid: 'uuid-1', name: 'uuid-1' }, kind, checkpoint: cp, startedAt, completedAt: startedAt + 1,
    qemuVersion: '7.2.22', tool: 't', disks: ['vda', 'vdb', 'vdc'].map((name) => ({
      name, kind, image: `disks/${name}/${id}.qcow2`, virtualSize: 1 << 30, bytesCopied: 1, fileSize: 1, sha256: 'x', sourceImage: `/lab/${name}.qcow2`, sourceFormat: 'qcow2', checkpointBitmap: name !== 'vdc',
    })),
  };
}

async function withStore(connection: VmSummary['connection'], backups: BackupRecord[]) {
  const api = new FakeApi()
    .handle('vm:list', () => [vmSummary(connection)])
    .handle('lab:status', () => ({ running: true, qmp: '', qmpSecondary: '', disks: [] }))
    .handle('job:list', () => [])
    .handle('vm:info', () => info)
    .handle('checkpoint:list', () => chain('independent'))
    .handle('checkpoint:current', () => chain('independent')[3]!)
    .handle('vm:health', () => ({ vmId: 'uuid-1', checkedAt: 0, issues: [] }))
    .handle('backup:list', () => ({ repo: '/state/backups', backups, problems: [] }))
    .handle('checkpoint:changes', (_vm, name) => ({
      checkpoint: name,
      disks: [
        { disk: 'vda', bytes: 3 * MiB, granularity: 65536, virtualSize: 1 << 30, usable: true },
        { disk: 'vdb', bytes: 0, granularity: 65536, virtualSize: 512 * MiB, usable: false, reason: 'bitmap d on vdb is inconsistent' },
      ],
    }));
  const store = createStore(api);
  await store.getState().start();
  // A disconnected VM is not loaded by the store; the dialogs only need its last known info.
  if (connection !== 'connected') {
    store.setState((s) => ({ byVm: { ...s.byVm, demo: { ...(s.byVm.demo ?? { samples: {}, changes: {}, changesMeta: {}, loading: false, checkpoints: [] }), info, checkpoints: chain('independent') } } }));
    await store.getState().loadBackups('demo');
  }
  await waitFor(() => expect(store.getState().backups.demo?.length ?? 0).toBe(backups.length));
  const wrap = (ui: ReactNode) => render(<StoreProvider store={store}>{ui}</StoreProvider>);
  return { api, store, wrap };
}

describe('<BackupDialog>', () => {
  it('computes the incremental base and the bytes to copy, falling back to full with the reason', () => {
    const backups = [backupRecord('r1', 1000, 'a'), backupRecord('r2', 4000, 'gone')];
    expect(incrementalBase(backups, chain('independent'))?.checkpoint).toBe('a'); // r2's checkpoint no longer exists
    const changes = { checkpoint: 'a', disks: [{ disk: 'vda', bytes: 5, granularity: 1, virtualSize: 1, usable: true }, { disk: 'vdb', bytes: 0, granularity: 1, virtualSize: 1, usable: false, reason: 'missing' }] };
    expect(estimateBytes(info, 'incremental', changes, ['vda', 'vdb', 'vdc'])).toEqual([
      { disk: 'vda', bytes: 5 },
      { disk: 'vdb', bytes: 512 * MiB, fallback: 'missing' },
      { disk: 'vdc', bytes: 64 * MiB, fallback: 'vdc cannot hold bitmaps (qcow2 v2 (compat 0.10))' },
    ]);
    expect(estimateBytes(info, 'full', undefined, ['vda'])).toEqual([{ disk: 'vda', bytes: 1 << 30 }]);
    // With the repository's backups: none holds the disks at "a" → no layer to build on → full.
    expect(estimateBytes(info, 'incremental', changes, ['vda'], [backupRecord('r1', 1000, 'b')])).toEqual([
      { disk: 'vda', bytes: 1 << 30, fallback: 'no backup in this repository holds vda at a' },
    ]);
    expect(estimateBytes(info, 'incremental', changes, ['vda'], [backupRecord('r1', 1000, 'a')])).toEqual([{ disk: 'vda', bytes: 5 }]);
  });

  it('defaults to incremental since the last backup, shows bytes per disk before it runs, and sends the request', async () => {
    const { api, wrap } = await withStore('connected', [backupRecord('r1', 1000, 'b')]);
    api.handle('backup:begin', (_vm, opts) => ({
      job: { id: 'j1', kind: 'backup', vmId: 'demo', state: 'succeeded', title: 'Backup (since b) to /state/backups', startedAt: 1, progress: [], log: [] },
      backup: { ...backupRecord('r2', 5000, opts.checkpoint ?? 'r2', 'incremental'), since: 'b' },
    }));
    wrap(<BackupDialog vm={vmSummary('connected')} info={info} checkpoints={chain('independent')} current="d" onClose={() => undefined} />);
    expect((screen.getByRole('radio', { name: /Incremental/ }) as HTMLInputElement).checked).toBe(true);
    const table = screen.getByRole('table', { name: 'Bytes to copy per disk' });
    await waitFor(() => expect(within(table).getAllByRole('row')[1]!.textContent).toContain('3.0 MiB'));
    expect(api.callsTo('checkpoint:changes')).toEqual([['demo', 'b']]);
    expect(within(table).getAllByRole('row')[2]!.textContent).toContain('full: bitmap d on vdb is inconsistent');
    fireEvent.click(screen.getByRole('checkbox', { name: 'Back up vdb' }));
    fireEvent.change(screen.getByLabelText('Checkpoint name'), { target: { value: 'nightly' } });
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Start backup' })));
    expect(api.callsTo('backup:begin')).toEqual([['demo', { since: 'b', checkpoint: 'nightly', disks: ['vda', 'vdc'] }]]);
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('Backup r2 finished'));
  });
});

describe('<BackupDialog> in pull mode', () => {
  const job = (over: Partial<JobInfo> = {}): JobInfo => ({ id: 'jp', kind: 'pull', vmId: 'demo', state: 'running', title: 'Pull backup (export only)', startedAt: Date.now(), progress: [], log: [], ...over });

  it('runs a pull backup with the same choices, without a speed limit but with a fleecing limit', async () => {
    const { api, wrap } = await withStore('connected', [backupRecord('r1', 1000, 'b')]);
    api.handle('pull:begin', (_vm, opts) => ({
      job: job({ state: 'succeeded', title: 'Pull backup to /state/backups' }),
      backup: { ...backupRecord('p2', 5000, opts.checkpoint ?? 'p2', 'incremental'), since: 'b' },
      fleecePeakBytes: 3 * MiB,
    }));
    wrap(<BackupDialog vm={vmSummary('connected')} info={info} checkpoints={chain('independent')} current="d" onClose={() => undefined} />);
    fireEvent.click(screen.getByRole('radio', { name: /^Pull/ }));
    expect(screen.queryByLabelText('Speed limit per disk (MiB/s)')).toBeNull();
    fireEvent.change(screen.getByLabelText('Fleecing space limit (MiB)'), { target: { value: '0' } });
    expect(screen.getByText('Fleecing limit must be a number of MiB, at least 1.')).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Fleecing space limit (MiB)'), { target: { value: '256' } });
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Start pull backup' })));
    expect(api.callsTo('pull:begin')).toEqual([['demo', { since: 'b', fleeceMaxMiB: 256 }]]);
    expect(api.callsTo('backup:begin')).toEqual([]);
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('Pull backup p2 finished'));
    expect(screen.getByRole('status').textContent).toContain('Fleecing peaked at 3.0 MiB');
  });

  it('export only: opens the exports, shows their URIs and commands, and ends with the outcome', async () => {
    const { api, store, wrap } = await withStore('connected', [backupRecord('r1', 1000, 'b')]);
    store.getState().setRepository('/mnt/repo');
    api.handle('pull:export', () => {
      api.emit('job:update', job());
      return {
        jobId: 'jp',
        exports: [{ disk: 'vda', kind: 'incremental', since: 'b', uri: 'nbd+unix:///tidemark-pull-1?socket=/s/nbd.sock', exportName: 'tidemark-pull-1', dirtyContext: 'qemu:dirty-bitmap:tmp-1', size: 1 << 30 }],
      };
    });
    api.handle('pull:end', () => {
      api.emit('job:update', job({ state: 'succeeded', endedAt: Date.now() }));
      return { backupId: 'p3' };
    });
    wrap(<BackupDialog vm={vmSummary('connected')} info={info} checkpoints={chain('independent')} current="d" onClose={() => undefined} />);
    fireEvent.click(screen.getByRole('radio', { name: /^Pull/ }));
    fireEvent.click(screen.getByRole('checkbox', { name: /Export only/ }));
    fireEvent.click(screen.getByRole('checkbox', { name: 'Back up vdb' }));
    fireEvent.click(screen.getByRole('checkbox', { name: 'Back up vdc' }));
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Open NBD exports' })));
    expect(api.callsTo('pull:export')).toEqual([['demo', { repo: '/mnt/repo', since: 'b', disks: ['vda'] }]]);
    const vda = screen.getByRole('region', { name: 'Export of vda' });
    expect((within(vda).getByRole('textbox', { name: 'NBD URI of vda' }) as HTMLTextAreaElement).value).toBe('nbd+unix:///tidemark-pull-1?socket=/s/nbd.sock');
    expect((within(vda).getByRole('textbox', { name: /^nbdinfo command for vda: which regions/ }) as HTMLTextAreaElement).value)
      .toBe("nbdinfo --map=qemu:dirty-bitmap:tmp-1 'nbd+unix:///tidemark-pull-1?socket=/s/nbd.sock'");
    expect(screen.getByRole('button', { name: 'Close, keep exports open' })).toBeTruthy();
    await act(async () => fireEvent.click(screen.getByRole('button', { name: '✓ External copy succeeded' })));
    expect(api.callsTo('pull:end')).toEqual([['demo', 'success', '/mnt/repo']]);
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('reported as succeeded'));
    expect(screen.getByRole('status').textContent).toContain('checkpoint p3 is recorded');
    expect(screen.queryByRole('region', { name: 'Export of vda' })).toBeNull(); // closed: no dead URIs
    expect(store.getState().pullSessions).toEqual({});
  });

  it('says why the exports could not be opened, and that nothing was kept', async () => {
    const { api, wrap } = await withStore('connected', [backupRecord('r1', 1000, 'b')]);
    api.handle('pull:export', () => {
      throw new Error("QEMU's NBD server already listens on tcp");
    });
    wrap(<BackupDialog vm={vmSummary('connected')} info={info} checkpoints={chain('independent')} current="d" onClose={() => undefined} />);
    fireEvent.click(screen.getByRole('radio', { name: /^Pull/ }));
    fireEvent.click(screen.getByRole('checkbox', { name: /Export only/ }));
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Open NBD exports' })));
    expect(screen.getByRole('alert').textContent).toBe("✕ The pull failed: QEMU's NBD server already listens on tcp. Nothing was kept: its images and its checkpoint were rolled back; earlier backups are untouched.");
  });
});

describe('<RestoreDialog>', () => {
  it('in place (VM stopped): needs the VM name typed, says what is discarded, and keeps a safety copy by default', async () => {
    const { api, wrap } = await withStore('disconnected', [backupRecord('r1', 1000, 'b')]);
    api.handle('restore:run', (req) => ({
      job: { id: 'j9', kind: 'restore', vmId: 'uuid-1', state: 'succeeded', title: 'In-place restore', startedAt: 1, progress: [], log: [] },
      backup: req.backup, restored: [{ disk: 'vda', path: '/lab/vda.qcow2', format: 'qcow2', virtualSize: 1 << 30, safetyCopy: '/lab/vda.qcow2.pre-restore-1' }], needsFull: { vda: 'restored alone' },
    }));
    wrap(<RestoreDialog vm={vmSummary('disconnected')} info={info} checkpoints={chain('independent')} onClose={() => undefined} />);
    expect(document.activeElement).toBe(screen.getByRole('button', { name: 'Cancel' }));
    fireEvent.click(screen.getByRole('radio', { name: /In place/ }));
    expect(screen.getByRole('dialog').getAttribute('aria-labelledby')).toBeTruthy();
    expect(screen.getByRole('heading', { level: 1 }).textContent).toMatch(/^Overwrite vda, vdb, vdc of uuid-1 with state at .* \(b\)$/);
    fireEvent.click(screen.getByRole('checkbox', { name: 'Restore vdb' }));
    fireEvent.click(screen.getByRole('checkbox', { name: 'Restore vdc' }));
    expect((screen.getByLabelText('Path for vda') as HTMLInputElement).value).toBe('/lab/vda.qcow2');
    expect(screen.getByRole('table', { name: 'Disks to restore' }).textContent).toContain('everything written since');
    const overwrite = screen.getByRole('button', { name: 'Overwrite vda' }) as HTMLButtonElement;
    expect(overwrite.disabled).toBe(true);
    fireEvent.change(screen.getByLabelText(/to confirm/), { target: { value: 'uuid' } });
    expect(overwrite.disabled).toBe(true);
    fireEvent.change(screen.getByLabelText(/to confirm/), { target: { value: 'uuid-1' } });
    expect(overwrite.disabled).toBe(false);
    await act(async () => fireEvent.click(overwrite));
    expect(api.callsTo('restore:run')).toEqual([[{ backup: 'r1', inPlace: [{ disk: 'vda', image: '/lab/vda.qcow2' }] }]]);
    await waitFor(() => expect(screen.getAllByRole('status')[0]!.textContent).toContain('the previous image is kept as /lab/vda.qcow2.pre-restore-1'));
    expect(screen.getByText(/vda: next backup will be full/)).toBeTruthy();
  });

  it('refuses in place while the VM runs, and restores each disk to a new image without touching the VM', async () => {
    const { api, wrap } = await withStore('connected', [backupRecord('r1', 1000, 'b')]);
    api.handle('checkpoint:create', (_vm, opts) => checkpoint(opts.name!, 'd', 9000, ['vda']));
    api.handle('restore:run', (req) => ({
      job: { id: `j-${req.to!.disk}`, kind: 'restore', vmId: 'uuid-1', state: 'succeeded', title: 'Restore', startedAt: 1, progress: [], log: [] },
      backup: req.backup, restored: [{ disk: req.to!.disk, path: req.to!.path, format: 'qcow2', virtualSize: 1 << 30 }], needsFull: {},
    }));
    wrap(<RestoreDialog vm={vmSummary('connected')} info={info} checkpoints={chain('independent')} onClose={() => undefined} />);
    expect((screen.getByRole('radio', { name: /In place/ }) as HTMLInputElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole('checkbox', { name: 'Restore vdc' }));
    expect(screen.queryByRole('checkbox', { name: /checkpoint/i })).toBeNull(); // nothing to tick: the VM is not touched
    expect(screen.getByText(/no checkpoint is made and its disks are not touched/)).toBeTruthy();
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Restore 2 disks to new images' })));
    expect(api.callsTo('checkpoint:create')).toEqual([]);
    expect(api.callsTo('restore:run')).toEqual([
      [{ backup: 'r1', to: { disk: 'vda', path: '/state/restored-vda-r1.qcow2' } }],
      [{ backup: 'r1', to: { disk: 'vdb', path: '/state/restored-vdb-r1.qcow2' } }],
    ]);
  });

  it('checks every target before anything runs: absolute, distinct, not the VM’s own image', async () => {
    const { api, wrap } = await withStore('connected', [backupRecord('r1', 1000, 'b')]);
    api.handle('restore:run', () => {
      throw new Error('must not be called');
    });
    wrap(<RestoreDialog vm={vmSummary('connected')} info={info} checkpoints={chain('independent')} onClose={() => undefined} />);
    const button = () => screen.getByRole('button', { name: 'Restore 3 disks to new images' }) as HTMLButtonElement;
    const path = (disk: string, value: string) => fireEvent.change(screen.getByLabelText(`Path for ${disk}`), { target: { value } });
    path('vda', 'relative.qcow2');
    expect(screen.getByText('The path for vda must be absolute (start with "/").')).toBeTruthy();
    expect(button().disabled).toBe(true);
    path('vda', '/lab/vda.qcow2');
    expect(screen.getByText(/is an image of the VM; a restore to a new image never overwrites it/)).toBeTruthy();
    path('vda', '/state/restored-vdb-r1.qcow2');
    expect(screen.getByText('vda and vdb would be restored to the same file.')).toBeTruthy();
    path('vda', '/state/x.txt');
    expect(screen.getByText(/must end in .qcow2, .raw or .img/)).toBeTruthy();
    path('vda', '/state/ok.qcow2');
    expect(button().disabled).toBe(false);
    expect(api.callsTo('restore:run')).toEqual([]);
  });
});
