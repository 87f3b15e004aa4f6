// The inventory slice over a fake API: the repository chosen by the user travels with every call,
// verify marks its backups while it runs and reads the inventory again, a delete reloads both lists,
// the fleet reads each connected VM only, and a failing read is kept as the view's error.

import { describe, expect, it } from 'vitest';
import type { BackupInventory, BackupVerifyReport, VmSummary } from '../../../shared/contract';
import { FakeApi } from '../test/fake-api';
import { createStore } from './store';

const inv = (ids: string[]): BackupInventory => ({ repo: '/r', exists: true, running: false, backups: ids.map((id) => ({ id }) as never), problems: [], failed: [], verified: {} });
const vms: VmSummary[] = [
  { id: 'demo', label: 'Demo', endpoint: 'lab', kind: 'demo', connection: 'connected' },
  { id: 'ep-1', label: 'web', endpoint: 'unix:/w', kind: 'endpoint', connection: 'disconnected' },
];

describe('inventory slice', () => {
  it('loads, verifies (marking the backups meanwhile) and deletes, with the chosen repository', async () => {
    let release: (r: BackupVerifyReport) => void = () => undefined;
    const api = new FakeApi()
      .handle('backup:inventory', () => inv(['a', 'b']))
      .handle('backup:verify', () => new Promise<BackupVerifyReport>((r) => { release = r; }))
      .handle('backup:delete', (id) => ({ deleted: [id] }))
      .handle('backup:list', () => ({ repo: '/r', backups: [], problems: [] }));
    const store = createStore(api);
    store.setState({ repository: '/mnt/repo', vms });
    await store.getState().loadInventory('demo');
    expect(store.getState().inventory.demo?.data?.backups).toHaveLength(2);
    expect(api.calls.at(-1)).toEqual({ channel: 'backup:inventory', args: ['demo', '/mnt/repo'] });

    const verifying = store.getState().verifyBackups('demo', ['a']);
    expect(store.getState().verifying).toEqual({ a: true });
    release({ ok: true, problems: [], backups: [{ id: 'a', ok: true, disks: [] }] });
    await verifying;
    expect(store.getState().verifying).toEqual({});
    expect(api.calls.find((c) => c.channel === 'backup:verify')!.args).toEqual(['/mnt/repo', ['a']]);
    expect(store.getState().announcement).toBe('Verified backup a: no problems');

    const before = api.calls.length;
    expect(await store.getState().deleteBackup('demo', 'b', true)).toEqual(['b']);
    const after = api.calls.slice(before).map((c) => c.channel);
    expect(after).toEqual(expect.arrayContaining(['backup:delete', 'backup:inventory', 'backup:list']));
    expect(api.calls.find((c) => c.channel === 'backup:delete')!.args).toEqual(['b', { withDependents: true, repo: '/mnt/repo' }]);
  });

  it('keeps a failed read as the error, and reads the fleet of connected VMs only', async () => {
    const api = new FakeApi()
      .handle('backup:inventory', () => { throw new Error('backup repository /x does not exist'); })
      .handle('backup:fleet', () => ({ repo: '/r', exists: true, vms: [] }))
      .handle('vm:info', () => ({ id: 'u', status: 'running', qemuVersion: '7.2', disks: [] }) as never)
      .handle('checkpoint:list', () => [{}, {}] as never)
      .handle('vm:health', () => ({ vmId: 'demo', checkedAt: 0, issues: [] }));
    const store = createStore(api);
    store.setState({ vms });
    await store.getState().loadInventory('demo');
    expect(store.getState().inventory.demo).toMatchObject({ loading: false, error: 'backup repository /x does not exist' });
    await store.getState().loadFleet();
    expect(store.getState().fleet.vms).toEqual({ demo: { status: 'running', checkpoints: 2, issues: [] } });
    expect(api.calls.filter((c) => c.channel === 'vm:info').map((c) => c.args[0])).toEqual(['demo']);
    // No repository chosen: no trailing argument at all (JSON would make it null).
    expect(api.calls.find((c) => c.channel === 'backup:fleet')!.args).toEqual([]);
  });
});
