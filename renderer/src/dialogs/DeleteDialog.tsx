// Delete a checkpoint: plain / with its subtree / its children only / metadata only — showing
// exactly which checkpoints go, which get a new parent, and what happens to each disk's bitmap
// (independent: removed; chained: merged into its predecessor first). Cancel has the focus.

import { useMemo, useState } from 'react';
import type { Checkpoint, DeleteMode, DeleteResult } from '../../../shared/domain';
import { displayName, shortName } from '../format';
import { predecessorsOnDisk } from '../model/bitmaps';
import { Modal } from './Modal';

export interface DeleteDialogProps {
  vmLabel: string;
  checkpoints: readonly Checkpoint[];
  target: string;
  current?: string;
  onDelete(name: string, mode: DeleteMode): Promise<DeleteResult>;
  onClose(): void;
}

export interface DeletePlan {
  deleted: string[];
  kept: string[];
  reparented: { name: string; parent?: string }[];
  /** One line per disk (or per checkpoint and disk) of what happens to the bitmaps. */
  bitmapEffects: string[];
}

function descendants(byParent: Map<string, string[]>, name: string): string[] {
  const out: string[] = [];
  const stack = [...(byParent.get(name) ?? [])];
  while (stack.length) {
    const n = stack.shift()!;
    out.push(n);
    stack.push(...(byParent.get(n) ?? []));
  }
  return out;
}

/** The checkpoints a mode removes, children before their parents (the engine's order). */
function postOrder(byParent: Map<string, string[]>, name: string, mode: DeleteMode): string[] {
  if (mode === 'plain' || mode === 'metadata') return [name];
  const out: string[] = [];
  const visit = (n: string) => {
    for (const c of byParent.get(n) ?? []) visit(c);
    out.push(n);
  };
  visit(name);
  return mode === 'children-only' ? out.filter((n) => n !== name) : out;
}

/** What a delete would do, computed from the tree (the engine does the same; this is the preview). */
export function planDelete(checkpoints: readonly Checkpoint[], target: string, mode: DeleteMode): DeletePlan {
  const byName = new Map(checkpoints.map((c) => [c.name, c]));
  const byParent = new Map<string, string[]>();
  for (const c of checkpoints) if (c.parent !== undefined) byParent.set(c.parent, [...(byParent.get(c.parent) ?? []), c.name]);
  const cp = byName.get(target);
  if (!cp) return { deleted: [], kept: [], reparented: [], bitmapEffects: [] };
  const children = byParent.get(target) ?? [];
  const subtree = descendants(byParent, target);
  const layout = cp.layout;
  let deleted: string[];
  let reparented: DeletePlan['reparented'] = [];
  switch (mode) {
    case 'plain':
    case 'metadata':
      deleted = [target];
      reparented = children.map((c) => ({ name: c, parent: cp.parent }));
      break;
    case 'children':
      deleted = [target, ...subtree];
      break;
    case 'children-only':
      deleted = subtree;
      break;
  }
  const bitmapEffects: string[] = [];
  if (mode === 'metadata') {
    const disks = cp.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name);
    if (disks.length) bitmapEffects.push(`Bitmap ${target} stays on ${disks.join(', ')}; Tidemark forgets it (it will be listed as a foreign bitmap).`);
    const pred = layout === 'chained' ? disks.map((d) => predecessorsOnDisk(checkpoints, d).get(target)).find((p) => p !== undefined) : undefined;
    if (pred !== undefined) bitmapEffects.push(`Chained layout: ${pred} then misses the interval ${target} recorded (marked incomplete).`);
  } else {
    // As the engine does it: deepest first, each bitmap merged (chained) into its predecessor in
    // the tree as it is at that moment, so a deleted subtree ends up in the nearest survivor.
    let working = [...checkpoints];
    for (const name of postOrder(byParent, target, mode)) {
      const c = working.find((x) => x.name === name)!;
      for (const d of c.disks) {
        if (d.checkpoint !== 'bitmap') continue;
        const bitmap = d.bitmap ?? c.name;
        const pred = layout === 'chained' ? predecessorsOnDisk(working, d.name).get(name) : undefined;
        if (layout !== 'chained') bitmapEffects.push(`${d.name}: bitmap ${bitmap} is removed.`);
        else if (pred === undefined) bitmapEffects.push(`${d.name}: bitmap ${bitmap} is removed (no older bitmap to merge into).`);
        else bitmapEffects.push(`${d.name}: bitmap ${bitmap} is merged into ${pred}, then removed — ${pred} then covers its interval.`);
      }
      working = working.filter((x) => x.name !== name).map((x) => (x.parent === name ? { ...x, parent: c.parent } : x));
    }
  }
  const gone = new Set(deleted);
  return { deleted, kept: checkpoints.filter((c) => !gone.has(c.name)).map((c) => c.name), reparented, bitmapEffects };
}

