// The fleet overview (issue 12, item 6): every VM of every connection — state, checkpoints, health,
// last backup's age and result — red when a VM has not been backed up within the limit the user
// sets (kept in the renderer's settings), was never backed up, or its last backup failed.
// Keyboard: the table is one tab stop; ↑/↓ move, Enter opens the VM's backups, T its timeline.

import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { formatAbsolute, formatRelative, shortName } from '../format';
import { useApp } from '../store/context';
import { fleetRows, formatAge, type FleetAlarm, type FleetRow } from './fleet';
import { checkAgeLimit, loadSettings, saveSettings } from './settings';

export interface FleetViewProps {
  now: number;
  /** Opens one VM's timeline or backups view. */
  onOpen(vmId: string, page: 'timeline' | 'backups'): void;
}

const ALARM_TEXT: Record<FleetAlarm, string> = {
  overdue: 'backup overdue',
  never: 'never backed up',
  failed: 'last backup failed',
  unreadable: 'unreadable manifests',
};

export function FleetView({ now, onOpen }: FleetViewProps) {
  const vms = useApp((s) => s.vms);
  const fleet = useApp((s) => s.fleet);
  const loadFleet = useApp((s) => s.loadFleet);
  const jobs = useApp((s) => s.jobs);
  const [limitHours, setLimitHours] = useState(() => loadSettings().backupAgeLimitHours);
  const [limitText, setLimitText] = useState(String(limitHours));
  const [active, setActive] = useState<string>();
  const bodyRef = useRef<HTMLTableSectionElement>(null);

  // Read again when a VM (dis)connects or a backup, restore or pull ends.
  const connections = vms.map((v) => `${v.id}:${v.connection}`).join(',');
  const ended = Object.values(jobs).filter((j) => j.state !== 'running' && (j.kind === 'backup' || j.kind === 'pull' || j.kind === 'restore')).length;
  useEffect(() => {
    void loadFleet();
  }, [connections, ended, loadFleet]);

  const rows = useMemo(() => fleetRows(vms, fleet.vms, fleet.backups, limitHours * 3600_000, now), [vms, fleet.vms, fleet.backups, limitHours, now]);
  const red = rows.filter((r) => r.alarms.length > 0).length;
  const current = rows.find((r) => r.key === active) ?? rows[0];
  const limitProblem = checkAgeLimit(Number(limitText));

  const applyLimit = (text: string) => {
    setLimitText(text);
    const h = Number(text);
    if (text.trim() !== '' && checkAgeLimit(h) === undefined) {
      setLimitHours(h);
      saveSettings({ ...loadSettings(), backupAgeLimitHours: h });
    }
  };

  const onRowKey = (e: KeyboardEvent<HTMLTableRowElement>, r: FleetRow) => {
    if (e.target !== e.currentTarget) return;
    const i = rows.indexOf(r);
    const to = e.key === 'ArrowDown' ? rows[i + 1] : e.key === 'ArrowUp' ? rows[i - 1] : e.key === 'Home' ? rows[0] : e.key === 'End' ? rows.at(-1) : undefined;
    if (to) {
      e.preventDefault();
      setActive(to.key);
      requestAnimationFrame(() => bodyRef.current?.querySelector<HTMLElement>(`tr[data-key="${CSS.escape(to.key)}"]`)?.focus());
    } else if (r.vmId !== undefined && (e.key === 'Enter' || e.key === 't' || e.key === 'T')) {
      e.preventDefault();
      onOpen(r.vmId, e.key === 'Enter' ? 'backups' : 'timeline');
    }
  };

  return (
    <section className="inventory" aria-labelledby="fleet-title">
      <div className="inventory-head">
        <h1 id="fleet-title" className="inventory-title">Fleet</h1>
        <span className={`badge ${red > 0 ? 'bad' : rows.length > 0 ? 'ok' : ''}`} aria-live="polite">
          {rows.length} VM{rows.length === 1 ? '' : 's'} · {red === 0 ? 'all backed up within the limit' : `${red} need${red === 1 ? 's' : ''} attention`}
        </span>
        <span className="spacer" />
        <label className="inline">
          Back up at least every{' '}
          <input
            id="fleet-limit" type="number" min={1} max={8784} step={1} className="limit-input" value={limitText}
            aria-invalid={limitProblem !== undefined} aria-describedby="fleet-limit-help" onChange={(e) => applyLimit(e.target.value)}
          />{' '}hours
        </label>
        <span id="fleet-limit-help" className={limitProblem ? 'error-text' : 'muted'}>{limitProblem ?? 'kept in this browser'}</span>
        <button type="button" onClick={() => void loadFleet()} disabled={fleet.loading}>{fleet.loading ? 'Reading…' : 'Refresh'}</button>
      </div>
      {fleet.error && <div className="alert" role="alert">Cannot read the fleet: {fleet.error}</div>}
      <div className="table-wrap">
        <table className="data-table fleet-table" aria-labelledby="fleet-title">
          <thead>
            <tr>
              <th scope="col">VM</th><th scope="col">State</th><th scope="col" className="num">Checkpoints</th><th scope="col">Health</th>
              <th scope="col">Last backup</th><th scope="col">Result</th><th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody ref={bodyRef}>
            {rows.map((r) => {
              const tab = r === current ? 0 : -1;
              const alarm = r.alarms.length > 0;
              return (
                <tr
                  key={r.key} data-key={r.key} tabIndex={tab} className={`${alarm ? 'row-alarm' : ''}${r === current ? ' active' : ''}`}
                  aria-label={`${r.label}: ${alarm ? r.alarms.map((a) => ALARM_TEXT[a]).join(', ') : 'backed up within the limit'}`}
                  onFocus={(e) => e.target === e.currentTarget && setActive(r.key)} onClick={() => setActive(r.key)} onKeyDown={(e) => onRowKey(e, r)}
                >
                  <td>
                    <strong title={r.label}>{shortName(r.label, 32)}</strong>
                    {r.detail && <div className="muted cell-sub" title={r.detail}>{shortName(r.detail, 60)}</div>}
                  </td>
                  <td>
                    <span className={`badge ${r.connection === 'connected' ? 'ok' : r.connection === 'connecting' ? 'warn' : r.connection === 'not listed' ? '' : 'bad'}`}>{r.connection}</span>
                    {r.status && <div className="cell-sub">{r.status}</div>}
                  </td>
                  <td className="num">{r.checkpoints ?? <span className="muted">—</span>}</td>
                  <td>
                    {!r.health.known ? <span className="muted">unknown</span>
                      : r.health.errors + r.health.warnings === 0 ? <span className="ok-text nowrap">✓ healthy</span>
                        : <span className={r.health.errors ? 'error-text' : 'warn-text'}>⚠ {[r.health.errors ? `${r.health.errors} error${r.health.errors > 1 ? 's' : ''}` : '', r.health.warnings ? `${r.health.warnings} warning${r.health.warnings > 1 ? 's' : ''}` : ''].filter(Boolean).join(', ')}</span>}
                  </td>
                  <td>
                    {r.last ? (
                      <span title={`${r.last.id}, completed ${formatAbsolute(r.last.completedAt)}`} className={r.alarms.includes('overdue') ? 'error-text' : undefined}>
                        <span className="nowrap">{r.alarms.includes('overdue') ? '✕ ' : ''}{formatAge(r.age ?? 0)} ago · {r.last.kind}</span>
                        <div className="muted cell-sub">{formatAbsolute(r.last.completedAt)} · {r.backups} backup{r.backups === 1 ? '' : 's'}</div>
                      </span>
                    ) : <span className="error-text">✕ never</span>}
                  </td>
                  <td>
                    {r.running ? <span className="warn-text">◌ running</span>
                      : r.lastAttempt ? (
                        <span className={r.lastAttempt.outcome === 'succeeded' ? 'ok-text' : 'error-text'} title={r.lastAttempt.reason ?? r.lastAttempt.id}>
                          <span className="nowrap">{r.lastAttempt.outcome === 'succeeded' ? '✓ succeeded' : `✕ ${r.lastAttempt.outcome}`}</span>
                          {r.lastAttempt.outcome !== 'succeeded' && <div className="cell-sub reason">{formatRelative(r.lastAttempt.at, now)}: {r.lastAttempt.reason}</div>}
                        </span>
                      ) : <span className="muted">—</span>}
                    {r.last?.verified && <div className={`cell-sub ${r.last.verified.ok ? 'muted' : 'error-text'}`}>verified {r.last.verified.ok ? 'ok' : 'FAILED'} {formatRelative(r.last.verified.at, now)}</div>}
                    {r.alarms.includes('unreadable') && <div className="cell-sub error-text">unreadable manifests</div>}
                  </td>
                  <td className="actions">
                    {r.vmId !== undefined && (
                      <>
                        <button type="button" className="small" tabIndex={tab} onClick={() => onOpen(r.vmId!, 'backups')} aria-label={`Backups of ${r.label}`}>Backups</button>
                        <button type="button" className="small" tabIndex={tab} onClick={() => onOpen(r.vmId!, 'timeline')} aria-label={`Timeline of ${r.label}`}>Timeline</button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows.length === 0 && <p className="empty-table muted">{fleet.loading ? 'Reading…' : 'No VMs: add one in the VMs panel.'}</p>}
      </div>
      <p className="inventory-keys muted">In the table: ↑ ↓ move · Enter opens the VM’s backups · T its timeline. Red: no backup within {limitHours} h, never backed up, or the last backup failed.{fleet.backups ? ` Repository ${fleet.backups.repo}.` : ''}</p>
    </section>
  );
}
