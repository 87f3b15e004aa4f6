// The VMs panel: the demo VM, the endpoints and the libvirt connections the user added (a libvirt
// connection lists its domains, each with libvirt's state), each with its connection state;
// the selected VM's disks with size, format, granularity and health (glyph + words + consequence).

import { useState, type FormEvent } from 'react';
import type { VmSummary } from '../../../shared/contract';
import type { HealthIssue } from '../../../shared/domain';
import { formatBytes } from '../format';
import { useApp } from '../store/context';
import { emptyVmView } from '../store/types';

const CONN_GLYPH: Record<VmSummary['connection'], string> = { connected: '●', connecting: '◌', disconnected: '○' };
/** libvirt's domain states in virsh's words. */
const DOMAIN_STATE: Record<string, string> = {
  nostate: 'no state', running: 'running', blocked: 'idle', paused: 'paused', shutdown: 'in shutdown', shutoff: 'shut off', crashed: 'crashed', pmsuspended: 'suspended',
};

/** The first row of each libvirt connection carries its Remove button (it removes the whole connection). */
function firstOfConnection(vms: VmSummary[], vm: VmSummary): boolean {
  return vm.connectionId !== undefined && vms.find((v) => v.connectionId === vm.connectionId) === vm;
}

function HealthLine({ issue }: { issue: HealthIssue }) {
  const glyph = issue.severity === 'error' ? '✕' : issue.severity === 'warning' ? '⚠' : 'ℹ';
  const word = issue.severity === 'error' ? 'Error' : issue.severity === 'warning' ? 'Warning' : 'Note';
  return (
    <div className={`health-issue ${issue.severity}`}>
      <span className="sev">{glyph} {word}:</span> {issue.message}
      <div className="consequence">→ {issue.consequence}</div>
    </div>
  );
}

