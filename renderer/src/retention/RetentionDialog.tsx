// The retention simulator (issue 13): choose keep rules and a max chain length, and see — before
// anything changes — which backup points a prune would remove (greyed), which layers it would
// merge into a later point (marked) and the bytes it would free: the engine's own dry run
// (backup:prune with dryRun), the same table as `tidemark backup-prune --dry-run`. Apply asks for a
// confirmation, then prunes for real. Below: the VM's backup schedules with their next run.

import { useEffect, useState } from 'react';
import type { PreviewLayer, RetentionReport, ScheduleListing, VmSummary } from '../../../shared/contract';
import { createApi } from '../api';
import { formatAbsolute, formatBytes, shortName } from '../format';
import { useApp } from '../store/context';
import { Modal } from '../dialogs/Modal';
import { schedulesOfVm } from '../timeline/schedule-marks';
import { EMPTY_FORM, parsePolicyForm, previewFigures, RULES, type PolicyForm } from './policy-form';
import './retention.css';

export interface RetentionDialogProps {
  vm: VmSummary;
  onClose(): void;
}

const LABELS: Record<keyof PolicyForm, string> = {
  last: 'Keep last', hourly: 'Hourly', daily: 'Daily', weekly: 'Weekly', monthly: 'Monthly', yearly: 'Yearly', maxChain: 'Max chain',
};

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function LayerBadge({ layer }: { layer: PreviewLayer }) {
  const text = layer.action === 'merge' ? `${layer.disk} → merged into ${shortName(layer.into ?? '', 24)}`
    : layer.action === 'delete' ? `${layer.disk} deleted (${formatBytes(layer.fileSize)})`
    : layer.action === 'rewrite' ? `${layer.disk} receives merged data (chain ${layer.chainLength ?? '?'})`
    : `${layer.disk} kept (chain ${layer.chainLength ?? '?'})`;
  return <span className={`ret-layer ret-${layer.action}`} data-action={layer.action} title={layer.into}>{text}</span>;
}

function freed(b: { atLeast: number; atMost: number }): string {
  return b.atLeast === b.atMost ? formatBytes(b.atMost) : `${formatBytes(b.atLeast)} – ${formatBytes(b.atMost)}`;
}

