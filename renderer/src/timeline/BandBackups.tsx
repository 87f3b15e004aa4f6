// A disk's backup row: ■ full, ◧ incremental, ◇ differential, each bracketed back to the checkpoint
// it measured from; failed and cancelled backups stay as ✕ (P10). Labels ("incremental · 4.0 MiB")
// are placed only where they do not overprint each other; a marker without room keeps its glyph
// and its tooltip.

import type { ReactElement } from 'react';
import { formatAbsolute, formatBytes, shortName } from '../format';
import type { BackupMark } from '../model/backup-marks';
import { BACKUP_ROW_H, BAND_PAD, GLYPH, type BandModel } from './model';
import { placeLabels, textWidth } from './labels';
import type { XScale } from './BandLanes';

function backupGlyph(b: BackupMark, disk: string): string {
  if (b.state === 'failed') return GLYPH.failed;
  const kind = b.disks.find((d) => d.disk === disk)?.kind ?? b.kind;
  return GLYPH[kind];
}

export function BandBackups({ band, x, plotW }: { band: BandModel; x: XScale; plotW: number }) {
  const disk = band.disk.name;
  const my = BAND_PAD + BACKUP_ROW_H / 2;
  const shown = band.backups.filter((b) => {
    const bx = x(b.time);
    const baseX = b.baseTime !== undefined ? x(b.baseTime) : bx;
    return !(Math.max(bx, baseX) < -10 || Math.min(bx, baseX) > plotW + 10);
  });
  const facts = shown.map((b) => {
    const perDisk = b.disks.find((d) => d.disk === disk);
    const kind = perDisk?.kind ?? b.kind;
    const bytes = perDisk?.bytes !== undefined ? formatBytes(perDisk.bytes) : undefined;
    return { b, perDisk, kind, bytes, bx: x(b.time) };
  });
  // Newer backups win the room for their words (the last one is what an admin looks for).
  const labels = placeLabels(facts.map(({ b, kind, bytes, bx }, i) => {
    const long = `${kind}${b.state === 'failed' ? ' ✕ failed' : b.state === 'running' ? ' running' : ''}${bytes ? ` · ${bytes}` : ''}`;
    const short = b.state === 'failed' ? 'failed' : bytes ?? kind;
    return { key: b.id, x: bx + 8, priority: i, options: [{ text: long, width: textWidth(long, 10) }, { text: short, width: textWidth(short, 10) }] };
  }), [{ x0: plotW, x1: Infinity }]);
  const out: ReactElement[] = [];
  for (const { b, perDisk, kind, bytes, bx } of facts) {
    const glyph = backupGlyph(b, disk);
    const baseX = b.baseTime !== undefined && kind !== 'full' ? x(b.baseTime) : undefined;
    const words = b.state === 'failed' ? `failed${b.error ? `: ${b.error}` : ''}` : b.state === 'running' ? 'running' : kind;
    const label = labels.get(b.id);
    out.push(
      <g key={`b-${b.id}`} className={`backup-mark backup-${b.state} backup-${kind}`} data-backup={b.id}>
        <title>{`${glyph} ${kind} backup ${b.id} of ${disk} · ${words}${b.pull ? ' · pull mode (read over NBD)' : ''}\n${formatAbsolute(b.time)}${b.base ? `\nbase: ${shortName(b.base, 80)}` : ''}${bytes ? `\n${bytes} copied` : ''}${perDisk?.reason ? `\n${perDisk.reason}` : ''}`}</title>
        {baseX !== undefined && <path className="backup-bracket" d={`M${baseX},${my - 4}V${my + 3}H${bx}V${my - 4}`} />}
        <text className="backup-glyph" x={bx} y={my + 5} textAnchor="middle">{glyph}</text>
        {label && <text className="backup-label" x={bx + 8} y={my + 4}>{label.text}</text>}
      </g>,
    );
  }
  return <>{out}</>;
}
