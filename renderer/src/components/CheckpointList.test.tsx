// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StoreProvider } from '../store/context';
import { createStore } from '../store/store';
import { checkpoint, disk, FakeApi, vmInfo } from '../test/fake-api';
import { CheckpointList } from './CheckpointList';
import { DetailsPanel } from './DetailsPanel';

afterEach(cleanup);

/** cp-0 … cp-(n-1), a line, one a minute; the newest is listed first. */
const history = (n: number) => Array.from({ length: n }, (_, i) => checkpoint(`cp-${i}`, i === 0 ? undefined : `cp-${i - 1}`, 60_000 * i, ['vda', 'vdb']));

const table = () => screen.getByRole('table', { name: 'All checkpoints' });
const dataRows = () => within(table()).getAllByRole('row').slice(1);
const nameButton = (name: string) => within(table()).getByRole('button', { name });

describe('<CheckpointList>', () => {
  it('a thousand checkpoints: renders a window of rows, tells the full count, newest first', () => {
    render(<CheckpointList checkpoints={history(1000)} current="cp-999" now={60_000_000} onSelect={() => undefined} />);
    expect(table().getAttribute('aria-rowcount')).toBe('1001');
    const rows = dataRows();
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(40);
    expect(rows[0]!.getAttribute('aria-rowindex')).toBe('2');
    expect(rows[0]!.textContent).toContain('cp-999 (current)');
    expect(rows[0]!.textContent).toContain('vda, vdb');
    // One tab stop: the newest row's button.
    expect(within(table()).getAllByRole('button').filter((b) => b.tabIndex === 0).map((b) => b.textContent)).toEqual(['cp-999']);
    // The spacers stand in for the other rows (and are hidden from assistive technology).
    expect(table().querySelectorAll('tr.cp-spacer[aria-hidden="true"]')).toHaveLength(1);
  });

  it('a short list is rendered whole', () => {
    render(<CheckpointList checkpoints={history(3)} now={0} onSelect={() => undefined} />);
    expect(dataRows().map((r) => r.getAttribute('aria-rowindex'))).toEqual(['2', '3', '4']);
    expect(table().querySelectorAll('tr.cp-spacer')).toHaveLength(0);
  });

  it('says so when there is none', () => {
    render(<CheckpointList checkpoints={[]} now={0} onSelect={() => undefined} />);
    expect(screen.getByText(/No checkpoints yet/)).toBeTruthy();
  });

  it('keyboard: ↓ and End move the focus and the tab stop, even to a row that was not rendered; Enter selects', () => {
    const onSelect = vi.fn();
    render(<CheckpointList checkpoints={history(1000)} now={0} onSelect={onSelect} />);
    act(() => nameButton('cp-999').focus());
    fireEvent.keyDown(nameButton('cp-999'), { key: 'ArrowDown' });
    expect(document.activeElement).toBe(nameButton('cp-998'));
    expect(within(table()).queryByRole('button', { name: 'cp-0' })).toBeNull();
    fireEvent.keyDown(nameButton('cp-998'), { key: 'End' });
    expect(document.activeElement).toBe(nameButton('cp-0'));
    expect(nameButton('cp-0').closest('tr')!.getAttribute('aria-rowindex')).toBe('1001');
    expect(within(table()).getAllByRole('button').filter((b) => b.tabIndex === 0).map((b) => b.textContent)).toEqual(['cp-0']);
    fireEvent.keyDown(nameButton('cp-0'), { key: 'ArrowUp' });
    expect(document.activeElement).toBe(nameButton('cp-1'));
    fireEvent.click(nameButton('cp-1'));
    expect(onSelect).toHaveBeenCalledWith('cp-1');
    fireEvent.keyDown(nameButton('cp-1'), { key: 'Home' });
    expect(document.activeElement).toBe(nameButton('cp-999'));
  });

  it('scrolling renders the rows in view, also when the list was empty at first', async () => {
    const { rerender } = render(<CheckpointList checkpoints={[]} now={0} onSelect={() => undefined} />);
    rerender(<CheckpointList checkpoints={history(1000)} now={0} onSelect={() => undefined} />);
    const box = table().closest('.cp-list-scroll')!;
    Object.defineProperty(box, 'scrollTop', { configurable: true, value: 400 * 25 });
    fireEvent.scroll(box);
    await waitFor(() => expect(within(table()).queryByRole('button', { name: 'cp-599' })).not.toBeNull());
    expect(nameButton('cp-599').closest('tr')!.getAttribute('aria-rowindex')).toBe('402');
    expect(within(table()).queryByRole('button', { name: 'cp-980' })).toBeNull();
  });

  it('the checkpoint selected last is rendered and is the tab stop when the list comes back', () => {
    render(<CheckpointList checkpoints={history(1000)} now={0} onSelect={() => undefined} reveal="cp-3" />);
    expect(nameButton('cp-3').tabIndex).toBe(0);
    expect(nameButton('cp-3').closest('tr')!.getAttribute('aria-rowindex')).toBe(String(1000 - 3 + 1));
  });
});

describe('<DetailsPanel> and the list', () => {
  it('a checkpoint selected elsewhere (the tree) is the list\'s tab stop, rendered, when the list comes back', async () => {
    const cps = history(1000);
    const api = new FakeApi()
      .handle('vm:list', () => [{ id: 'demo', label: 'Demo VM', endpoint: 'unix:/q', kind: 'demo', connection: 'connected' }])
      .handle('lab:status', () => ({ running: true, qmp: '', qmpSecondary: '', disks: [] }))
      .handle('job:list', () => [])
      .handle('vm:info', () => vmInfo('uuid-1', [disk('vda'), disk('vdb')]))
      .handle('checkpoint:list', () => cps)
      .handle('checkpoint:current', () => cps.at(-1)!)
      .handle('vm:health', () => ({ vmId: 'uuid-1', checkedAt: 1, issues: [] }))
      .handle('backup:list', () => ({ repo: '/r', backups: [], problems: [] }));
    const store = createStore(api);
    await store.getState().start();
    await waitFor(() => expect(store.getState().byVm.demo?.checkpoints.length).toBe(1000));
    render(<StoreProvider store={store}><DetailsPanel now={60_000_000} openToken={0} backups={[]} /></StoreProvider>);
    expect(within(table()).queryByRole('button', { name: 'cp-7' })).toBeNull();
    act(() => store.getState().select('cp-7'));
    expect(screen.getByRole('heading', { name: 'Checkpoint cp-7' })).toBeTruthy();
    act(() => store.getState().select(undefined));
    expect(nameButton('cp-7').tabIndex).toBe(0);
    expect(nameButton('cp-7').closest('tr')!.getAttribute('aria-rowindex')).toBe(String(1000 - 7 + 1));
  });
});
