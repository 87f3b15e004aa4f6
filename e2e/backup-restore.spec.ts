// Backups and restore through the UI against a REAL demo VM: a full and an incremental backup with
// per-disk progress and the bytes to copy shown before they run, a cancelled backup that stays on
// the timeline as ✕, and a restore to a new image checked byte for byte with qemu-img.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { artifact, expect, test } from './fixtures';
import { band, bracketTo, createCheckpoint, simulateWrites, wordsWhileMoving } from './ui';

test('full and incremental backups: bytes to copy before, per-disk progress, markers; a cancelled one stays as ✕', async ({ app, consoleErrors }) => {
  await createCheckpoint(app, 'base', 'Independent');
  await simulateWrites(app, 'vda', 8);

  // Full: incremental is not offered yet, and says why.
  await app.getByRole('button', { name: 'Back up' }).click();
  let dialog = app.getByRole('dialog', { name: /^Back up / });
  await expect(dialog.getByRole('radio', { name: /Incremental/ })).toBeDisabled();
  await expect(dialog.getByText('Not available: no earlier backup whose checkpoint still exists.')).toBeVisible();
  await expect(dialog.getByRole('radio', { name: /Full/ })).toBeChecked();
  const copy = dialog.getByRole('table', { name: 'Bytes to copy per disk' });
  await expect(copy.getByRole('row', { name: /vda/ })).toContainText('≤ 1.0 GiB');
  await dialog.getByLabel('Speed limit per disk (MiB/s)').fill('4');
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  // While it runs: a determinate bar per disk, in bytes to copy, and Cancel.
  const vdaBar = dialog.getByRole('progressbar', { name: /: vda$/ });
  await expect(vdaBar).toBeVisible();
  await expect(dialog.getByRole('button', { name: 'Cancel backup' })).toBeVisible();
  await app.screenshot({ path: artifact('backup-full-progress') });
  await expect(dialog.getByRole('status')).toContainText(/Backup \S+ finished: vda full 8\.0 MiB/, { timeout: 60_000 });
  await expect(vdaBar).toHaveAttribute('value', '100');
  await app.screenshot({ path: artifact('backup-full-done') });
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(band(app, 'vda').locator('.backup-mark.backup-full')).toHaveAttribute('data-glyph', '■');

  // Incremental: 4 MiB written since the full backup's checkpoint is what it will copy.
  await simulateWrites(app, 'vda', 4);
  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await expect(dialog.getByRole('radio', { name: /Incremental/ })).toBeChecked();
  await expect(copy.getByRole('row', { name: /vda/ })).toContainText('4.0 MiB');
  await expect(copy.getByRole('row', { name: /vdb/ })).toContainText('0 B');
  await expect(copy.getByRole('row', { name: /vdc/ })).toContainText('full: vdc cannot hold bitmaps');
  await app.screenshot({ path: artifact('backup-incremental-form') });
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/vda incremental 4\.0 MiB/, { timeout: 60_000 });
  await dialog.getByRole('button', { name: 'Close' }).click();
  const inc = band(app, 'vda').locator('.backup-mark.backup-incremental');
  await expect(inc).toHaveAttribute('data-glyph', '◧');
  await expect.poll(() => bracketTo(inc)).toBe(true); // bracketed back to its base checkpoint
  await expect(band(app, 'vdc').locator('.backup-mark')).toHaveCount(2);
  expect(await band(app, 'vdc').locator('.backup-mark').evaluateAll((els) => els.map((e) => e.getAttribute('data-glyph')))).toEqual(['■', '■']); // vdc: always full
  // While the view moves, the plot's words hide but the backup glyphs stay.
  const words = await wordsWhileMoving(app);
  expect(words.moving).toBe(true);
  expect(words.during.length).toBeGreaterThan(0);
  expect(words.during.every((c) => c.split(' ').includes('backup-glyph'))).toBe(true);
  await app.screenshot({ path: artifact('backup-incremental-done') });

  // A cancelled backup: rolled back, and it stays visible on the timeline as ✕.
  await simulateWrites(app, 'vda', 16);
  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByRole('radio', { name: /Full/ }).check();
  await dialog.getByLabel('Speed limit per disk (MiB/s)').fill('1');
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  await dialog.getByRole('button', { name: 'Cancel backup' }).click();
  await expect(dialog.getByRole('alert')).toContainText('The backup failed', { timeout: 30_000 });
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(band(app, 'vda').locator('.backup-mark.backup-failed')).toHaveAttribute('data-glyph', '✕');
  await expect(band(app, 'vda').locator('.backup-mark.backup-ok, .backup-mark:not(.backup-failed)')).toHaveCount(2);
  await app.screenshot({ path: artifact('backup-cancelled') });
  expect(consoleErrors).toEqual([]);
});

