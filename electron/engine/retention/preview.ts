// PURE: the prune simulator's table: one row per backup point (newest first) saying whether it
// stays (and which rules keep it) or goes (and why), and per disk what happens to its layer:
// kept as is, rewritten (a fold landed in it, or it was rebased), merged into a later point, or
// deleted. The dry-run of backup-prune/backup-merge prints it; the app greys removed rows and marks
// merged layers from the same data.

import type { LayerAction, PreviewLayer, PreviewRow, RetentionPreview } from '../../../shared/contract';
import type { BackupManifest } from '../backup/manifest';
import { hostTimeZone } from './periods';
import type { RetentionPlan } from './plan';

// The table's shape is shared with the renderer (the simulator): shared/contract/retention.ts.
export type { LayerAction, PreviewLayer, PreviewRow, RetentionPreview };

export function formatLocal(ms: number, zone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(ms)).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

export function retentionPreview(
  manifests: BackupManifest[], plan: RetentionPlan, why: { kept: Map<string, string[]>; removed: Map<string, string> }, timeZone: string = hostTimeZone(),
): RetentionPreview {
  const fate = new Map<string, Omit<PreviewLayer, 'disk' | 'fileSize'>>();
  const key = (id: string, disk: string) => `${id}\u0000${disk}`;
  for (const s of plan.steps) {
    if (s.op === 'drop') fate.set(key(s.point, s.disk), { action: 'delete' });
    else if (s.op === 'rebase') fate.set(key(s.child, s.disk), { action: 'rewrite' });
    else {
      for (const r of [s.into, ...s.through]) fate.set(key(r, s.disk), { action: 'merge', into: s.child });
      fate.set(key(s.child, s.disk), { action: 'rewrite' });
    }
  }
  for (const a of plan.after) {
    const k = key(a.point, a.disk);
    fate.set(k, { ...(fate.get(k) ?? { action: 'keep' }), chainLength: a.chainLength });
  }
  const rows = [...manifests].sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : -1)).map((m): PreviewRow => {
    const keep = why.kept.has(m.id);
    return {
      id: m.id, time: m.startedAt, local: formatLocal(m.startedAt, timeZone), kind: m.kind, keep,
      why: keep ? why.kept.get(m.id)! : [why.removed.get(m.id) ?? 'removed'],
      layers: m.disks.map((d) => ({ disk: d.name, fileSize: d.fileSize, ...(fate.get(key(m.id, d.name)) ?? { action: keep ? 'keep' : 'delete' }) })),
    };
  });
  return { timeZone, rows, bytesFreed: plan.bytesFreed, checkpointsFreed: plan.checkpointsFreed };
}

export function formatBytes(n: number): string {
  const a = Math.abs(n);
  const s = a >= 1024 ** 3 ? `${(a / 1024 ** 3).toFixed(2)} GiB` : a >= 1024 ** 2 ? `${(a / 1024 ** 2).toFixed(1)} MiB` : a >= 1024 ? `${(a / 1024).toFixed(1)} KiB` : `${a} B`;
  return n < 0 ? `-${s}` : s;
}

function layerText(l: PreviewLayer, short: (id: string) => string): string {
  switch (l.action) {
    case 'keep':
      return `${l.disk} kept (chain ${l.chainLength})`;
    case 'rewrite':
      return `${l.disk} rewritten (chain ${l.chainLength})`;
    case 'merge':
      return `${l.disk} merged into ${short(l.into!)}`;
    case 'delete':
      return `${l.disk} deleted (${formatBytes(l.fileSize)})`;
  }
}

/** The dry-run table as text lines. */
export function formatRetentionTable(p: RetentionPreview): string[] {
  const short = (id: string) => id;
  const head = ['POINT', `TAKEN (${p.timeZone})`, 'KIND', 'ACTION', 'WHY', 'LAYERS'];
  const body = p.rows.map((r) => [r.id, r.local, r.kind, r.keep ? 'keep' : 'remove', r.why.join(', '), r.layers.map((l) => layerText(l, short)).join('; ')]);
  const widths = head.slice(0, 4).map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => [...cells.slice(0, 4).map((c, i) => c.padEnd(widths[i]!)), cells[4], cells[5] ? `[${cells[5]}]` : ''].join('  ').trimEnd();
  const out = [line(head.map((h, i) => (i === 5 ? '' : h))), ...body.map(line)];
  const removed = p.rows.filter((r) => !r.keep).length;
  const { atLeast, atMost } = p.bytesFreed;
  out.push(
    `${p.rows.length - removed} kept, ${removed} removed; frees ${atLeast === atMost ? formatBytes(atMost) : `${formatBytes(Math.max(0, atLeast))} to ${formatBytes(atMost)}`} (estimate from file sizes: merged data that later points overwrite is freed, the rest moves into the kept layer)`,
  );
  if (p.checkpointsFreed.length > 0) {
    out.push(`checkpoints only removed backups used (kept in the VM; delete them with checkpoint-delete to drop their bitmaps): ${p.checkpointsFreed.join(', ')}`);
  }
  return out;
}
