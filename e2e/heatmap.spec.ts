// The disk map (issue 5) against a REAL demo VM: under each checkpointed disk's lanes, where the
// disk changed since the baseline checkpoint, read over NBD (dirtymap:get) and refreshed live while
// the write simulator runs — one read per disk at a time, none while nothing changes.
import type { Page } from '@playwright/test';
import { artifact, expect, test } from './fixtures';
import { createCheckpoint } from './ui';

/** Starts the write simulator and returns its job card (without waiting for it to end). */
async function startWrites(page: Page, disk: string, mib: number, rate: number, pattern: 'sequential' | 'random') {
  const jobs = page.getByRole('region', { name: 'Jobs' }).getByRole('article').filter({ hasText: `Write ${mib} MiB (${pattern}) to ${disk}` });
  await expect(jobs).toHaveCount(0);
  await page.getByRole('button', { name: 'Simulate writes' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Disk', { exact: true }).selectOption(disk);
  await dialog.getByRole('radio', { name: new RegExp(`^${pattern}`, 'i') }).check();
  await dialog.getByLabel('Amount (MiB)').fill(String(mib));
  await dialog.getByLabel('Rate (MiB/s)').fill(String(rate));
  await dialog.getByRole('button', { name: 'Start writing' }).click();
  await expect(dialog).toBeHidden();
  await expect(jobs).toHaveCount(1);
  return jobs.first();
}

const heatmap = (page: Page, disk: string) => page.locator(`g.heatmap[data-disk="${disk}"]`);
const num = async (page: Page, disk: string, attr: string) => Number(await heatmap(page, disk).getAttribute(attr));

test('the disk map under vda fills while the write simulator runs, one read per disk at a time', async ({ app, host, consoleErrors }) => {
  // Count the engine's dirty-map reads, and how many of one disk run at once.
  const real = host.handlers['dirtymap:get'];
  const inFlight = new Map<string, number>();
  let maxInFlight = 0;
  let reads = 0;
  host.handlers['dirtymap:get'] = async (...args) => {
    const disk = args[1];
    reads++;
    inFlight.set(disk, (inFlight.get(disk) ?? 0) + 1);
    maxInFlight = Math.max(maxInFlight, inFlight.get(disk)!);
    try {
      return await real(...args);
    } finally {
      inFlight.set(disk, inFlight.get(disk)! - 1);
    }
  };

  await createCheckpoint(app, 'base', 'Independent');
  // One disk map per checkpointed disk, none for vdc (no persistent bitmaps).
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-cells', '256');
  await expect(heatmap(app, 'vdb')).toHaveAttribute('data-cells', '256');
  await expect(heatmap(app, 'vdc')).toHaveCount(0);
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-since', 'base');
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-dirty-cells', '0');
  await expect(app.locator('.hm-gutter').first()).toContainText('1 cell = 4.0 MiB'); // 1 GiB / 256
  await expect(app.locator('.hm-gutter').nth(1)).toContainText('1 cell = 2.0 MiB'); // 512 MiB / 256
  await expect(heatmap(app, 'vda')).toHaveAccessibleName(/^vda since base: 0 B dirty \(0\.0%\); 256 cells of 4\.0 MiB: 0 fully dirty, 0 partly dirty, 256 clean$/);
  await app.screenshot({ path: artifact('heatmap-clean') });

  // Nothing changes: nothing is read again.
  const idleBefore = reads;
  await app.waitForTimeout(2500);
  expect(reads - idleBefore).toBe(0);

  // Random 64 KiB writes, slowly: the map gains dirty cells while the writer is still running.
  const job = await startWrites(app, 'vda', 24, 3, 'random');
  await expect.poll(() => num(app, 'vda', 'data-dirty-cells'), { timeout: 15_000 }).toBeGreaterThan(0);
  const first = await num(app, 'vda', 'data-dirty-cells');
  await expect(job).toContainText('running');
  await expect.poll(() => num(app, 'vda', 'data-dirty-cells'), { timeout: 15_000 }).toBeGreaterThan(first);
  await expect(job).toContainText('running'); // still writing: the map followed live
  await expect(heatmap(app, 'vda').locator('rect.hm-partial').first()).toBeVisible();
  await app.screenshot({ path: artifact('heatmap-live') });
  await app.locator('g.band[data-disk="vda"]').screenshot({ path: artifact('heatmap-live-vda-band') });
  await expect(job).toContainText('succeeded', { timeout: 30_000 });

  // Settled: the map's dirty bytes are exactly the engine's "changes since base".
  const [vm] = await host.handlers['vm:list']();
  const changes = await host.handlers['checkpoint:changes'](vm!.id, 'base');
  const vdaBytes = changes.disks.find((d) => d.disk === 'vda')!.bytes;
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-dirty-bytes', String(vdaBytes));
  await expect(heatmap(app, 'vdb')).toHaveAttribute('data-dirty-cells', '0'); // vdb untouched
  expect(maxInFlight).toBe(1);

  // Sequential 1 MiB writes: at least one whole 4 MiB cell becomes fully dirty.
  const seq = await startWrites(app, 'vda', 12, 32, 'sequential');
  await expect(seq).toContainText('succeeded', { timeout: 30_000 });
  await expect.poll(() => num(app, 'vda', 'data-full-cells'), { timeout: 15_000 }).toBeGreaterThan(0);
  await expect(heatmap(app, 'vda').locator('.hm-counts')).toContainText(/█ [1-9]\d* fully dirty · ▄ [1-9]\d* partly dirty · ▁ \d+ clean/);

  // The same map in words: the details of the baseline list the dirty ranges by offset.
  await app.getByRole('treeitem', { name: /^base,/ }).click();
  const table = app.getByRole('table', { name: 'Dirty regions since base' });
  await expect(table.locator('tr[data-disk="vda"]')).toContainText(/\d–[\d.]+ MiB/);
  await expect(table.locator('tr[data-disk="vdb"]')).toContainText('none — nothing written since base');
  await table.scrollIntoViewIfNeeded();
  await app.getByRole('region', { name: 'Checkpoint details' }).screenshot({ path: artifact('heatmap-details') });
  await app.emulateMedia({ colorScheme: 'dark' });
  await app.screenshot({ path: artifact('heatmap-dark') });
  await app.emulateMedia({ colorScheme: 'light' });
  expect(maxInFlight).toBe(1);
  expect(consoleErrors).toEqual([]);
});

test('the disk map follows the selected baseline, and stops when that checkpoint is deleted', async ({ app, host, consoleErrors }) => {
  await createCheckpoint(app, 'a', 'Chained');
  const first = await startWrites(app, 'vda', 8, 32, 'sequential');
  await expect(first).toContainText('succeeded', { timeout: 30_000 });
  await createCheckpoint(app, 'b');
  // b is current and selected: nothing written since b.
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-since', 'b');
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-dirty-cells', '0');
  // Select a (keyboard: a and b are a few pixels apart): the chain a+b holds the 8 MiB written after a.
  await app.getByRole('treeitem', { name: /^b,/ }).focus();
  await app.keyboard.press('ArrowLeft');
  await expect(app.getByRole('treeitem', { name: /^a,/ })).toBeFocused();
  await app.keyboard.press('Enter');
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-since', 'a');
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-dirty-bytes', String(8 * 1024 * 1024));
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-full-cells', /^[12]$/); // 8 MiB at a 1 MiB-aligned offset: 1 or 2 whole 4 MiB cells

  // Delete a: the map moves to the current checkpoint, and nothing asks for a again.
  const real = host.handlers['dirtymap:get'];
  const asked: string[] = [];
  host.handlers['dirtymap:get'] = (...args) => {
    asked.push(args[2]);
    return real(...args);
  };
  await app.getByRole('button', { name: 'Delete checkpoint' }).click();
  const dialog = app.getByRole('dialog', { name: /Delete checkpoint a/ });
  await dialog.getByRole('button', { name: 'Delete a' }).click();
  await expect(dialog).toBeHidden();
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-since', 'b');
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-cells', '256');
  const second = await startWrites(app, 'vda', 4, 32, 'sequential');
  await expect(second).toContainText('succeeded', { timeout: 30_000 });
  await expect(heatmap(app, 'vda')).toHaveAttribute('data-dirty-bytes', String(4 * 1024 * 1024));
  expect(asked).not.toContain('a');
  expect(consoleErrors).toEqual([]);
});
