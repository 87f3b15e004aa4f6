// Demo control: start the write simulator on a disk of the demo VM (lab:write) and watch the
// bitmaps fill. Progress and the log appear in the Jobs pane (job:update).

import { useId, useState, type FormEvent } from 'react';
import type { WritePattern, WriteSimOptions } from '../../../shared/contract';
import type { DiskInfo } from '../../../shared/domain';
import { formatBytes } from '../format';
import { Modal } from './Modal';

export interface WriteSimDialogProps {
  disks: readonly DiskInfo[];
  onStart(options: WriteSimOptions): Promise<unknown>;
  onClose(): void;
}

const PATTERNS: { value: WritePattern; label: string }[] = [
  { value: 'random', label: 'Random — scattered blocks across the disk' },
  { value: 'sequential', label: 'Sequential — one contiguous run, going on from the last one on that disk' },
  { value: 'hotspot', label: 'Hotspot — most writes in a small region' },
];

export function WriteSimDialog(props: WriteSimDialogProps) {
  const writable = props.disks.filter((d) => !d.readOnly);
  const diskId = useId();
  const [disk, setDisk] = useState(writable[0]?.name ?? '');
  const [pattern, setPattern] = useState<WritePattern>('random');
  const [mib, setMib] = useState('16');
  const [rate, setRate] = useState('8');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const size = props.disks.find((d) => d.name === disk)?.virtualSize ?? 0;
  const mibN = Number(mib);
  const rateN = Number(rate);
  const problem = !Number.isInteger(mibN) || mibN < 1 ? 'Amount must be a whole number of MiB, at least 1.'
    : mibN * 1024 * 1024 > size && size > 0 ? `Amount is larger than ${disk} (${formatBytes(size)}).`
    : rate !== '' && (!Number.isFinite(rateN) || rateN < 1) ? 'Rate must be at least 1 MiB/s (or empty for as fast as possible).' : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (problem || !disk) return;
    setBusy(true);
    setError(undefined);
    try {
      await props.onStart({ disk, pattern, mib: mibN, ...(rate !== '' ? { rateMibPerS: rateN } : {}) });
      props.onClose();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  return (
    <Modal
      title="Simulate guest writes"
      subtitle="Writes go through the disk's block backend, as a guest's would; every bitmap that records sees them."
      onClose={props.onClose}
      busy={busy}
      footer={
        <>
          <button type="button" onClick={props.onClose} disabled={busy}>Cancel</button>
          <button type="submit" form="write-sim" className="primary" disabled={busy || !!problem || !disk}>{busy ? 'Starting…' : 'Start writing'}</button>
        </>
      }
    >
      <form id="write-sim" onSubmit={submit}>
        <div className="field">
          <label className="field-label" htmlFor={diskId}>Disk</label>
          <select id={diskId} value={disk} onChange={(e) => setDisk(e.target.value)} data-autofocus>
            {writable.map((d) => <option key={d.name} value={d.name}>{`${d.name} (${formatBytes(d.virtualSize)}, ${d.format})`}</option>)}
          </select>
        </div>
        <fieldset>
          <legend>Pattern</legend>
          {PATTERNS.map((p) => (
            <label key={p.value} className="check">
              <input type="radio" name="pattern" value={p.value} checked={pattern === p.value} onChange={() => setPattern(p.value)} />
              <span>{p.label}</span>
            </label>
          ))}
        </fieldset>
        <label className="field">
          <span className="field-label">Amount (MiB)</span>
          <input type="number" min={1} step={1} value={mib} onChange={(e) => setMib(e.target.value)} />
        </label>
        <label className="field">
          <span className="field-label">Rate (MiB/s)</span>
          <input type="number" min={1} value={rate} onChange={(e) => setRate(e.target.value)} placeholder="as fast as possible" />
        </label>
        {problem && <div className="field-hint error-text">{problem}</div>}
        {error && <div className="alert" role="alert">Could not start the writer: {error}</div>}
      </form>
    </Modal>
  );
}
