// An export-only pull while it is open (issue 5): per disk the NBD URI an outside tool reads, with
// Copy buttons, the commands an admin would run, and the two ways to end it. The checkpoint the
// pull created counts only when the outside copy is reported as succeeded; failure rolls it back.

import { useRef, useState } from 'react';
import { formatBytes } from '../format';
import type { PullExportView, PullSession } from '../store/types';
import { useApp } from '../store/context';

/** Quotes for a POSIX shell: URIs carry "?" and "&", paths may carry anything. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The commands an admin would run against one export (label, what it does, the command). */
export function exportCommands(e: PullExportView): { label: string; what: string; command: string }[] {
  const out: { label: string; what: string; command: string }[] = [];
  if (e.dirtyContext) out.push({ label: 'dirty map', what: `which regions changed since ${e.since ?? 'the base'}`, command: `nbdinfo --map=${e.dirtyContext} ${shellQuote(e.uri)}` });
  out.push({ label: 'export info', what: 'the export: size and metadata contexts', command: `nbdinfo ${shellQuote(e.uri)}` });
  out.push({ label: 'full copy', what: 'copy the whole point in time to a raw image', command: `nbdcopy --progress ${shellQuote(e.uri)} ${shellQuote(`${e.disk}.raw`)}` });
  return out;
}

/**
 * Copies to the clipboard; where the Clipboard API is missing or refused (no secure context, no
 * permission), selects the text in its field so Ctrl+C copies it.
 */
export async function copyText(text: string, field: HTMLInputElement | HTMLTextAreaElement | null): Promise<'copied' | 'selected'> {
  try {
    if (typeof navigator !== 'undefined' && navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return 'copied';
    }
  } catch {
    // fall back to selecting the text
  }
  field?.focus();
  field?.select();
  return 'selected';
}

/** Characters per line of a copy field (mono 11.5 px in the wide dialog); longer values wrap. */
const FIELD_CHARS = 88;

function CopyRow({ label, value, name, title }: { label: string; value: string; name: string; title?: string }) {
  const ref = useRef<HTMLTextAreaElement>(null);
  const [note, setNote] = useState('');
  return (
    <>
      <div className="copy-row" title={title}>
        <span className="copy-label">{label}</span>
        {/* Wrapped, read-only: the whole value stays visible, and a focus selects it for Ctrl+C. */}
        <textarea ref={ref} readOnly value={value} aria-label={name} spellCheck={false} rows={Math.max(1, Math.ceil(value.length / FIELD_CHARS))} onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          className="small"
          aria-label={`Copy ${name}`}
          onClick={async () => {
            const how = await copyText(value, ref.current);
            setNote(how === 'copied' ? `✓ ${label} copied` : 'Selected: press Ctrl+C to copy');
          }}
        >
          Copy
        </button>
      </div>
      <div className="copy-note" aria-live="polite">{note}</div>
    </>
  );
}

function ExportBlock({ e }: { e: PullExportView }) {
  const what = e.kind === 'full' || (!e.kind && !e.since) ? 'full: the whole disk at the point in time' : `${e.kind ?? 'changes'} since ${e.since}: the dirty regions are in ${e.dirtyContext}`;
  return (
    <section className="export-disk" aria-label={`Export of ${e.disk}`} data-disk={e.disk}>
      <h4><span className="mono">{e.disk}</span>{e.size !== undefined ? ` · ${formatBytes(e.size)}` : ''} <span className="muted">— {what}</span></h4>
      <CopyRow label="NBD URI" value={e.uri} name={`NBD URI of ${e.disk}`} />
      {exportCommands(e).map((c) => (
        <CopyRow key={c.command} label={c.label} value={c.command} title={c.what} name={`${c.command.split(' ')[0]} command for ${e.disk}: ${c.what}`} />
      ))}
    </section>
  );
}

/** The two ways to end an export-only pull: the outside copy succeeded (keep the checkpoint) or failed. */
export function PullEndButtons({ session, onEnded }: { session: PullSession; onEnded?(outcome: 'success' | 'failure', backupId: string): void }) {
  const endPullExport = useApp((s) => s.endPullExport);
  const [ending, setEnding] = useState<'success' | 'failure'>();
  const [error, setError] = useState<string>();
  const end = async (outcome: 'success' | 'failure') => {
    setEnding(outcome);
    setError(undefined);
    try {
      const r = await endPullExport(session, outcome);
      onEnded?.(outcome, r.backupId);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setEnding(undefined);
    }
  };
  return (
    <>
      {error && <span className="error-text" role="alert">Could not end the pull: {error}</span>}
      <button type="button" className="danger" disabled={ending !== undefined} onClick={() => void end('failure')}>
        {ending === 'failure' ? 'Rolling back…' : '✕ External copy failed'}
      </button>
      <button type="button" className="primary" disabled={ending !== undefined} onClick={() => void end('success')}>
        {ending === 'success' ? 'Ending…' : '✓ External copy succeeded'}
      </button>
    </>
  );
}

export interface PullExportCardProps {
  session: PullSession;
  /** Show the end buttons under the exports (the Back up dialog has them in its footer instead). */
  endButtons?: boolean;
  onEnded?(outcome: 'success' | 'failure', backupId: string): void;
}

export function PullExportCard({ session, endButtons = true, onEnded }: PullExportCardProps) {
  return (
    <div className="pull-export" aria-label="NBD exports">
      <p>
        The point in time is frozen and exported read-only over NBD. Read it with your tool, then say how the copy went:
        the pull's checkpoint is kept only if it succeeded. Guest writes meanwhile go to fleecing images, which grow until you end it.
      </p>
      {session.exports.map((e) => <ExportBlock key={e.disk} e={e} />)}
      {endButtons && <div className="actions-row end-row"><PullEndButtons session={session} onEnded={onEnded} /></div>}
    </div>
  );
}
