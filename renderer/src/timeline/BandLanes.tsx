// A disk's bitmap lanes (ux-principles §5.2): spans on stacked sub-tracks (newest on top), each state
// drawn with a pattern, a glyph and words; missing bitmaps as ∅ markers; and, when a disk has more
// bitmaps than rows, the oldest folded into one row that opens (a button) — the current and the
// selected checkpoint's bitmaps are never folded.

import type { KeyboardEvent, ReactElement } from 'react';
import { formatAbsolute, formatBytes, shortName } from '../format';
import { GLYPH, STATE_WORDS, TRACK_H, type BandModel } from './model';
import { placeLabels, textWidth } from './labels';
import type { BitmapSpan } from './spans';
import { at, type XScale } from './geometry';

/** Narrower spans are drawn as part of a cluster. */
const MIN_SPAN_PX = 4;

export type { XScale } from './geometry';

export function spanWords(s: BitmapSpan, disk: string): string {
  switch (s.state) {
    case 'recording':
      return `${STATE_WORDS.recording}${s.count !== undefined ? ` · ${formatBytes(s.count)}` : ''}`;
    case 'disabled':
      return `${STATE_WORDS.disabled}${s.endKnown ? '' : ' (since unknown)'}${s.count !== undefined ? ` · ${formatBytes(s.count)} in its interval` : ''}`;
    case 'busy':
      return `${STATE_WORDS.busy}${s.recording ? ', recording' : ''}`;
    case 'inconsistent':
      return `unusable — next backup of ${disk} will be full`;
    case 'unknown':
      return STATE_WORDS.unknown;
  }
}

/** Text cut to `px` at the 10 px label size, or undefined when not even a few characters fit. */
function fit(text: string, px: number): string | undefined {
  const n = Math.floor(px / 5.9);
  if (n < 4) return undefined;
  return text.length <= n ? text : `${text.slice(0, n - 1)}…`;
}

interface Props {
  band: BandModel;
  x: XScale;
  plotW: number;
  selected?: string;
  /** While the user zooms or pans: no words on the spans. */
  draft?: boolean;
}

/** The row of the folded older bitmaps: a button that opens or folds them (the lanes' bottom row). */
export function GroupRow({ band, x, plotW, onToggle }: { band: BandModel; x: XScale; plotW: number; onToggle(): void }) {
  const g = band.lane.folded!;
  // The group's row is the bottom one: the folded bitmaps are the oldest.
  const y = band.tracksTop + band.lane.tracks * TRACK_H + 1;
  const disk = band.disk.name;
  // Clamped to the plot (it stays in the DOM off screen: it is a keyboard stop).
  const clamp = (px: number) => Math.max(-20, Math.min(plotW + 20, px));
  const x1 = clamp(x(g.start));
  const x2 = Math.max(x1 + 2, clamp(x(g.end)));
  const states = g.states.map((st) => STATE_WORDS[st]).join(', ');
  const words = g.open
    ? `▾ ${g.count} older bitmaps shown above — fold them`
    : `▸ ${g.count} older bitmaps${g.recording ? ` · ${g.recording} recording` : ''} — open`;
  const label = fit(words, Math.min(x2, plotW) - Math.max(x1, 0) - 8) ?? fit(`${g.open ? '▾' : '▸'} ${g.count}`, 60);
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      onToggle();
    }
  };
  return (
    <g
      className={`span span-group${g.open ? ' is-open' : ''}`}
      role="button"
      tabIndex={0}
      aria-expanded={g.open}
      aria-label={`${g.count} older bitmaps on ${disk} (${states})${g.open ? ', shown: fold them' : ': show each'}`}
      data-group={disk}
      onClick={(e) => {
        e.stopPropagation();
        onToggle();
      }}
      onPointerDown={(e) => e.stopPropagation()}
      onKeyDown={onKeyDown}
    >
      <title>{`${g.count} older bitmaps on ${disk}: ${states}, from ${formatAbsolute(g.start)}. ${g.open ? 'Click to fold them into one row.' : 'Click to draw each on its own row.'}`}</title>
      <rect x={x1} y={y} width={x2 - x1} height={TRACK_H - 3} rx={1.5} />
      {label && <text className="span-label" transform={at(Math.max(x1, 0) + 4, y + TRACK_H - 6)}>{label}</text>}
    </g>
  );
}

