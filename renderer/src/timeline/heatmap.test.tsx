// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { DirtyMap } from '../../../shared/contract';
import type { DiskMapState } from '../store/types';
import { checkpoint, disk, MiB } from '../test/fake-api';
import { barHeight, HeatmapRow } from './HeatmapRow';
import { cellBytes, cellKind, cellLegend, countCells, describeMap, dirtyRanges, formatOffset, formatRange, HEATMAP_CELLS, offsetTicks } from './heatmap';
import { buildModel, HEATMAP_H } from './model';
import { Timeline } from './Timeline';

afterEach(cleanup);

const map = (over: Partial<DirtyMap> = {}): DirtyMap => ({
  vmId: 'vm-1', disk: 'vda', since: 'base', granularity: 65536, virtualSize: 1024 * MiB,
  extents: [{ offset: 0, length: 256 * MiB, dirty: true }, { offset: 256 * MiB, length: 128 * MiB, dirty: false }, { offset: 384 * MiB, length: 64 * 1024, dirty: true }, { offset: 384 * MiB + 65536, length: 640 * MiB - 65536, dirty: false }],
  dirtyBytes: 256 * MiB + 65536, buckets: [1, 1 / 2048, 0, 0], bucketBytes: 256 * MiB, at: 1, elapsedMs: 12, ...over,
});

describe('heatmap (pure)', () => {
  it('classifies cells as clean, partly or fully dirty and counts them', () => {
    expect([0, 1e-9, 0.5, 0.999999, 1].map(cellKind)).toEqual(['clean', 'partial', 'partial', 'partial', 'full']);
    expect(countCells([0, 0.25, 1, 1, 0])).toEqual({ clean: 2, partial: 1, full: 2 });
  });

  it('says what one cell is, exactly when it can', () => {
    expect(cellBytes(1024 * MiB, HEATMAP_CELLS)).toBe(4 * MiB);
    expect(cellLegend(cellBytes(1024 * MiB, 256))).toBe('1 cell = 4.0 MiB');
    expect(cellLegend(cellBytes(512 * MiB, 256))).toBe('1 cell = 2.0 MiB');
    expect(cellLegend(cellBytes(64 * MiB, 256))).toBe('1 cell = 256 KiB');
    expect(cellLegend(cellBytes(20e9, 256))).toBe('1 cell ≈ 74.5 MiB'); // 20 GB is no round number of MiB
  });

  it('labels offsets under the strip, from 0 to the end of the disk', () => {
    expect(offsetTicks(1024 * MiB).map((t) => t.label)).toEqual(['0', '256 MiB', '512 MiB', '768 MiB', '1.0 GiB']);
  });

  it('puts the map into words and lists dirty ranges by offset', () => {
    expect(describeMap(map())).toBe('vda since base: 256 MiB dirty (25.0%); 4 cells of 256 MiB: 1 fully dirty, 1 partly dirty, 2 clean');
    expect(dirtyRanges(map().extents, 5)).toEqual({ ranges: ['0–256 MiB', '384–384.06 MiB'], more: 0 });
    expect(dirtyRanges(map().extents, 1)).toEqual({ ranges: ['0–256 MiB'], more: 1 });
    expect(formatRange(960 * 1024, 1088 * 1024)).toBe('960 KiB–1.06 MiB');
    expect(formatOffset(12.5 * 1024 * MiB)).toBe('12.50 GiB');
    expect(formatOffset(192 * 1024)).toBe('192 KiB');
  });

  it('draws a partly dirty cell visibly, shorter than a fully dirty one, and taller the more is dirty', () => {
    expect(barHeight(0, 20)).toBe(0);
    expect(barHeight(1 / 64, 20)).toBeGreaterThanOrEqual(4);
    expect(barHeight(0.25, 20)).toBeGreaterThan(barHeight(1 / 64, 20));
    expect(barHeight(0.99, 20)).toBeLessThan(20);
    expect(barHeight(1, 20)).toBe(20);
  });
});

