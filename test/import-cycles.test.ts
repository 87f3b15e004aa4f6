// No import circles in shared/, electron/ or renderer/ (DEVELOPERS.md, "Layering"). The graph is
// resolved as TypeScript resolves imports (test/import-graph.ts); type-only imports count too.
import { describe, expect, it } from 'vitest';
import { importCycles, importGraph } from './import-graph';

describe('import graph', () => {
  const graph = importGraph();

  it('sees the whole tree', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('shared/contract.ts')).toEqual(expect.arrayContaining(['shared/contract/vm.ts', 'shared/schema.ts']));
    expect(graph.get('electron/preload.ts')).toEqual(expect.arrayContaining(['shared/contract.ts', 'electron/shell/ipc.ts']));
  });

  it('has no import cycle', () => {
    expect(importCycles(graph).map((c) => c.join(', ')), 'import cycles (each entry: the files of one cycle)').toEqual([]);
  });
});

describe('importCycles', () => {
  const g = (edges: Record<string, string[]>) => new Map(Object.entries(edges));

  it('finds each strongly connected component once, and self-imports', () => {
    expect(importCycles(g({ a: ['b'], b: ['c'], c: ['a', 'd'], d: [], e: ['e'], f: ['g'], g: ['f'] }))).toEqual([['a', 'b', 'c'], ['e'], ['f', 'g']]);
  });

  it('finds nothing in a DAG, however deep', () => {
    const chain = g(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`m${i}`, i + 1 < 20_000 ? [`m${i + 1}`] : []])));
    expect(importCycles(chain)).toEqual([]);
    expect(importCycles(g({ a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }))).toEqual([]);
  });
});