/** The spans and missing markers (the folded group's row is GroupRow, drawn by the band). */
export function BandLanes({ band, x, plotW, selected, draft }: Props) {
  const disk = band.disk.name;
  const out: ReactElement[] = [];
  const trackTop = (k: number) => band.tracksTop + (band.lane.tracks - 1 - k) * TRACK_H;
  const clampX = (px: number) => Math.max(-20, Math.min(plotW + 20, px));
  const baselineSet = new Set(band.seriesBitmaps);

  // Spans by track. Zoomed out, spans narrower than a few pixels are drawn as one cluster per track
  // (level of detail): thousands of 1-px rects cost frames and say nothing a cluster does not.
  const byTrack = new Map<number, BitmapSpan[]>();
  for (const s of band.lane.spans) {
    if (s.track < 0) continue; // folded into the group
    const x1 = x(s.start);
    const x2 = x(s.end);
    if (x2 < -10 || x1 > plotW + 10) continue;
    const list = byTrack.get(s.track) ?? [];
    list.push(s);
    byTrack.set(s.track, list);
  }
  for (const [track, spans] of byTrack) {
    spans.sort((a, b) => a.start - b.start);
    let cluster: { key: string; x1: number; x2: number; n: number; states: Set<string> } | undefined;
    const y = trackTop(track) + 1;
    const h = TRACK_H - 3;
    const flush = () => {
      if (!cluster) return;
      const c = cluster;
      cluster = undefined;
      const state = c.states.size === 1 ? [...c.states][0]! : 'mixed';
      out.push(
        // Keyed by its first bitmap, not its position: zooming moves a cluster, it does not remount it.
        <g key={`c-${c.key}`} className={`span span-cluster span-${state}`} data-cluster={c.n}>
          <title>{`${c.n} bitmaps on ${disk} (${[...c.states].map((st) => STATE_WORDS[st as keyof typeof STATE_WORDS] ?? st).join(', ')}) — zoom in to see each`}</title>
          <rect x={c.x1} y={y} width={Math.max(2, c.x2 - c.x1)} height={h} rx={1.5} />
        </g>,
      );
    };
    for (const s of spans) {
      const x1 = clampX(x(s.start));
      const x2 = clampX(x(s.end));
      const keep = s.checkpoint === selected || x2 - x1 >= MIN_SPAN_PX;
      if (!keep) {
        if (cluster && x1 - cluster.x2 <= 1) {
          cluster.x2 = Math.max(cluster.x2, x2);
          cluster.n++;
          cluster.states.add(s.state);
        } else {
          flush();
          cluster = { key: s.checkpoint, x1, x2, n: 1, states: new Set([s.state]) };
        }
        continue;
      }
      flush();
      const w = Math.max(2, x2 - x1);
      const words = spanWords(s, disk);
      const glyph = GLYPH[s.state];
      const text = draft ? undefined : fit(`${glyph} ${shortName(s.checkpoint, 40)} · ${words}`, Math.min(x2, plotW) - Math.max(x1, 0) - 6);
      const cls = ['span', `span-${s.state}`, s.checkpoint === selected ? 'span-selected' : '', baselineSet.has(s.bitmap) ? 'span-baseline' : '']
        .filter(Boolean).join(' ');
      out.push(
        <g key={`s-${s.checkpoint}`} className={cls} data-checkpoint={s.checkpoint} data-state={s.state}>
          <title>{`${disk} · bitmap ${shortName(s.bitmap, 120)}\n${glyph} ${words}\nfrom ${formatAbsolute(s.start)}${s.state === 'disabled' && s.endKnown ? ` to ${formatAbsolute(s.end)}` : ' to now'}`}</title>
          <rect x={x1} y={y} width={w} height={h} rx={1.5} />
          {s.state === 'recording' && <path className="rec-arrow" d={`M${x2 + 2},${y + 1.5}L${x2 + 6},${y + h / 2}L${x2 + 2},${y + h - 1.5}`} />}
          {s.state === 'disabled' && s.endKnown && <rect className="end-cap" x={x2 - 2} y={y - 1} width={3} height={h + 2} />}
          {text && <text className="span-label" transform={at(Math.max(x1, 0) + 4, y + h - 3)}>{text}</text>}
        </g>,
      );
    }
    flush();
  }

  // Missing bitmaps: a ∅ marker each; their words only where they do not overprint each other.
  const missing = band.lane.missing.map((m) => ({ m, mx: x(m.time) })).filter(({ mx }) => mx >= -10 && mx <= plotW + 10);
  const words = draft ? new Map() : placeLabels(missing.map(({ m, mx }) => {
    const text = `${shortName(m.checkpoint, 24)}: bitmap missing on ${disk}`;
    return { key: m.checkpoint, x: mx + 9, options: [{ text, width: textWidth(text, 10) }, { text: 'missing', width: textWidth('missing', 10) }] };
  }));
  for (const { m, mx } of missing) {
    const my = band.tracksTop + 7;
    const label = words.get(m.checkpoint);
    out.push(
      <g key={`m-${m.checkpoint}`} className="missing-mark" data-checkpoint={m.checkpoint}>
        <title>{`${disk}: bitmap ${shortName(m.bitmap, 120)} of checkpoint ${shortName(m.checkpoint, 120)} is missing — changes since it cannot be computed for ${disk}`}</title>
        <circle cx={mx} cy={my} r={6} />
        <text className="missing-glyph" transform={at(mx, my + 4)} textAnchor="middle">{GLYPH.missing}</text>
        {label && <text className="missing-label" transform={at(mx + 9, my + 4)}>{label.text}</text>}
      </g>,
    );
  }
  return <>{out}</>;
}