describe('<HeatmapRow>', () => {
  const wrap = (ui: React.ReactNode) => render(<svg>{ui}</svg>);

  it('draws one bar per dirty cell along the offset axis, with the counts in words and data for tests', () => {
    const { container } = wrap(<HeatmapRow disk={disk('vda')} since="base" kind="map" state={{ map: map(), loading: false }} plotW={800} />);
    const cells = [...container.querySelectorAll('rect.hm-cell')];
    expect(cells.map((c) => c.getAttribute('class'))).toEqual(['hm-cell hm-full', 'hm-cell hm-partial']);
    expect(cells.map((c) => Number(c.getAttribute('x')))).toEqual([0, 200]); // 4 cells over 800 px
    expect(Number(cells[0]!.getAttribute('height'))).toBeGreaterThan(Number(cells[1]!.getAttribute('height')));
    const row = screen.getByRole('img');
    expect(row.getAttribute('aria-label')).toBe(describeMap(map()));
    expect(row.getAttribute('data-dirty-cells')).toBe('2');
    expect(row.getAttribute('data-full-cells')).toBe('1');
    expect(container.querySelector('.hm-counts')!.textContent).toBe('█ 1 fully dirty · ▄ 1 partly dirty · ▁ 2 clean');
    expect(container.querySelector('.hm-title')!.textContent).toBe('where vda changed since base · 256 MiB of 1.0 GiB (25.0%) dirty');
    expect([...container.querySelectorAll('.hm-tick text')].map((t) => t.textContent)).toEqual(['offset 0', '256 MiB', '512 MiB', '768 MiB', '1.0 GiB']);
  });

  it('says when it is reading, when a read failed, and when the baseline has no bitmap on the disk', () => {
    const { container, rerender } = wrap(<HeatmapRow disk={disk('vda')} since="base" kind="map" state={{ loading: true }} plotW={800} />);
    expect(container.querySelector('.hm-title')!.textContent).toContain('reading the dirty map…');
    expect(container.querySelectorAll('rect.hm-cell')).toHaveLength(0);
    rerender(<svg><HeatmapRow disk={disk('vda')} since="base" kind="map" state={{ loading: false, error: 'bitmap base on vda is inconsistent' }} plotW={800} /></svg>);
    expect(container.querySelector('.hm-error')!.textContent).toBe(' · ⚠ cannot read the dirty map: bitmap base on vda is inconsistent');
    rerender(<svg><HeatmapRow disk={disk('vda')} since="base" kind="map" state={{ map: map(), loading: false, error: 'export failed' }} plotW={800} /></svg>);
    expect(container.querySelector('.hm-error')!.textContent).toBe(' · ⚠ last refresh failed: export failed');
    expect(container.querySelectorAll('rect.hm-cell')).toHaveLength(2); // the last good map stays
    rerender(<svg><HeatmapRow disk={disk('vdb')} since="base" kind="no-bitmap" plotW={800} /></svg>);
    expect(container.querySelector('.hm-title')!.textContent).toContain('base has no bitmap on vdb: its changes are not tracked');
  });
});

describe('the disk map in the timeline', () => {
  const T = Date.UTC(2026, 10, 23, 10, 0, 0);
  const cps = [checkpoint('a', undefined, T, ['vda']), checkpoint('b', 'a', T + 60_000, ['vdb'])];
  const disks = [disk('vda'), disk('vdb', { virtualSize: 512 * MiB }), disk('vdc', { bitmapCapable: false })];

  it('adds a map row under each disk the baseline can map, and says when it cannot', () => {
    const m = buildModel({ checkpoints: cps, current: 'b', disks, samples: {}, issues: [], backups: [], now: Infinity, baseline: 'a' });
    expect(m.bands.map((b) => b.heatmap)).toEqual(['map', 'no-bitmap', undefined]);
    const plain = buildModel({ checkpoints: [], disks, samples: {}, issues: [], backups: [], now: Infinity });
    expect(m.bands[0]!.height - plain.bands[0]!.height).toBe(HEATMAP_H);
    expect(m.bands[2]!.height).toBe(plain.bands[2]!.height);
  });

  it('draws the row under the lanes with its legend in the gutter', () => {
    const timeline = (state: DiskMapState) => (
      <Timeline
        vmLabel="Demo" checkpoints={cps} current="b" disks={disks} samples={{}} issues={[]} backups={[]} now={T + 120_000}
        selected="a" onSelect={() => undefined} onOpen={() => undefined}
        dirtyMaps={{ vda: state }}
      />
    );
    const { container, rerender } = render(timeline({ map: map({ since: 'a' }), loading: false }));
    expect([...container.querySelectorAll('g.heatmap')].map((g) => [g.getAttribute('data-disk'), g.getAttribute('data-since')])).toEqual([['vda', 'a'], ['vdb', 'a']]);
    const gutters = [...container.querySelectorAll('.hm-gutter')].map((g) => g.textContent);
    expect(gutters[0]).toContain('1 cell = 256 MiB'); // the map's own cell size
    expect(gutters[0]).toContain('✓ up to date');
    expect(gutters[1]).toContain('1 cell = 2.0 MiB'); // 512 MiB / 256 before any map
    const fresh = () => container.querySelector('.hm-fresh')!.lastChild!.textContent;
    rerender(timeline({ map: map({ since: 'a' }), loading: false, behind: true }));
    expect(fresh()).toBe('⟳ updating…');
    rerender(timeline({ map: map({ since: 'a', at: new Date(2026, 0, 1, 9, 8, 7).getTime() }), loading: false, offline: true }));
    expect(fresh()).toBe('○ as of 09:08:07'); // VM disconnected: how old the map is, not "up to date"
  });
});