export function VmPanel() {
  const vms = useApp((s) => s.vms);
  const vmsLoaded = useApp((s) => s.vmsLoaded);
  const selectedVmId = useApp((s) => s.selectedVmId);
  const view = useApp((s) => (s.selectedVmId !== undefined ? s.byVm[s.selectedVmId] : undefined)) ?? emptyVmView();
  const lab = useApp((s) => s.lab);
  const selectVm = useApp((s) => s.selectVm);
  const addVm = useApp((s) => s.addVm);
  const removeVm = useApp((s) => s.removeVm);
  const startLab = useApp((s) => s.startLab);
  const [endpoint, setEndpoint] = useState('');
  const [label, setLabel] = useState('');
  const [addError, setAddError] = useState<string>();
  const [adding, setAdding] = useState(false);
  const [labBusy, setLabBusy] = useState(false);
  const [labError, setLabError] = useState<string>();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (endpoint.trim() === '') {
      setAddError('Enter a QMP endpoint (unix:/path/to/qmp.sock or tcp:HOST:PORT) or a libvirt URI (qemu:///system, qemu+ssh://user@host/system).');
      return;
    }
    setAdding(true);
    setAddError(undefined);
    try {
      await addVm(endpoint.trim(), label.trim() === '' ? undefined : label.trim());
      setEndpoint('');
      setLabel('');
    } catch (err) {
      setAddError(err instanceof Error ? err.message : String(err));
    } finally {
      setAdding(false);
    }
  };

  const onStartLab = async () => {
    setLabBusy(true);
    setLabError(undefined);
    try {
      await startLab();
    } catch (err) {
      setLabError(err instanceof Error ? err.message : String(err));
    } finally {
      setLabBusy(false);
    }
  };

  const issues = view.health?.issues ?? [];
  const hasDemo = vms.some((v) => v.kind === 'demo');
  const selected = vms.find((v) => v.id === selectedVmId);

  return (
    <nav className="sidebar" id="sidebar" aria-label="Virtual machines">
      <h2>Virtual machines</h2>
      {!vmsLoaded && <p className="muted">Loading…</p>}
      {vmsLoaded && vms.length === 0 && <p className="muted">No VMs yet. Start the demo VM, or connect to a QMP endpoint or a libvirt URI below.</p>}
      <ul className="vm-list" aria-label="Virtual machine list">
        {vms.map((vm) => {
          // A libvirt connection with no domain to list yet (connecting, unreachable, or none defined).
          const connectionRow = vm.kind === 'libvirt' && vm.id === vm.connectionId;
          const head = (
            <>
              <div className="vm-name">
                {vm.label} {vm.kind === 'demo' && <span className="badge">demo</span>}
                {vm.kind === 'libvirt' && <span className="badge">libvirt</span>}
                {vm.domainState !== undefined && <span className="badge" data-domain-state={vm.domainState}>{DOMAIN_STATE[vm.domainState] ?? vm.domainState}</span>}
              </div>
              <div className={`conn ${vm.connection}`}>{CONN_GLYPH[vm.connection]} {vm.connection}{vm.detail ? ` — ${vm.detail}` : ''}{connectionRow && vm.connection === 'connected' ? ' — no domains' : ''}</div>
              <div className="vm-meta mono ellipsis" title={vm.endpoint}>{vm.endpoint}</div>
            </>
          );
          return (
            <li key={vm.id} className={`vm-item${vm.id === selectedVmId ? ' selected' : ''}`} data-kind={vm.kind}>
              {connectionRow
                ? <div className="vm-select">{head}</div>
                : <button type="button" className="vm-select" onClick={() => void selectVm(vm.id)} aria-current={vm.id === selectedVmId ? 'true' : undefined}>{head}</button>}
              {vm.kind === 'endpoint' && (
                <div className="vm-actions">
                  <button type="button" className="small" onClick={() => void removeVm(vm.id)} aria-label={`Remove ${vm.label}`}>Remove</button>
                </div>
              )}
              {vm.kind === 'libvirt' && firstOfConnection(vms, vm) && (
                <div className="vm-actions">
                  <button type="button" className="small" onClick={() => void removeVm(vm.connectionId!)} aria-label={`Remove connection ${vm.endpoint}`}>Remove connection</button>
                </div>
              )}
            </li>
          );
        })}
      </ul>
      {(!hasDemo || (lab && !lab.running)) && (
        <div>
          <button type="button" onClick={onStartLab} disabled={labBusy}>{labBusy ? 'Starting demo VM…' : 'Start demo VM'}</button>
          {labError && <div className="alert" role="alert">{labError}</div>}
        </div>
      )}

      {view.info && (
        <section aria-label="Disks">
          <h2>Disks of {selected?.label}</h2>
          <div className="vm-meta">{selected?.kind === 'libvirt' ? 'libvirt domain' : `QEMU ${view.info.qemuVersion}`} · {selected?.kind === 'libvirt' ? (DOMAIN_STATE[view.info.status] ?? view.info.status) : view.info.status}</div>
          {selected?.kind === 'libvirt' && (
            <p className="muted" data-testid="on-demand-counts">
              Changed bytes per checkpoint: computed on demand by libvirt (no live counts); libvirt keeps the checkpoints, in the independent layout only.
            </p>
          )}
          <ul className="disk-list">
            {view.info.disks.map((d) => {
              const diskIssues = issues.filter((i) => i.disk === d.name);
              return (
                <li key={d.name} className="disk-item" data-disk={d.name}>
                  <div className="disk-head">
                    <span className="disk-name">{d.name}</span>
                    <span className="disk-facts">{formatBytes(d.virtualSize)}</span>
                  </div>
                  <div className="disk-facts">{d.format} · granularity {formatBytes(d.granularity)}{d.readOnly ? ' · read-only' : ''}</div>
                  <div className="disk-facts mono" title={d.imageFile}>{d.imageFile.split('/').pop()}</div>
                  {!d.bitmapCapable && !diskIssues.some((i) => i.state === 'disk-incapable') && (
                    <div className="health-issue warning">
                      <span className="sev">⊘ No bitmaps:</span> {d.bitmapIncapableReason ?? 'this image cannot store persistent bitmaps'}
                      <div className="consequence">→ every backup of {d.name} is a full copy</div>
                    </div>
                  )}
                  {diskIssues.map((i, k) => <HealthLine key={k} issue={i} />)}
                  {d.bitmapCapable && diskIssues.length === 0 && <div className="health ok">✓ healthy</div>}
                </li>
              );
            })}
          </ul>
          {issues.filter((i) => !view.info!.disks.some((d) => d.name === i.disk)).map((i, k) => <HealthLine key={`o${k}`} issue={i} />)}
        </section>
      )}
      {view.error && <div className="alert" role="alert">{view.error}</div>}

      <h2>Connect to a VM</h2>
      <form className="add-vm" onSubmit={submit} aria-label="Connect to a VM">
        <label>
          <span className="visually-hidden">QMP endpoint or libvirt URI</span>
          <input type="text" value={endpoint} onChange={(e) => setEndpoint(e.target.value)} placeholder="unix:/run/vm/qmp.sock, tcp:host:4444 or qemu:///system" spellCheck={false} />
        </label>
        <label>
          <span className="visually-hidden">Label</span>
          <input type="text" value={label} onChange={(e) => setLabel(e.target.value)} placeholder="label (optional)" />
        </label>
        <button type="submit" disabled={adding}>{adding ? 'Connecting…' : 'Add VM'}</button>
        {addError && <div className="alert" role="alert">{addError}</div>}
      </form>
    </nav>
  );
}
