// Deleting a backup (P12): first what depends on it — the backups that build on it, read from the
// repository (backup:info) — then one explicit choice. With dependents, deleting only this backup
// is not offered (it would break them); the button names how many backups go. Cancel is the default.
// The backup's checkpoint stays: a later backup can still start from it when its bitmap exists.

import { useEffect, useState } from 'react';
import type { BackupDetails, VmSummary } from '../../../shared/contract';
import { Modal } from '../dialogs/Modal';
import { formatAbsolute, formatBytes } from '../format';
import { useApp } from '../store/context';
import type { BackupRow } from './rows';

export interface BackupDeleteDialogProps {
  vm: VmSummary;
  backupId: string;
  rows: readonly BackupRow[];
  /** With the ids deleted, or nothing when cancelled. */
  onClose(deleted?: string[]): void;
}

export function BackupDeleteDialog({ vm, backupId, rows, onClose }: BackupDeleteDialogProps) {
  const backupDetails = useApp((s) => s.backupDetails);
  const deleteBackup = useApp((s) => s.deleteBackup);
  const [details, setDetails] = useState<BackupDetails>();
  const [error, setError] = useState<string>();
  const [running, setRunning] = useState(false);

  useEffect(() => {
    let live = true;
    backupDetails(backupId).then((d) => live && setDetails(d), (e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [backupId, backupDetails]);

  const dependents = details?.dependents ?? [];
  const gone = [backupId, ...dependents];
  const bytes = gone.reduce((s, id) => s + (rows.find((r) => r.key === id)?.size ?? 0), 0);
  const row = rows.find((r) => r.key === backupId);

  const run = async () => {
    setRunning(true);
    setError(undefined);
    try {
      onClose(await deleteBackup(vm.id, backupId, dependents.length > 0));
    } catch (e) {
      setError((e as Error).message);
      setRunning(false);
    }
  };

  return (
    <Modal
      title={`Delete backup ${backupId}`}
      subtitle={<>of {vm.label}{row?.startedAt !== undefined ? `, taken ${formatAbsolute(row.startedAt)}` : ''}</>}
      busy={running}
      onClose={() => onClose()}
      footer={(
        <>
          <button type="button" data-autofocus onClick={() => onClose()} disabled={running}>Cancel</button>
          <button type="button" className="danger" disabled={!details || running} onClick={() => void run()}>
            {running ? 'Deleting…' : dependents.length > 0 ? `Delete ${gone.length} backups` : `Delete backup ${backupId}`}
          </button>
        </>
      )}
    >
      {!details && !error && <p className="muted">Reading what depends on this backup…</p>}
      {details && (
        dependents.length > 0 ? (
          <div className="warn-box" role="note">
            <p><strong>{dependents.length} backup{dependents.length === 1 ? ' builds' : 's build'} on this one</strong> (their layers have it as a backing file). Deleting it alone would leave them unrestorable, so they are deleted with it:</p>
            <ul className="dependents">
              {dependents.map((id) => {
                const r = rows.find((x) => x.key === id);
                return <li key={id}><span className="mono">{id}</span>{r ? ` · ${r.kindText}${r.startedAt !== undefined ? ` · ${formatAbsolute(r.startedAt)}` : ''}` : ''}</li>;
              })}
            </ul>
          </div>
        ) : (
          <p>No other backup builds on this one.</p>
        )
      )}
      {details && (
        <p>
          Frees about {formatBytes(bytes)} (the layer files of {gone.length === 1 ? 'this backup' : `these ${gone.length} backups`}).
          {details.chains.some((c) => c.layers.length > 1) && ' The backups it builds on stay.'} The VM and its checkpoints are not touched.
        </p>
      )}
      {error && <div className="alert" role="alert">{error}</div>}
    </Modal>
  );
}
