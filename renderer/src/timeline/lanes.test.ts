import { describe, expect, it } from 'vitest';
import { layoutTree, type TreeInput } from './lanes';

const lanesOf = (nodes: TreeInput[], current?: string) => {
  const l = layoutTree(nodes, current);
  return Object.fromEntries(l.nodes.map((n) => [n.name, n.lane]));
};

/** A small seeded PRNG so failures replay. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A random tree grown in creation order: each new node hangs off a random earlier node (or is a root). */
function randomTree(seed: number, n: number): TreeInput[] {
  const r = rng(seed);
  const out: TreeInput[] = [];
  let t = 1_000_000;
  for (let i = 0; i < n; i++) {
    t += 1 + Math.floor(r() * 5000);
    const parent = out.length === 0 || r() < 0.03 ? undefined : r() < 0.6 ? out[out.length - 1]!.name : out[Math.floor(r() * out.length)]!.name;
    out.push({ name: `c${i}`, parent, time: t });
  }
  return out;
}

describe('layoutTree: lanes', () => {
  it('puts a linear chain on one lane', () => {
    const nodes = [0, 1, 2, 3].map((i) => ({ name: `c${i}`, parent: i ? `c${i - 1}` : undefined, time: i * 10 }));
    expect(lanesOf(nodes)).toEqual({ c0: 0, c1: 0, c2: 0, c3: 0 });
  });

  it('gives a second child a new lane; the first child keeps the parent lane', () => {
    const nodes = [
      { name: 'a', time: 0 },
      { name: 'b', parent: 'a', time: 10 },
      { name: 'c', parent: 'a', time: 20 },
      { name: 'd', parent: 'b', time: 30 },
    ];
    expect(lanesOf(nodes)).toEqual({ a: 0, b: 0, c: 1, d: 0 });
  });

  it('reuses a lane only when it is free from the branch point on', () => {
    const nodes = [
      { name: 'a', time: 0 },
      { name: 'b', parent: 'a', time: 10 },
      { name: 'x', parent: 'a', time: 15 }, // branch from a → lane 1, which then holds x until 15
      { name: 'c', parent: 'b', time: 20 },
      { name: 'y', parent: 'b', time: 30 }, // branch from b (t=10): lane 1's last node is at 15 ≥ 10 → new lane 2
      { name: 'z', parent: 'c', time: 40 }, // c is continued on lane 0 by nothing yet → z inherits lane 0
      { name: 'w', parent: 'c', time: 50 }, // branch from c (t=20): lane 1 ended at 15 < 20 → reused
    ];
    expect(lanesOf(nodes)).toEqual({ a: 0, b: 0, x: 1, c: 0, y: 2, z: 0, w: 1 });
  });

  it('never moves existing rows when checkpoints are added (random trees, every prefix)', () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      const all = randomTree(seed, 120);
      let previous: Record<string, number> = {};
      for (let k = 1; k <= all.length; k++) {
        const now = lanesOf(all.slice(0, k));
        for (const [name, lane] of Object.entries(previous)) expect(now[name], `seed ${seed}, node ${name} after adding c${k - 1}`).toBe(lane);
        previous = now;
      }
    }
  });

  it('never puts two nodes of one lane where their branch lines overlap', () => {
    for (const seed of [7, 8, 9]) {
      const all = randomTree(seed, 200);
      const layout = layoutTree(all);
      // The interval a node occupies on its lane: from its parent's time (branch point) to its own time.
      const byLane = new Map<number, [number, number, string][]>();
      for (const n of layout.nodes) {
        const parent = n.parent !== undefined ? layout.byName.get(n.parent)! : undefined;
        const from = parent && parent.lane !== n.lane ? parent.time : n.time;
        byLane.set(n.lane, [...(byLane.get(n.lane) ?? []), [from, n.time, n.name]]);
      }
      for (const [lane, spans] of byLane) {
        spans.sort((a, b) => a[1] - b[1]);
        for (let i = 1; i < spans.length; i++) {
          expect(spans[i]![0], `seed ${seed} lane ${lane}: ${spans[i]![2]} overlaps ${spans[i - 1]![2]}`).toBeGreaterThanOrEqual(spans[i - 1]![1]);
        }
      }
    }
  });

  it('hangs orphans (parent deleted) and several roots off a synthetic root without throwing', () => {
    const layout = layoutTree([
      { name: 'r1', time: 0 },
      { name: 'orphan', parent: 'gone', time: 5 },
      { name: 'r2', time: 8 },
    ]);
    expect(layout.nodes.map((n) => [n.name, n.parent, n.level])).toEqual([
      ['r1', undefined, 1],
      ['orphan', undefined, 1],
      ['r2', undefined, 1],
    ]);
    expect(new Set(layout.nodes.map((n) => n.lane)).size).toBe(3);
  });

  it('names the duplicate when two checkpoints share a name', () => {
    expect(() => layoutTree([{ name: 'a', time: 0 }, { name: 'a', time: 1 }])).toThrow('duplicate checkpoint name "a"');
  });

  it('names a checkpoint on a parent cycle, not one below it', () => {
    const cycle = [{ name: 'root', time: 0 }, { name: 'x', parent: 'y', time: 1 }, { name: 'y', parent: 'x', time: 2 }];
    expect(() => layoutTree(cycle)).toThrow(/checkpoint "[xy]" is its own ancestor \(a parent cycle\)/);
    // z hangs below the cycle and comes first in the input.
    expect(() => layoutTree([{ name: 'z', parent: 'x', time: 3 }, ...cycle])).toThrow(/checkpoint "[xy]" is its own ancestor/);
  });

  it('lays out a chain of 20,000 checkpoints (years of hourly ones) on one lane, each a level deeper', () => {
    const chain = Array.from({ length: 20_000 }, (_, i) => ({ name: `c${i}`, parent: i > 0 ? `c${i - 1}` : undefined, time: i }));
    const layout = layoutTree(chain, 'c19999');
    expect(layout.laneCount).toBe(1);
    expect(layout.nowLane).toBe(0);
    expect(layout.nodes.every((n, i) => n.name === `c${i}` && n.lane === 0 && n.level === i + 1 && n.onCurrentPath)).toBe(true);
  });

  it('keeps a child after its parent even when the clock says otherwise', () => {
    const layout = layoutTree([{ name: 'p', time: 100 }, { name: 'kid', parent: 'p', time: 50 }]);
    expect(layout.byName.get('kid')!.lane).toBe(0);
    expect(layout.nodes.map((n) => n.name)).toEqual(['p', 'kid']);
  });
});