test('restore to a new image: Cancel has focus, in place is refused while running, the VM is not touched (not even on failure), the image matches the backup', async ({ app, host, consoleErrors }) => {
  // Arrange through the contract (the same calls the UI makes): a checkpoint, writes, a full backup.
  const [vm] = await host.handlers['vm:list']();
  await host.handlers['checkpoint:create'](vm!.id, { name: 'base', layout: 'independent' });
  await simulateWrites(app, 'vda', 6);
  const { backup } = await host.handlers['backup:begin'](vm!.id, { full: true });
  await expect(band(app, 'vda').locator('.backup-mark.backup-full')).toHaveCount(1);

  await app.getByRole('button', { name: 'Restore' }).click();
  const dialog = app.getByRole('dialog', { name: /^Restore .* to (a new image|new images)/ });
  await expect(dialog.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await expect(dialog.getByLabel('Backup point')).toHaveValue(backup.id);
  await expect(dialog.getByRole('radio', { name: /In place/ })).toBeDisabled();
  await expect(dialog).toContainText('is running: QEMU holds its images open');
  // A restore to a new image does not touch the VM: nothing to tick, no checkpoint made.
  await expect(dialog.getByRole('checkbox', { name: /checkpoint/i })).toHaveCount(0);
  await expect(dialog).toContainText('no checkpoint is made and its disks are not touched');
  const checkpointsBefore = (await host.handlers['checkpoint:list'](vm!.id)).length;
  const bitmapsBefore = JSON.stringify((await host.handlers['vm:info'](vm!.id)).disks.map((d) => d.bitmaps.map((b) => b.name)));
  await dialog.getByRole('checkbox', { name: 'Restore vdb' }).uncheck();
  await dialog.getByRole('checkbox', { name: 'Restore vdc' }).uncheck();
  await expect(dialog.getByRole('table', { name: 'Disks to restore' }).getByRole('row', { name: /vda/ })).toContainText('nothing — the disk is not touched');
  const target = await dialog.getByLabel('Path for vda').inputValue();
  expect(path.isAbsolute(target)).toBe(true);
  // Checked before anything runs: a relative path is refused in the dialog.
  await dialog.getByLabel('Path for vda').fill('restored.qcow2');
  await expect(dialog).toContainText('The path for vda must be absolute');
  await expect(dialog.getByRole('button', { name: 'Restore vda to a new image' })).toBeDisabled();
  // A restore that fails in the engine (its folder does not exist) leaves the VM as it was.
  await dialog.getByLabel('Path for vda').fill(path.join(host.stateDir, 'no-such-dir', 'vda.qcow2'));
  await dialog.getByRole('button', { name: 'Restore vda to a new image' }).click();
  await expect(dialog).toContainText('The restore failed', { timeout: 30_000 });
  await expect(dialog.getByRole('alert')).toContainText('no-such-dir does not exist');
  await app.screenshot({ path: artifact('restore-failed') });
  expect(await host.handlers['checkpoint:list'](vm!.id)).toHaveLength(checkpointsBefore);
  expect(JSON.stringify((await host.handlers['vm:info'](vm!.id)).disks.map((d) => d.bitmaps.map((b) => b.name)))).toBe(bitmapsBefore);
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Again, to a good path: the dialog shows only this attempt's job, not the failed one before.
  await app.getByRole('button', { name: 'Restore' }).click();
  await dialog.getByRole('checkbox', { name: 'Restore vdb' }).uncheck();
  await dialog.getByRole('checkbox', { name: 'Restore vdc' }).uncheck();
  await expect(dialog.getByLabel('Path for vda')).toHaveValue(target);
  await app.screenshot({ path: artifact('restore-form') });
  await dialog.getByRole('button', { name: 'Restore vda to a new image' }).click();
  await expect(dialog.getByRole('status')).toContainText(`vda restored to ${target}`, { timeout: 60_000 });
  await expect(dialog.getByRole('article')).toHaveCount(1);
  await expect(dialog.getByRole('article').first()).toContainText('succeeded');
  await app.screenshot({ path: artifact('restore-done') });
  await dialog.getByRole('button', { name: 'Close' }).click();
  // Nothing was added to the VM.
  await expect(app.getByRole('treeitem', { name: /^pre-restore-/ })).toHaveCount(0);
  expect(await host.handlers['checkpoint:list'](vm!.id)).toHaveLength(checkpointsBefore);

  // The new image holds exactly the backup point.
  const listing = await host.handlers['backup:list']();
  // The service names the VM "demo"; the repository keeps it under its UUID (as the manifest on disk).
  const layer = path.join(listing.repo, 'vms', backup.vm.uuid!, backup.disks.find((d) => d.name === 'vda')!.image);
  expect(fs.existsSync(target)).toBe(true);
  const out = execFileSync('qemu-img', ['compare', target, layer], { encoding: 'utf8' });
  expect(out).toContain('Images are identical');
  expect(consoleErrors).toEqual([]);
});
