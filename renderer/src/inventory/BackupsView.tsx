// The backups view (issue 12, item 5): every backup of the selected VM in a table — kind, base,
// time, size per disk, duration, throughput, last verification — with failed backups and unreadable
// manifests as rows of their own, sortable and filterable, the repository's size and free space,
// and per backup: Verify, Restore… (the restore dialog) and Delete… (what depends on it first).
// Keyboard: the table is one tab stop; ↑/↓/Home/End move between rows, V verifies, R restores,
// Delete deletes the row's backup; its buttons follow in the tab order.

import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import type { BackupKind, VmSummary } from '../../../shared/contract';
import { formatAbsolute, formatBytes, formatRelative, shortName } from '../format';
import { useApp } from '../store/context';
import { BackupDeleteDialog } from './BackupDeleteDialog';
import { backupRows, filterRows, sortRows, statusText, type BackupRow, type Sort, type SortKey } from './rows';
import { RepositoryUsageBar } from './RepositoryUsageBar';
import './inventory.css';

export interface BackupsViewProps {
  vm: VmSummary;
  now: number;
  /** Undefined while the VM is not connected: the restore dialog needs its disks. */
  onRestore?: (backupId: string) => void;
}

const COLUMNS: { key: SortKey | undefined; label: string; className?: string }[] = [
  { key: 'time', label: 'Started' },
  { key: 'kind', label: 'Kind' },
  { key: undefined, label: 'Base' },
  { key: 'size', label: 'Size', className: 'num' },
  { key: 'duration', label: 'Duration', className: 'num' },
  { key: 'throughput', label: 'Throughput', className: 'num' },
  { key: 'verified', label: 'Verified' },
  { key: undefined, label: 'Actions' },
];

export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function verifiedCell(r: BackupRow, now: number, busy: boolean) {
  if (busy) return <span className="muted">verifying…</span>;
  if (r.type !== 'backup') return null;
  const v = r.verified;
  if (!v) return <span className="muted">never</span>;
  const how = `${v.how}; ${v.layers} layer file${v.layers === 1 ? '' : 's'} in ${formatDuration(v.durationMs)}${v.problems.length ? `\n${v.problems.join('\n')}` : ''}`;
  return (
    <span className={v.ok ? 'ok-text' : 'error-text'} title={`${formatAbsolute(v.at)}: ${how}`}>
      <span className="nowrap">{v.ok ? '✓ ok' : '✕ failed'} {formatRelative(v.at, now)}</span>
      <span className="verify-how muted"> · {v.layers} layer{v.layers === 1 ? '' : 's'}, checksum + qemu-img check</span>
    </span>
  );
}

