// Text output in virsh's shapes: its tables (vsh-table.c), its tree (vshTreePrint), its
// "%-15s %s" info lines and its time format ("%Y-%m-%d %H:%M:%S %z", local time).

import { escapeInvisible } from '../../shared/names';

/** Seconds since the epoch → "2026-11-23 03:04:05 +0000" in the local time zone. */
export function formatTime(seconds: number, date: Date = new Date(seconds * 1000)): string {
  const p = (n: number, w = 2) => String(Math.trunc(Math.abs(n))).padStart(w, '0');
  const off = -date.getTimezoneOffset();
  const zone = `${off >= 0 ? '+' : '-'}${p(off / 60)}${p(off % 60)}`;
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())} ${zone}`;
}

/**
 * Control characters (and a literal "\x" or "\u") become \xHH, as virsh does, so columns stay
 * aligned; bidirectional, zero-width and other invisible characters become \uXXXX (shared/names.ts),
 * so one name cannot pass for another on a terminal.
 */
export function safeCell(s: string): string {
  // eslint-disable-next-line no-control-regex
  return escapeInvisible(s.replace(/[\u0000-\u001f\u007f]|\\(?=[xu])/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** Display width: wide (CJK, emoji) characters take two columns. */
function width(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    w += /\p{Mn}|\p{Me}|\u200b/u.test(ch) ? 0 : cp >= 0x1100 && /\p{Emoji_Presentation}|[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|[\u{20000}-\u{3fffd}]/u.test(ch) ? 2 : 1;
  }
  return w;
}

/** A virsh table: " A   B" rows, a dashed rule under the header, last column unpadded. */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows].map((r) => r.map(safeCell));
  const widths = header.map((_, i) => Math.max(...all.map((r) => width(r[i] ?? ''))));
  const line = (r: string[]) => r.map((c, i) => ` ${c}${i < r.length - 1 ? ' '.repeat(widths[i]! - width(c) + 2) : ''}`).join('') + '\n';
  let out = line(all[0]!);
  out += widths.map((w) => '-'.repeat(w + 3)).join('') + '\n';
  for (const r of all.slice(1)) out += line(r);
  return out;
}

/** virsh's --tree drawing: roots flush left, children under "+- " with "|" guides. */
export function formatTree(nodes: { name: string; parent?: string }[]): string {
  const names = new Set(nodes.map((n) => n.name));
  const parentOf = (n: { parent?: string }) => (n.parent !== undefined && names.has(n.parent) ? n.parent : undefined);
  let out = '';
  let indent = '';
  const walk = (idx: number, lastIdx: number, root: boolean) => {
    const dev = nodes[idx]!.name;
    out += `${indent}${root ? '' : '+- '}${safeCell(dev)}\n`;
    if (!root) indent += idx === lastIdx ? '  ' : '| ';
    let nextLast = -1;
    nodes.forEach((n, i) => {
      if (parentOf(n) === dev) nextLast = i;
    });
    if (nextLast !== -1) out += `${indent}  |\n`;
    indent += '  ';
    nodes.forEach((n, i) => {
      if (parentOf(n) === dev) walk(i, nextLast, false);
    });
    indent = indent.slice(0, -2);
    if (nextLast === -1 && idx === lastIdx) out += `${indent}\n`;
    if (!root) indent = indent.slice(0, -2);
  };
  nodes.forEach((n, i) => {
    if (parentOf(n) === undefined) walk(i, i, true);
  });
  return out;
}

/** "Name:           value" lines, as virsh's dominfo and checkpoint-info. */
export function formatInfo(rows: [string, string | number][]): string {
  return rows.map(([k, v]) => `${`${k}:`.padEnd(15)} ${v}\n`).join('');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${Number.isInteger(v) ? v : v.toFixed(2)} ${units[u]}`;
}
