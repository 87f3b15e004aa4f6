// Text formatting shared by the timeline, panels and dialogs: sizes in IEC units, absolute and
// relative times, the timestamped default checkpoint name, and names shortened for display.

import { escapeInvisible } from '../../shared/names';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB"; exact small values stay integers ("512 B"). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '—';
  const sign = bytes < 0 ? '-' : '';
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${sign}${v} B`;
  const digits = v >= 100 ? 0 : 1;
  return `${sign}${v.toFixed(digits)} ${UNITS[u]}`;
}

/** "12.0 MiB of 1.0 GiB (1.2%)" — the Proxmox "X of Y dirty" phrasing. */
export function formatPart(part: number, whole: number): string {
  const pct = whole > 0 ? (part / whole) * 100 : 0;
  const pctText = pct > 0 && pct < 0.1 ? '<0.1' : pct.toFixed(1);
  return `${formatBytes(part)} of ${formatBytes(whole)} (${pctText}%)`;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Local time "2026-11-23 03:04:05". */
export function formatAbsolute(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; future times read "in …". */
export function formatRelative(ms: number, now: number): string {
  const diff = now - ms;
  const s = Math.round(Math.abs(diff) / 1000);
  let text: string;
  if (s < 5) return 'just now';
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.round(s / 60)} min`;
  else if (s < 86400) text = `${Math.round(s / 3600)} h`;
  else text = `${Math.round(s / 86400)} d`;
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** Timestamped default checkpoint name, ISO 8601 basic format in UTC: "cp-20261123T030405Z". */
export function defaultCheckpointName(ms: number): string {
  const d = new Date(ms);
  return `cp-${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
}

/** A percentage for progress, never NaN: 0 of 0 counts as done. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 100;
  return Math.max(0, Math.min(100, (done / total) * 100));
}

/**
 * A name as the page shows it: invisible and text-direction characters written as \u escapes (a
 * name from elsewhere, such as a foreign bitmap, may hold them), and at most `max` characters with
 * an ellipsis in the middle — both ends of generated names (dates, ids) tell them apart. The full
 * name goes into a tooltip (see <Name>).
 */
export function shortName(name: string, max = 32): string {
  return middleEllipsis(escapeInvisible(name), max);
}

/** The whole name, invisible characters escaped. */
export function displayName(name: string): string {
  return escapeInvisible(name);
}

/** `text` cut to at most `max` characters with an ellipsis in the middle. */
export function middleEllipsis(text: string, max: number): string {
  // A string of at most `max` UTF-16 units has at most `max` characters: most names end here,
  // without splitting them into characters (thousands of names on the timeline's first render).
  if (text.length <= max) return text;
  const chars = [...text];
  if (chars.length <= max) return text;
  if (max <= 1) return '…';
  const head = Math.ceil((max - 1) * 0.6);
  const tail = max - 1 - head;
  return `${chars.slice(0, head).join('')}…${tail > 0 ? chars.slice(-tail).join('') : ''}`;
}