export function BackupsView({ vm, now, onRestore }: BackupsViewProps) {
  const view = useApp((s) => s.inventory[vm.id]);
  const records = useApp((s) => s.backups[vm.id]);
  const verifying = useApp((s) => s.verifying);
  const loadInventory = useApp((s) => s.loadInventory);
  const verifyBackups = useApp((s) => s.verifyBackups);
  const [sort, setSort] = useState<Sort>({ key: 'time', dir: 'desc' });
  const [text, setText] = useState('');
  const [kind, setKind] = useState<BackupKind | 'all'>('all');
  const [problems, setProblems] = useState(true);
  const [active, setActive] = useState<string>();
  const [deleting, setDeleting] = useState<string>();
  const [actionError, setActionError] = useState<string>();
  const tableRef = useRef<HTMLTableSectionElement>(null);

  // Read again whenever the store's list of the VM's backups changes (a backup, restore or delete ended).
  useEffect(() => {
    void loadInventory(vm.id);
  }, [vm.id, records, loadInventory]);

  const inv = view?.data;
  const all = useMemo(() => (inv ? backupRows(inv) : []), [inv]);
  const rows = useMemo(() => sortRows(filterRows(all, { text, kind, problems }), sort), [all, text, kind, problems, sort]);
  const current = rows.find((r) => r.key === active) ?? rows[0];
  const backupIds = rows.filter((r) => r.type === 'backup').map((r) => r.key);

  const verify = (ids: string[]) => {
    setActionError(undefined);
    verifyBackups(vm.id, ids).catch((e: Error) => setActionError(`Verify failed: ${e.message}`));
  };

  const focusRow = (key: string) => {
    setActive(key);
    requestAnimationFrame(() => tableRef.current?.querySelector<HTMLElement>(`tr[data-key="${CSS.escape(key)}"]`)?.focus());
  };

  const onRowKey = (e: KeyboardEvent<HTMLTableRowElement>, r: BackupRow) => {
    if (e.target !== e.currentTarget) return; // keys typed on the row's buttons are theirs
    const i = rows.indexOf(r);
    const to = e.key === 'ArrowDown' ? rows[i + 1] : e.key === 'ArrowUp' ? rows[i - 1] : e.key === 'Home' ? rows[0] : e.key === 'End' ? rows.at(-1) : undefined;
    if (to) {
      e.preventDefault();
      focusRow(to.key);
      return;
    }
    if (r.type !== 'backup') return;
    if (e.key === 'v' || e.key === 'V') verify([r.key]);
    else if ((e.key === 'r' || e.key === 'R') && onRestore && r.status !== 'broken-chain') onRestore(r.key);
    else if (e.key === 'Delete') setDeleting(r.key);
    else return;
    e.preventDefault();
  };

  const header = (c: (typeof COLUMNS)[number]) => {
    if (!c.key) return <th key={c.label} scope="col" className={c.className}>{c.label}</th>;
    const on = sort.key === c.key;
    const next: Sort = { key: c.key, dir: on && sort.dir === 'desc' ? 'asc' : 'desc' };
    return (
      <th key={c.label} scope="col" className={c.className} aria-sort={on ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
        <button type="button" className="sort" onClick={() => setSort(next)} title={`Sort by ${c.label.toLowerCase()}`}>
          {c.label}<span aria-hidden="true" className="sort-mark">{on ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}</span>
        </button>
      </th>
    );
  };

  return (
    <section className="inventory" aria-labelledby="backups-title">
      <div className="inventory-head">
        <h1 id="backups-title" className="inventory-title">Backups of <span title={vm.label}>{shortName(vm.label, 40)}</span></h1>
        {inv && <RepositoryUsageBar repo={inv.repo} usage={inv.usage} exists={inv.exists} />}
      </div>
      <div className="inventory-tools" role="search" aria-label="Filter the backups">
        <label className="inline">Filter <input id="backups-filter" type="text" value={text} onChange={(e) => setText(e.target.value)} placeholder="id, checkpoint, kind, reason…" /></label>
        <label className="inline">Kind{' '}
          <select value={kind} onChange={(e) => setKind(e.target.value as BackupKind | 'all')}>
            <option value="all">all</option><option value="full">full</option><option value="incremental">incremental</option><option value="differential">differential</option>
          </select>
        </label>
        <label className="inline check-inline"><input type="checkbox" checked={problems} onChange={(e) => setProblems(e.target.checked)} /> failed and unreadable</label>
        <span className="spacer" />
        <span className="muted" aria-live="polite">{inv ? `${rows.length} of ${all.length} rows` : ''}</span>
        <button type="button" disabled={backupIds.length === 0 || backupIds.every((id) => verifying[id])} onClick={() => verify(backupIds)} title="Verify every backup shown (checksum of every layer and qemu-img check of each chain)">
          Verify {backupIds.length === all.filter((r) => r.type === 'backup').length ? 'all' : 'shown'}
        </button>
        <button type="button" onClick={() => void loadInventory(vm.id)} disabled={view?.loading}>{view?.loading ? 'Reading…' : 'Refresh'}</button>
      </div>
      {(view?.error ?? actionError) && <div className="alert" role="alert">{actionError ?? `Cannot read the repository: ${view?.error}`}</div>}
      {inv?.running && <div className="info-box">A backup of this VM is running; its row appears when it completes.</div>}
      <div className="table-wrap">
        <table className="data-table backups-table" aria-labelledby="backups-title" aria-rowcount={rows.length + 1}>
          <thead><tr>{COLUMNS.map(header)}</tr></thead>
          <tbody ref={tableRef}>
            {rows.map((r) => {
              const busy = verifying[r.key] === true;
              const tab = r === current ? 0 : -1;
              return (
                <tr
                  key={r.key} data-key={r.key} tabIndex={tab} className={`row-${r.status}${r === current ? ' active' : ''}`}
                  aria-label={`${r.type === 'damaged' ? 'Unreadable manifest' : `Backup ${r.key}`}, ${r.kindText}, ${statusText(r.status)}`}
                  onFocus={(e) => e.target === e.currentTarget && setActive(r.key)} onClick={() => setActive(r.key)} onKeyDown={(e) => onRowKey(e, r)}
                >
                  <td>
                    {r.startedAt !== undefined ? <div className="started">{formatAbsolute(r.startedAt)}<div className="muted cell-sub">{formatRelative(r.startedAt, now)}</div></div> : <span className="muted">—</span>}
                    <div className="mono muted cell-sub" title={r.key}>{r.type === 'damaged' ? shortName(r.key.split('/').pop() ?? r.key, 36) : r.key}</div>
                  </td>
                  <td>
                    <span className={`kind kind-${r.kind}`}>{r.kindText}</span>
                    {r.status !== 'ok' && <div className={`status status-${r.status}`}>{statusText(r.status)}</div>}
                  </td>
                  <td>
                    {r.baseText.split(' · ').map((part) => <div key={part} className="base-part" title={part}>{part}</div>)}
                    {r.checkpoint && <div className="muted cell-sub" title={r.checkpoint}>checkpoint {shortName(r.checkpoint, 28)}</div>}
                    {r.reason && <div className="error-text cell-sub reason" title={r.reason}>{r.reason}</div>}
                  </td>
                  <td className="num">
                    {r.size !== undefined ? <span title={`${r.size} bytes in the repository; ${r.copied ?? 0} bytes copied`}>{formatBytes(r.size)}</span> : '—'}
                    {r.disks.map((d) => (
                      <div key={d.disk} className="cell-sub muted" title={`${d.disk}: ${d.kind}, ${d.copied} bytes copied, layer ${d.size} bytes, disk ${d.virtualSize} bytes${d.fallbackReason ? `; full because ${d.fallbackReason}` : ''}`}>
                        {d.disk} {formatBytes(d.size)}{d.kind !== r.kind ? ` (${d.kind})` : ''}
                      </div>
                    ))}
                  </td>
                  <td className="num">{r.durationMs !== undefined ? formatDuration(r.durationMs) : '—'}</td>
                  <td className="num" title={r.copied !== undefined ? `${formatBytes(r.copied)} copied` : undefined}>{r.throughput !== undefined ? `${formatBytes(r.throughput)}/s` : '—'}</td>
                  <td>{verifiedCell(r, now, busy)}</td>
                  <td className="actions">
                    {r.type === 'backup' && (
                      <>
                        <button type="button" className="small" tabIndex={tab} disabled={busy} onClick={() => verify([r.key])} aria-label={`Verify backup ${r.key}`}>Verify</button>
                        <button type="button" className="small" tabIndex={tab} disabled={r.status === 'broken-chain' || !onRestore} onClick={() => onRestore?.(r.key)} aria-label={`Restore from backup ${r.key}`}
                          title={onRestore ? undefined : 'Connect the VM to restore from its backups'}>Restore…</button>
                        <button type="button" className="small" tabIndex={tab} disabled={busy} onClick={() => setDeleting(r.key)} aria-label={`Delete backup ${r.key}`}>Delete…</button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {inv && rows.length === 0 && <p className="empty-table muted">{all.length === 0 ? (inv.exists ? 'No backups of this VM in the repository yet.' : 'The repository does not exist yet: the first backup creates it.') : 'No backup matches the filter.'}</p>}
        {!inv && view?.loading && <p className="empty-table muted">Reading the repository…</p>}
      </div>
      <p className="inventory-keys muted">In the table: ↑ ↓ move · V verify · R restore · Delete delete · Tab reaches the row’s buttons.</p>
      {deleting !== undefined && (
        <BackupDeleteDialog
          vm={vm} backupId={deleting} rows={all}
          onClose={(deleted) => {
            setDeleting(undefined);
            if (deleted) {
              const next = rows.find((r) => r.type === 'backup' && !deleted.includes(r.key));
              if (next) focusRow(next.key);
            }
          }}
        />
      )}
    </section>
  );
}
