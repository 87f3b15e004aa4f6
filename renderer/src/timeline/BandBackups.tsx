// A disk's backup row: ■ full, ◧ incremental, ◇ differential, each bracketed back to the checkpoint
// it measured from; failed and cancelled backups stay as ✕ (P10). Labels ("incremental · 4.0 MiB")
// are placed only where they overprint neither each other nor another backup's glyph; a marker
// without room keeps its glyph and its tooltip.

import { useMemo, type ReactElement } from 'react';
import { formatAbsolute, formatBytes, shortName } from '../format';
import type { BackupMark } from '../model/backup-marks';
import { BACKUP_ROW_H, BAND_PAD, GLYPH, type BandModel } from './model';
import { placeLabels, textWidth, type LabelOption } from './labels';
import { at, type XScale } from './geometry';

function backupGlyph(b: BackupMark, disk: string): string {
  if (b.state === 'failed') return GLYPH.failed;
  const kind = b.disks.find((d) => d.disk === disk)?.kind ?? b.kind;
  return GLYPH[kind];
}

/** What does not move when the view does: each backup's glyph, words and tooltip (once per band). */
function backupFacts(band: BandModel) {
  const disk = band.disk.name;
  return band.backups.map((b) => {
    const perDisk = b.disks.find((d) => d.disk === disk);
    const kind = perDisk?.kind ?? b.kind;
    const bytes = perDisk?.bytes !== undefined ? formatBytes(perDisk.bytes) : undefined;
    const glyph = backupGlyph(b, disk);
    const words = b.state === 'failed' ? `failed${b.error ? `: ${b.error}` : ''}` : b.state === 'running' ? 'running' : kind;
    // The glyph already says ✕; the words say which backup and how it ended.
    const ended = b.error === 'cancelled' ? 'cancelled' : 'failed';
    const long = b.state === 'failed' ? `${kind} ${ended}` : `${kind}${b.state === 'running' ? ' running' : ''}${bytes ? ` · ${bytes}` : ''}`;
    const short = b.state === 'failed' ? ended : bytes ?? kind;
    return {
      b, kind, glyph,
      options: [{ text: long, width: textWidth(long, 10) }, { text: short, width: textWidth(short, 10) }],
      title: `${glyph} ${kind} backup ${b.id} of ${disk} · ${words}${b.pull ? ' · pull mode (read over NBD)' : ''}\n${formatAbsolute(b.time)}${b.base ? `\nbase: ${shortName(b.base, 80)}` : ''}${bytes ? `\n${bytes} copied` : ''}${perDisk?.reason ? `\n${perDisk.reason}` : ''}`,
    };
  });
}

/** Half the width of a backup glyph (13 px ■ ◧ ◇ ✕, centred on the backup's time). */
const GLYPH_HALF = 5;
/** Where a label starts, right of its own glyph's centre. */
const LABEL_DX = 8;
/** Room kept between a label's end and the next glyph. */
const GLYPH_GAP = 2;

/**
 * Each backup's words, by id: newer backups win the room (the last one is what an admin looks for),
 * and no label covers another backup's glyph or runs past the plot. A label runs right from its own
 * glyph, so only the next glyph to its right limits it: each backup keeps the forms that end before
 * that glyph (found by bisection: a band can hold thousands of backups, and this runs per render).
 */
export function placeBackupLabels(marks: readonly { key: string; bx: number; options: readonly LabelOption[] }[], plotW: number): Map<string, LabelOption> {
  const xs = marks.map((m) => m.bx).sort((a, b) => a - b);
  const candidates = marks.map(({ key, bx, options }, i) => {
    // The first glyph whose right edge (and gap) reaches past the label's start: its own glyph and
    // every one left of it end before; any other limits the label to what ends before its left edge.
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid]! + GLYPH_HALF + GLYPH_GAP <= bx + LABEL_DX) lo = mid + 1;
      else hi = mid;
    }
    const room = lo < xs.length ? xs[lo]! - GLYPH_HALF - GLYPH_GAP - (bx + LABEL_DX) : Infinity;
    return { key, x: bx + LABEL_DX, priority: i, options: options.filter((o) => o.width <= room) };
  });
  return placeLabels(candidates, [{ x0: plotW, x1: Infinity }]);
}

export function BandBackups({ band, x, plotW, draft }: { band: BandModel; x: XScale; plotW: number; draft?: boolean }) {
  const all = useMemo(() => backupFacts(band), [band]);
  const my = BAND_PAD + BACKUP_ROW_H / 2;
  const facts = all
    .map((f) => ({ ...f, bx: x(f.b.time), baseX: f.b.baseTime !== undefined ? x(f.b.baseTime) : undefined }))
    .filter(({ bx, baseX }) => !(Math.max(bx, baseX ?? bx) < -10 || Math.min(bx, baseX ?? bx) > plotW + 10));
  const labels = draft ? new Map<string, { text: string }>() : placeBackupLabels(facts.map(({ b, options, bx }) => ({ key: b.id, bx, options })), plotW);
  // Brackets in two paths per band (ok, failed), and per backup one glyph (its tooltip inside) and
  // maybe its words: a hundred backups on eight disks stay a few hundred elements, not thousands.
  const out: ReactElement[] = [];
  let brackets = '';
  let failedBrackets = '';
  for (const { b, kind, glyph, title, bx, baseX } of facts) {
    if (baseX !== undefined && kind !== 'full') {
      const d = `M${baseX.toFixed(1)},${my - 4}V${my + 3}H${bx.toFixed(1)}V${my - 4}`;
      if (b.state === 'failed') failedBrackets += d;
      else brackets += d;
    }
    const label = labels.get(b.id);
    out.push(
      <text key={`b-${b.id}`} className={`backup-mark backup-${b.state} backup-${kind} backup-glyph`} data-backup={b.id} data-base={b.base} data-glyph={glyph} data-x={bx.toFixed(1)} transform={at(bx, my + 5)} textAnchor="middle">
        <title>{title}</title>
        {glyph}
      </text>,
    );
    if (label) out.push(<text key={`l-${b.id}`} className={`backup-label backup-label-${b.state}`} data-backup={b.id} transform={at(bx + LABEL_DX, my + 4)}>{label.text}</text>);
  }
  if (brackets) out.unshift(<path key="brackets" className="backup-bracket" d={brackets} />);
  if (failedBrackets) out.unshift(<path key="brackets-failed" className="backup-bracket backup-bracket-failed" d={failedBrackets} />);
  return <>{out}</>;
}
