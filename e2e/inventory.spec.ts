// The backups view and the fleet overview (issue 12, items 5–7) against a REAL demo VM: every
// figure checked against the engine's own manifest, a real cancelled backup and an unreadable
// manifest shown with their reasons, verify recorded by the engine, delete that names what depends
// on it, restore from a row, sorting and filtering, the fleet's red rows against a limit the user
// sets (kept across a reload), the keyboard path, 1024×700 and dark mode.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from '@playwright/test';
import type { BackupRecord } from '../shared/contract';
import { artifact, expect, test, type E2eHost } from './fixtures';
import { writeThroughContract } from './ui';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
/** The renderer's formatBytes, to compare with the engine's byte counts. */
function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[u]}`;
}

const rowOf = (page: Page, id: string) => page.locator(`.backups-table tbody tr[data-key="${id}"]`);

// A Tab pressed before React has drawn the page is lost (the load event can come first), so a
// keyboard walk starts only once the VM shows as connected and the skip links are there.
async function pageIsReady(page: Page): Promise<void> {
  await expect(page.locator('.topbar .badge.ok')).toHaveText('● connected');
  await expect(page.locator('.skip-link')).toHaveCount(4);
}

/** Three real backups (full, incremental, incremental), a real cancelled one, and an unreadable manifest. */
async function arrange(host: E2eHost): Promise<{ vmId: string; full: BackupRecord; inc1: BackupRecord; inc2: BackupRecord; vmDir: string }> {
  const [vm] = await host.handlers['vm:list']();
  const vmId = vm!.id;
  await writeThroughContract(host, vmId, 'vda', 8, 'sequential');
  const full = (await host.handlers['backup:begin'](vmId, { full: true })).backup;
  await writeThroughContract(host, vmId, 'vda', 4);
  const inc1 = (await host.handlers['backup:begin'](vmId, {})).backup;
  await writeThroughContract(host, vmId, 'vdb', 2);
  const inc2 = (await host.handlers['backup:begin'](vmId, {})).backup;
  // A backup cancelled while it copies (1 MiB/s): its log stays, no manifest is written.
  await writeThroughContract(host, vmId, 'vda', 16);
  const slow = host.handlers['backup:begin'](vmId, { full: true, speedMiBps: 1 }).then(() => 'completed', (e: Error) => e.message);
  await expect.poll(async () => (await host.handlers['job:list']()).some((j) => j.kind === 'backup' && j.state === 'running' && j.progress.some((p) => p.done > 0)), { timeout: 30_000 }).toBe(true);
  await host.handlers['backup:cancel'](vmId);
  expect(await slow).toContain('was cancelled');
  const vmDir = path.join(host.stateDir, 'backups', 'vms', full.vm.uuid ?? full.vm.id);
  fs.writeFileSync(path.join(vmDir, 'manifests', '20261204-230000-000-dead.json'), '{ "format": "tidemark-backup", "version": 9 }');
  return { vmId, full, inc1, inc2, vmDir };
}

test('backups view: every backup with figures from its manifest, failures and unreadable manifests, verify, restore and delete', async ({ app, host, consoleErrors }) => {
  const { full, inc1, inc2, vmDir } = await arrange(host);
  await app.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Backups' }).click();
  const table = app.locator('.backups-table');
  await expect(table.locator('tbody tr')).toHaveCount(5);

  // Figures are the manifest's: size per disk, duration, throughput, kind, base.
  for (const b of [full, inc1, inc2]) {
    const row = rowOf(app, b.id);
    for (const d of b.disks) await expect(row.locator('td').nth(3)).toContainText(`${d.name} ${bytes(d.fileSize)}`);
    const total = b.disks.reduce((s, d) => s + d.fileSize, 0);
    await expect(row.locator('td').nth(3)).toContainText(bytes(total));
    const ms = b.completedAt - b.startedAt;
    await expect(row.locator('td').nth(5)).toHaveText(`${bytes(b.disks.reduce((s, d) => s + d.bytesCopied, 0) / (ms / 1000))}/s`);
    await expect(row.locator('td').nth(6)).toHaveText('never');
  }
  await expect(rowOf(app, full.id).locator('td').nth(1)).toHaveText('full');
  // inc1's vdc is full (it cannot hold bitmaps): the kind says so.
  expect(inc1.disks.find((d) => d.name === 'vdc')!.kind).toBe('full');
  await expect(rowOf(app, inc1.id).locator('td').nth(1)).toContainText('incremental (vdc full)');
  await expect(rowOf(app, inc1.id).locator('td').nth(2).locator('.base-part')).toHaveText([`since ${inc1.disks.find((d) => d.name === 'vda')!.since!}`, `on ${full.id}`]);
  await expect(rowOf(app, inc2.id).locator('td').nth(2)).toContainText(`on ${inc1.id}`);
  // The cancelled backup and the unreadable manifest, with their reasons.
  const cancelled = table.locator('tbody tr.row-cancelled');
  await expect(cancelled).toHaveCount(1);
  await expect(cancelled).toContainText('cancelled');
  const damaged = table.locator('tbody tr.row-damaged');
  await expect(damaged).toContainText('manifest version 9 is not supported');
  // The repository's size and free space.
  const usage = app.locator('.repo-usage');
  await expect(usage).toContainText(/in \d+ files/);
  await expect(usage).toContainText(/free of/);
  await app.screenshot({ path: artifact('inventory-backups') });

  // Verify one backup: the engine records it, the row says when and how.
  await rowOf(app, inc2.id).getByRole('button', { name: `Verify backup ${inc2.id}` }).click();
  await expect(rowOf(app, inc2.id).locator('td').nth(6)).toContainText('✓ ok', { timeout: 60_000 });
  await expect(rowOf(app, inc2.id).locator('td').nth(6)).toContainText('7 layers');
  const record = JSON.parse(fs.readFileSync(path.join(vmDir, 'verified', `${inc2.id}.json`), 'utf8')) as { ok: boolean; layers: number };
  expect(record).toMatchObject({ ok: true });
  // The verification covered inc2's chain: vda and vdb three layers each (full ← inc1 ← inc2), vdc its own full → 3 + 3 + 1.
  expect(record.layers).toBe(7);
  await expect(rowOf(app, full.id).locator('td').nth(6)).toHaveText('never');

  // Sort by size (largest first), then filter by words.
  await table.getByRole('button', { name: 'Size' }).click();
  await expect(table.getByRole('columnheader', { name: 'Size' })).toHaveAttribute('aria-sort', 'descending');
  const sizes = [full, inc1, inc2].map((b) => ({ id: b.id, size: b.disks.reduce((s, d) => s + d.fileSize, 0) })).sort((a, b) => b.size - a.size);
  await expect(table.locator('tbody tr').first()).toHaveAttribute('data-key', sizes[0]!.id);
  await app.getByLabel('Filter', { exact: true }).fill('cancelled');
  await expect(table.locator('tbody tr')).toHaveCount(1);
  await app.getByLabel('Filter', { exact: true }).fill('');
  await app.getByLabel('failed and unreadable').uncheck();
  await expect(table.locator('tbody tr')).toHaveCount(3);
  await app.getByLabel('failed and unreadable').check();

  // Restore from a row: the restore dialog opens on that backup.
  await rowOf(app, inc1.id).getByRole('button', { name: `Restore from backup ${inc1.id}` }).click();
  const restore = app.getByRole('dialog', { name: /^Restore / });
  await expect(restore.getByLabel('Backup point')).toHaveValue(inc1.id);
  await restore.getByRole('button', { name: 'Cancel' }).click();
  await expect(restore).toBeHidden();

  // Delete the full backup: the dialog names the two that build on it; Cancel keeps all.
  await rowOf(app, full.id).getByRole('button', { name: `Delete backup ${full.id}` }).click();
  let del = app.getByRole('dialog', { name: `Delete backup ${full.id}` });
  await expect(del).toContainText('2 backups build on this one');
  await expect(del.locator('.dependents li')).toHaveText([new RegExp(inc1.id), new RegExp(inc2.id)]);
  await expect(del.getByRole('button', { name: 'Delete 3 backups' })).toBeVisible();
  await expect(del.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await app.screenshot({ path: artifact('inventory-delete-dependents') });
  await del.getByRole('button', { name: 'Cancel' }).click();
  expect((await host.handlers['backup:list']()).backups).toHaveLength(3);

  // Delete the newest: nothing depends on it; it and its verification record go.
  await rowOf(app, inc2.id).getByRole('button', { name: `Delete backup ${inc2.id}` }).click();
  del = app.getByRole('dialog', { name: `Delete backup ${inc2.id}` });
  await expect(del).toContainText('No other backup builds on this one.');
  await del.getByRole('button', { name: `Delete backup ${inc2.id}` }).click();
  // Refused while a manifest of the VM cannot be read (it might build on this backup's layers): said, nothing deleted.
  await expect(del.getByRole('alert')).toContainText('cannot be read, and a layer it might build on would be lost');
  expect((await host.handlers['backup:list']()).backups).toHaveLength(3);
  // The admin moves the unreadable manifest away; now the delete goes through.
  fs.renameSync(path.join(vmDir, 'manifests', '20261204-230000-000-dead.json'), path.join(vmDir, '..', 'dead.json.moved'));
  await del.getByRole('button', { name: `Delete backup ${inc2.id}` }).click();
  await expect(rowOf(app, inc2.id)).toHaveCount(0);
  expect((await host.handlers['backup:list']()).backups.map((b) => b.id)).toEqual([full.id, inc1.id]);
  expect(fs.existsSync(path.join(vmDir, 'verified', `${inc2.id}.json`))).toBe(false);

  // 1024×700, the VMs panel open and then closed (as it starts at this width), and dark: the actions stay on screen.
  await app.setViewportSize({ width: 1024, height: 700 });
  const actions = rowOf(app, inc1.id).getByRole('button', { name: `Delete backup ${inc1.id}` });
  for (const sidebar of ['open', 'closed']) {
    if (sidebar === 'closed') await app.getByRole('button', { name: /VMs$/ }).click();
    await expect(actions).toBeInViewport();
    const box = await actions.boundingBox();
    expect(box!.x + box!.width).toBeLessThanOrEqual(1024);
    await app.screenshot({ path: artifact(`inventory-backups-1024-sidebar-${sidebar}`) });
  }
  await app.emulateMedia({ colorScheme: 'dark' });
  await app.screenshot({ path: artifact('inventory-backups-dark') });
  expect(consoleErrors).toEqual([]);
});

test('backups view by keyboard: skip link, arrows, V verifies, Delete opens the delete dialog and focus comes back', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  await writeThroughContract(host, vm!.id, 'vda', 4);
  const a = (await host.handlers['backup:begin'](vm!.id, { full: true })).backup;
  const b = (await host.handlers['backup:begin'](vm!.id, {})).backup;
  await app.reload();
  await pageIsReady(app);
  await app.keyboard.press('Tab');
  await expect(app.locator(':focus')).toHaveText('Skip to the timeline');
  await app.keyboard.press('Tab');
  await expect(app.locator(':focus')).toHaveText('Skip to the checkpoint details');
  await app.keyboard.press('Tab');
  await expect(app.locator(':focus')).toHaveText('Skip to the backups table');
  await app.keyboard.press('Enter');
  // Newest first, and the table's one tab stop has the focus.
  await expect(rowOf(app, b.id)).toBeFocused();
  await app.keyboard.press('ArrowDown');
  await expect(rowOf(app, a.id)).toBeFocused();
  await app.keyboard.press('v');
  await expect(rowOf(app, a.id).locator('td').nth(6)).toContainText('✓ ok', { timeout: 60_000 });
  await app.keyboard.press('Home');
  await expect(rowOf(app, b.id)).toBeFocused();
  await app.keyboard.press('Delete');
  const del = app.getByRole('dialog', { name: `Delete backup ${b.id}` });
  await expect(del.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await app.keyboard.press('Escape');
  await expect(del).toBeHidden();
  await expect(rowOf(app, b.id)).toBeFocused();
  // Tab from the row reaches its own buttons, not every row's.
  await app.keyboard.press('Tab');
  await expect(app.locator(':focus')).toHaveAccessibleName(`Verify backup ${b.id}`);
  expect(consoleErrors).toEqual([]);
});

test('fleet overview: every VM with state, checkpoints, health and last backup; red past the limit the user sets, kept across a reload', async ({ app, host, consoleErrors }) => {
  const [demo] = await host.handlers['vm:list']();
  // A second VM that cannot connect (its socket does not exist): listed, never backed up.
  await host.handlers['vm:add'](`unix:${path.join(host.stateDir, 'nowhere.sock')}`, 'web-01');
  await app.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Fleet' }).click();
  const table = app.locator('.fleet-table');
  await expect(table.locator('tbody tr')).toHaveCount(2);
  const demoRow = table.locator(`tbody tr[data-key="${demo!.id}"]`);
  const other = table.locator('tbody tr').filter({ hasText: 'web-01' });
  await expect(demoRow).toHaveClass(/row-alarm/);
  await expect(demoRow).toContainText('✕ never');
  await expect(other).toHaveClass(/row-alarm/);
  await expect(other).toContainText(/disconnected|connecting/);

  // Back up the demo VM: its row turns fine, with its checkpoints (the engine's count) and the result.
  await host.handlers['backup:begin'](demo!.id, { full: true });
  await app.getByRole('button', { name: 'Refresh' }).click();
  await expect(demoRow).not.toHaveClass(/row-alarm/);
  const checkpoints = (await host.handlers['checkpoint:list'](demo!.id)).length;
  await expect(demoRow.locator('td').nth(2)).toHaveText(String(checkpoints));
  await expect(demoRow.locator('td').nth(1)).toContainText('running');
  await expect(demoRow).toContainText('✓ succeeded');
  await expect(demoRow).toContainText('✓ healthy');
  await expect(demoRow.locator('td').nth(4)).toContainText('ago · full');
  await expect(app.locator('.inventory-head .badge')).toContainText('1 needs attention');
  await app.screenshot({ path: artifact('inventory-fleet') });

  // Two days later (the page's clock), with the default 24 h limit the demo VM is overdue…
  await app.clock.install({ time: Date.now() + 48 * 3600_000 });
  await app.reload();
  await app.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Fleet' }).click();
  await expect(demoRow).toHaveClass(/row-alarm/);
  await expect(demoRow.locator('td').nth(4)).toContainText("✕ 2 d ago");
  await app.screenshot({ path: artifact('inventory-fleet-overdue') });
  // …and within a 72 h limit it is not. The limit survives a reload.
  await app.getByLabel('Back up at least every').fill('0');
  await expect(app.locator('#fleet-limit-help')).toHaveText('The limit must be at least 1 hour.');
  await expect(demoRow).toHaveClass(/row-alarm/);
  await app.getByLabel('Back up at least every').fill('72');
  await expect(demoRow).not.toHaveClass(/row-alarm/);
  await app.reload();
  await app.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Fleet' }).click();
  await expect(app.getByLabel('Back up at least every')).toHaveValue('72');
  await expect(demoRow).not.toHaveClass(/row-alarm/);

  // Keyboard: the fleet's skip link lands on its first row; Enter opens that VM's backups.
  await app.reload();
  await pageIsReady(app);
  for (let i = 0; i < 4; i++) await app.keyboard.press('Tab');
  await expect(app.locator(':focus')).toHaveText('Skip to the fleet overview');
  await app.keyboard.press('Enter');
  await expect(demoRow).toBeFocused();
  await app.setViewportSize({ width: 1024, height: 700 });
  await app.screenshot({ path: artifact('inventory-fleet-1024') });
  await app.emulateMedia({ colorScheme: 'dark' });
  await app.screenshot({ path: artifact('inventory-fleet-dark') });
  await app.keyboard.press('Enter');
  await expect(app.locator('.backups-table tbody tr')).toHaveCount(1);
  await expect(app.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Backups' })).toHaveAttribute('aria-current', 'page');
  expect(consoleErrors).toEqual([]);
});