const MODES: { mode: DeleteMode; title: string; hint: string }[] = [
  { mode: 'plain', title: 'This checkpoint only', hint: 'Its children move up to its parent.' },
  { mode: 'children', title: 'This checkpoint and everything under it', hint: 'The whole subtree goes.' },
  { mode: 'children-only', title: 'Only the checkpoints under it', hint: 'This checkpoint stays.' },
  { mode: 'metadata', title: 'Metadata only', hint: 'Forget it in Tidemark; leave the bitmaps in the images.' },
];

export function DeleteDialog(props: DeleteDialogProps) {
  const [mode, setMode] = useState<DeleteMode>('plain');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const plan = useMemo(() => planDelete(props.checkpoints, props.target, mode), [props.checkpoints, props.target, mode]);
  const hasChildren = props.checkpoints.some((c) => c.parent === props.target);

  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await props.onDelete(props.target, mode);
      props.onClose();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };

  const verb = mode === 'metadata' ? `Forget ${shortName(props.target, 24)}` : plan.deleted.length === 1 ? `Delete ${shortName(plan.deleted[0]!, 24)}` : `Delete ${plan.deleted.length} checkpoints`;

  return (
    <Modal
      title={`Delete checkpoint ${shortName(props.target, 40)} of ${props.vmLabel}`}
      subtitle="Deleting a checkpoint never changes disk data; it removes the record of changes since that point."
      onClose={props.onClose}
      busy={busy}
      footer={
        <>
          <button type="button" onClick={props.onClose} disabled={busy} data-autofocus>Cancel</button>
          <button type="button" className="danger" onClick={run} disabled={busy || plan.deleted.length === 0} title={mode === 'metadata' || plan.deleted.length === 1 ? displayName(plan.deleted[0] ?? props.target) : undefined}>
            {busy ? 'Deleting…' : verb}
          </button>
        </>
      }
    >
      <fieldset>
        <legend>What to delete</legend>
        {MODES.map((m) => (
          <label key={m.mode} className="check">
            <input
              type="radio"
              name="delete-mode"
              value={m.mode}
              checked={mode === m.mode}
              disabled={(m.mode === 'children-only' || m.mode === 'children') && !hasChildren}
              onChange={() => setMode(m.mode)}
            />
            <span><strong>{m.title}</strong> <span className="muted">— {m.hint}</span></span>
          </label>
        ))}
      </fieldset>
      <h3>What goes</h3>
      {plan.deleted.length === 0 ? <p className="muted">Nothing: {shortName(props.target, 40)} has no children.</p> : (
        <ul className="delete-list" aria-label="Checkpoints deleted">
          {plan.deleted.map((n) => <li key={n} title={displayName(n)}><span className="goes">✕ {shortName(n, 60)}</span>{n === props.current ? ' (current checkpoint: the next one is created under its parent)' : ''}</li>)}
        </ul>
      )}
      {plan.reparented.length > 0 && (
        <>
          <h3>New parents</h3>
          <ul className="delete-list">
            {plan.reparented.map((r) => <li key={r.name}><span className="stays">{shortName(r.name, 40)}</span> → {r.parent !== undefined ? shortName(r.parent, 40) : '(becomes a root)'}</li>)}
          </ul>
        </>
      )}
      {plan.bitmapEffects.length > 0 && (
        <>
          <h3>Bitmaps</h3>
          <ul className="delete-list" aria-label="Bitmap changes">
            {plan.bitmapEffects.map((t) => <li key={t}>{t}</li>)}
          </ul>
        </>
      )}
      {mode !== 'metadata' && plan.deleted.length > 0 && (
        <div className="warn-box">Backups already taken stay usable. New incremental or differential backups can no longer start from {plan.deleted.length === 1 ? shortName(plan.deleted[0]!, 40) : 'these checkpoints'}.</div>
      )}
      {error && <div className="alert" role="alert">Could not delete: {error}</div>}
    </Modal>
  );
}