describe('layoutTree: NOW, visible order and ARIA positions', () => {
  const nodes = [
    { name: 'a', time: 0 },
    { name: 'b', parent: 'a', time: 10 },
    { name: 'c', parent: 'a', time: 20 },
    { name: 'd', parent: 'b', time: 30 },
  ];

  it('puts NOW on the current checkpoint lane when nothing follows it there', () => {
    expect(layoutTree(nodes, 'c').nowLane).toBe(1);
    expect(layoutTree(nodes, 'd').nowLane).toBe(0);
  });

  it('puts NOW on a free lane when the current checkpoint has later nodes on its lane', () => {
    const layout = layoutTree(nodes, 'b'); // lane 0 continues with d after b
    expect(layout.nowLane).toBe(2);
    expect(layout.laneCount).toBe(3);
  });

  it('lists nodes in preorder with siblings by time, and marks the current lineage', () => {
    const layout = layoutTree(nodes, 'd');
    expect(layout.nodes.map((n) => n.name)).toEqual(['a', 'b', 'd', 'c']);
    expect(layout.nodes.filter((n) => n.onCurrentPath).map((n) => n.name)).toEqual(['a', 'b', 'd']);
    const b = layout.byName.get('b')!;
    const c = layout.byName.get('c')!;
    expect([b.level, b.posInSet, b.setSize]).toEqual([2, 1, 2]);
    expect([c.level, c.posInSet, c.setSize]).toEqual([2, 2, 2]);
    expect(layout.byName.get('a')!.children).toEqual(['b', 'c']);
  });
});
