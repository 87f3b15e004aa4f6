// Create a checkpoint: a timestamped default name, a description, one checkbox per disk (disks
// that cannot hold bitmaps are disabled with the reason), and — only at a VM's first checkpoint —
// the bitmap layout, each explained with its own small lane picture.

import { useId, useState, type FormEvent } from 'react';
import { CHECKPOINT_NAME_RULES, checkpointNameProblem } from '../../../shared/names';
import type { BitmapLayout, Checkpoint, VmInfo } from '../../../shared/domain';
import { defaultCheckpointName, formatBytes, shortName } from '../format';
import { Modal } from './Modal';

export interface CreateCheckpointDialogProps {
  vm: VmInfo;
  vmLabel: string;
  checkpoints: readonly Checkpoint[];
  current?: string;
  now: number;
  onCreate(options: { name: string; description?: string; disks: { name: string; checkpoint: 'bitmap' | 'no' }[]; layout?: BitmapLayout }): Promise<unknown>;
  onClose(): void;
}

/** Three checkpoints c1..c3 on one disk, drawn the way the timeline draws each layout. */
function LayoutPicture({ layout }: { layout: BitmapLayout }) {
  const xs = [14, 64, 114];
  const end = 170;
  return (
    <svg width={184} height={58} aria-hidden="true">
      <line className="mini-axis" x1={8} x2={end} y1={12} y2={12} />
      {xs.map((x, i) => (
        <g key={x}>
          <circle className="mini-node" cx={x} cy={12} r={3.5} />
          <text className="mini-text" x={x - 5} y={7}>{`c${i + 1}`}</text>
        </g>
      ))}
      <text className="mini-text" x={end - 14} y={7}>now</text>
      {layout === 'independent'
        ? xs.map((x, i) => <rect key={x} className="mini-rec" x={x} y={44 - i * 9} width={end - x} height={6} rx={1} />)
        : xs.map((x, i) => (
            <rect key={x} className={i === xs.length - 1 ? 'mini-rec' : 'mini-dis'} x={x} y={40} width={(xs[i + 1] ?? end) - x - 1} height={7} rx={1} />
          ))}
    </svg>
  );
}

