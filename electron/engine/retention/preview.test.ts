import { describe, expect, it } from 'vitest';
import { randomRepo } from './chain-model';
import { planRetention } from './plan';
import { formatBytes, formatRetentionTable, retentionPreview } from './preview';
import { selectPoints } from './selection';

describe('retention preview (the simulator table)', () => {
  it('says per point and per layer what happens, consistent with the plan', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const { manifests } = randomRepo(seed);
      const sel = selectPoints(manifests, { policy: { last: 2, daily: 2 }, maxChain: 3, timeZone: 'UTC' });
      const plan = planRetention('vm-model', manifests, sel.kept.keys());
      const p = retentionPreview(manifests, plan, sel, 'UTC');
      expect(p.rows.map((r) => r.id)).toEqual([...manifests].reverse().map((m) => m.id));
      for (const r of p.rows) {
        expect(r.keep).toBe(sel.kept.has(r.id));
        for (const l of r.layers) {
          if (r.keep) {
            expect(['keep', 'rewrite']).toContain(l.action);
            expect(l.chainLength).toBeLessThanOrEqual(3);
          } else {
            expect(['merge', 'delete']).toContain(l.action);
            if (l.action === 'merge') expect(sel.kept.has(l.into!), `seed ${seed}: ${r.id} merges into a kept point`).toBe(true);
          }
        }
      }
      const merged = p.rows.flatMap((r) => r.layers.filter((l) => l.action === 'merge')).length;
      expect(merged).toBe(plan.steps.reduce((n, s) => n + (s.op === 'fold' ? 1 + s.through.length : 0), 0));
    }
  });

  it('prints a table with the zone, the reasons, the bytes and the freed checkpoints', () => {
    const { manifests } = randomRepo(4, { points: 10 });
    const sel = selectPoints(manifests, { policy: { last: 3 }, timeZone: 'Europe/Berlin' });
    const plan = planRetention('vm-model', manifests, sel.kept.keys());
    const lines = formatRetentionTable(retentionPreview(manifests, plan, sel, 'Europe/Berlin'));
    expect(lines[0]).toMatch(/^POINT +TAKEN \(Europe\/Berlin\) +KIND +ACTION +WHY/);
    expect(lines.filter((l) => / keep +keep-last/.test(l))).toHaveLength(3);
    expect(lines.filter((l) => / remove +no keep rule selects it/.test(l))).toHaveLength(7);
    expect(lines.at(-2) ?? '').toMatch(/^3 kept, 7 removed; frees /);
    expect(lines.at(-1)).toMatch(/^checkpoints only removed backups used .*: cp-/);
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
    expect(formatBytes(-2048)).toBe('-2.0 KiB');
  });
});