export function RetentionDialog({ vm, onClose }: RetentionDialogProps) {
  const repository = useApp((s) => s.repository);
  const loadBackups = useApp((s) => s.loadBackups);
  const info = useApp((s) => s.byVm[vm.id]?.info);
  const [form, setForm] = useState<PolicyForm>({ ...EMPTY_FORM, last: '3', daily: '7', weekly: '4' });
  const [preview, setPreview] = useState<RetentionReport>();
  const [error, setError] = useState<string>();
  const [phase, setPhase] = useState<'form' | 'confirm' | 'running' | 'done'>('form');
  const [result, setResult] = useState<RetentionReport>();
  const [schedules, setSchedules] = useState<ScheduleListing | string>();
  const parsed = parsePolicyForm(form);
  const key = JSON.stringify(parsed);

  // The dry run follows the form (after a short pause while typing); nothing changes on disk.
  useEffect(() => {
    if (!parsed.ok || phase !== 'form') return;
    let live = true;
    const t = setTimeout(() => {
      createApi().invoke('backup:prune', vm.id, { ...(repository ? { repo: repository } : {}), ...policyOf(parsed), dryRun: true })
        .then((r) => live && (setPreview(r), setError(undefined)), (e: unknown) => live && (setPreview(undefined), setError(message(e))));
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [key, vm.id, repository, phase]);

  useEffect(() => {
    // A schedule names the VM by its durable identity (vm:info's id/UUID), not the host's VM id.
    createApi().invoke('schedule:list').then((l) => setSchedules({ ...l, schedules: schedulesOfVm(l.schedules, vm.id, info) }), (e: unknown) => setSchedules(message(e)));
  }, [vm.id, info]);

  const apply = async () => {
    if (!parsed.ok) return;
    setPhase('running');
    try {
      const r = await createApi().invoke('backup:prune', vm.id, { ...(repository ? { repo: repository } : {}), ...policyOf(parsed), dryRun: false });
      setResult(r);
      setPhase('done');
      void loadBackups(vm.id);
    } catch (e) {
      setError(message(e));
      setPhase('form');
    }
  };

  const figures = preview ? previewFigures(preview.preview) : undefined;
  const footer = phase === 'done' ? <button type="button" className="primary" onClick={onClose}>Close</button>
    : phase === 'confirm' || phase === 'running' ? (
      <>
        <span className="foot-note">Removed points cannot be brought back. Every kept point restores the same bytes.</span>
        <button type="button" disabled={phase === 'running'} onClick={() => setPhase('form')}>Back</button>
        <button type="button" className="danger" data-autofocus disabled={phase === 'running'} onClick={() => void apply()}>
          {phase === 'running' ? 'Pruning…' : `Remove ${figures?.removed ?? 0} point(s) now`}
        </button>
      </>
    ) : (
      <>
        <span className="foot-note">Nothing changes until you apply.</span>
        <button type="button" onClick={onClose}>Close</button>
        <button type="button" className="primary" disabled={!figures || figures.removed === 0} onClick={() => setPhase('confirm')}>Apply…</button>
      </>
    );

  return (
    <Modal title="Retention: prune and merge backups" subtitle={`${vm.label}${repository ? ` · ${repository}` : ''}`} footer={footer} onClose={onClose} wide busy={phase === 'running'}>
      <fieldset className="ret-policy" disabled={phase !== 'form'}>
        <legend>Keep policy (a point kept by any rule is kept)</legend>
        {([...RULES, 'maxChain'] as const).map((r) => (
          <label key={r} className="ret-rule">
            <span>{LABELS[r]}</span>
            <input type="text" inputMode="numeric" size={4} value={form[r]} aria-label={LABELS[r]} data-rule={r}
              onChange={(e) => setForm((f) => ({ ...f, [r]: e.target.value }))} />
          </label>
        ))}
      </fieldset>
      {!parsed.ok && <div className="alert" role="alert">{parsed.problem}</div>}
      {error && <div className="alert" role="alert">{error}</div>}
      {phase === 'done' && result && (
        <div className="ret-result" role="status">
          Done: {result.kept.length} kept, {result.removed.length} removed, {result.merged.reduce((n, m) => n + m.layers.length, 0)} layer(s) merged; {formatBytes(Math.max(0, result.result?.bytesFreed ?? 0))} freed.
        </div>
      )}
      {phase === 'confirm' && figures && (
        <div className="ret-confirm" role="alert">
          Remove {figures.removed} backup point(s) and merge {figures.merged} layer(s) into later points, freeing about {freed(figures.bytesFreed)}?
        </div>
      )}
      {figures && phase !== 'done' && (
        <p className="ret-summary" data-testid="ret-summary">
          {figures.kept} kept · <strong>{figures.removed} removed</strong> · {figures.merged} layer(s) merged · frees {freed(figures.bytesFreed)}
        </p>
      )}
      {preview && phase !== 'done' && (
        <table className="grid ret-table">
          <thead><tr><th>Point ({preview.preview.timeZone})</th><th>Kind</th><th>Fate</th><th>Why</th><th>Layers</th></tr></thead>
          <tbody>
            {preview.preview.rows.map((r) => (
              <tr key={r.id} className={r.keep ? 'ret-kept' : 'ret-removed'} data-point={r.id} data-keep={r.keep}>
                <td title={r.id}>{r.local}</td>
                <td>{r.kind}</td>
                <td>{r.keep ? 'keep' : 'remove'}</td>
                <td>{r.why.join(', ')}</td>
                <td>{r.layers.map((l) => <LayerBadge key={l.disk} layer={l} />)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {preview && preview.checkpointsFreed.length > 0 && phase !== 'done' && (
        <p className="muted">Checkpoints only removed points used stay in the VM (delete them to drop their bitmaps): {preview.checkpointsFreed.map((c) => shortName(c, 24)).join(', ')}</p>
      )}
      <h2 className="ret-h2">Schedules of this VM</h2>
      {schedules === undefined ? <p className="muted">Loading…</p>
        : typeof schedules === 'string' ? <p className="muted">Cannot list schedules: {schedules}</p>
        : schedules.schedules.length === 0 ? <p className="muted">No backup schedule in {schedules.target.dir}. Add one with <code>tidemark schedule add --every daily --keep-daily 7</code>.</p>
        : (
          <ul className="ret-schedules">
            {schedules.schedules.map((s) => (
              <li key={s.id} data-schedule={s.id}>
                <strong>{s.id}</strong> ({s.vm.name ?? s.vm.id}): {s.mode} backup {s.every}
                {s.policy || s.maxChain ? `, then prune (${Object.entries(s.policy ?? {}).map(([k, n]) => `keep-${k} ${n}`).concat(s.maxChain ? [`max-chain ${s.maxChain}`] : []).join(', ')})` : ''}
                {' · next run '}{s.next !== undefined ? formatAbsolute(s.next) : 'unknown'}
              </li>
            ))}
          </ul>
        )}
    </Modal>
  );
}

function policyOf(p: { policy?: import('../../../shared/contract').KeepPolicy; maxChain?: number }) {
  return { ...(p.policy ? { policy: p.policy } : {}), ...(p.maxChain !== undefined ? { maxChain: p.maxChain } : {}) };
}