export function CreateCheckpointDialog(props: CreateCheckpointDialogProps) {
  const { vm, checkpoints } = props;
  const firstCheckpoint = checkpoints.length === 0;
  const existingLayout = checkpoints[0]?.layout;
  const ids = { name: useId(), description: useId() };
  const [name, setName] = useState(() => defaultCheckpointName(props.now));
  const [description, setDescription] = useState('');
  const [layout, setLayout] = useState<BitmapLayout>('independent');
  const [selected, setSelected] = useState<Record<string, boolean>>(() =>
    Object.fromEntries(vm.disks.map((d) => [d.name, d.bitmapCapable && !d.readOnly])),
  );
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const chosen = vm.disks.filter((d) => selected[d.name]);
  // The engine's own rules (shared/names.ts): a name this dialog accepts is never refused later.
  const nameProblem = name.trim() === '' ? 'Enter a name.'
    : checkpointNameProblem(name) ?? (checkpoints.some((c) => c.name === name) ? `A checkpoint named "${shortName(name, 40)}" already exists.` : undefined);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (nameProblem || chosen.length === 0) return;
    setBusy(true);
    setError(undefined);
    try {
      await props.onCreate({
        name,
        description: description.trim() === '' ? undefined : description,
        disks: vm.disks.map((d) => ({ name: d.name, checkpoint: selected[d.name] ? 'bitmap' : 'no' })),
        layout: firstCheckpoint ? layout : undefined,
      });
      props.onClose();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  return (
    <Modal
      title={`Create checkpoint of ${props.vmLabel}`}
      subtitle={props.current ? `The new checkpoint becomes a child of ${shortName(props.current, 40)}.` : 'This will be the first checkpoint of this VM.'}
      onClose={props.onClose}
      busy={busy}
      wide={firstCheckpoint}
      footer={
        <>
          <span className="foot-note">{chosen.length} of {vm.disks.length} disks get a bitmap</span>
          <button type="button" onClick={props.onClose} disabled={busy}>Cancel</button>
          <button type="submit" form="create-cp" className="primary" disabled={busy || !!nameProblem || chosen.length === 0}>
            {busy ? 'Creating…' : 'Create checkpoint'}
          </button>
        </>
      }
    >
      <form id="create-cp" onSubmit={submit}>
        <div className="field">
          <label className="field-label" htmlFor={ids.name}>Name</label>
          <input id={ids.name} type="text" value={name} onChange={(e) => setName(e.target.value)} data-autofocus aria-invalid={!!nameProblem} spellCheck={false} />
          {nameProblem
            ? <div className="field-hint error-text wrap-anywhere" role="alert">{nameProblem}</div>
            : <div className="field-hint">Also the name of the dirty bitmap on each disk; {CHECKPOINT_NAME_RULES}.</div>}
        </div>
        <div className="field">
          <label className="field-label" htmlFor={ids.description}>Description</label>
          <textarea id={ids.description} rows={2} value={description} onChange={(e) => setDescription(e.target.value)} placeholder="optional" />
        </div>
        <fieldset>
          <legend>Disks</legend>
          {vm.disks.map((d) => (
            <label key={d.name} className="check">
              <input
                type="checkbox"
                checked={!!selected[d.name]}
                disabled={!d.bitmapCapable || d.readOnly}
                onChange={(e) => setSelected((s) => ({ ...s, [d.name]: e.target.checked }))}
              />
              <span>
                <span className="mono">{d.name}</span> <span className="muted">{formatBytes(d.virtualSize)} · {d.format}</span>
                {!d.bitmapCapable && <div className="field-hint">⊘ cannot hold a persistent bitmap{d.bitmapIncapableReason ? `: ${d.bitmapIncapableReason}` : ''}</div>}
                {d.bitmapCapable && d.readOnly && <div className="field-hint">⊘ read-only disk: nothing to track</div>}
              </span>
            </label>
          ))}
          {chosen.length === 0 && <div className="field-hint error-text">Choose at least one disk.</div>}
        </fieldset>
        {firstCheckpoint ? (
          <fieldset>
            <legend>Bitmap layout (chosen once, at the first checkpoint)</legend>
            <svg width={0} height={0} aria-hidden="true" className="visually-hidden">
              <defs>
                <pattern id="tm-mini-hatch" patternUnits="userSpaceOnUse" width="5" height="5" patternTransform="rotate(45)">
                  <rect width="5" height="5" className="hatch-bg-disabled" />
                  <line x1="0" y1="0" x2="0" y2="5" className="hatch-line-disabled" />
                </pattern>
              </defs>
            </svg>
            <div className="layout-choice">
              <label className="layout-card">
                <span className="check">
                  <input type="radio" name="layout" value="independent" checked={layout === 'independent'} onChange={() => setLayout('independent')} />
                  <strong>Independent (libvirt today)</strong>
                </span>
                <LayoutPicture layout="independent" />
                <p>Every checkpoint's bitmap keeps recording until deleted. Deleting one never touches the others; "changes since X" is X's bitmap alone.</p>
              </label>
              <label className="layout-card">
                <span className="check">
                  <input type="radio" name="layout" value="chained" checked={layout === 'chained'} onChange={() => setLayout('chained')} />
                  <strong>Chained (libvirt 2019)</strong>
                </span>
                <LayoutPicture layout="chained" />
                <p>Only the newest bitmap records; older ones are frozen, each covering its own interval. Fewer active bitmaps; deleting one merges it into its predecessor.</p>
              </label>
            </div>
          </fieldset>
        ) : (
          <div className="info-box">Layout: <strong>{existingLayout}</strong> (chosen at this VM's first checkpoint).</div>
        )}
        {error && <div className="alert" role="alert">Could not create the checkpoint: {error}</div>}
      </form>
    </Modal>
  );
}
