// Pull-mode backups (issue 5) through the Back up dialog against a REAL demo VM: a full and an
// incremental pull into the repository with progress and timeline markers, and an export-only pull
// whose NBD URIs (with Copy buttons and the admin's commands) are read by the real nbdinfo before
// the admin reports the outside copy as succeeded — or failed, which rolls its checkpoint back.
import { execFileSync } from 'node:child_process';
import { artifact, expect, test } from './fixtures';
import { band, bracketTo, createCheckpoint, simulateWrites } from './ui';

const MiB = 1024 * 1024;

test('pull backups from the dialog: full, then incremental with the bytes to copy; progress, log and markers', async ({ app, host, consoleErrors }) => {
  await createCheckpoint(app, 'base', 'Independent');
  await simulateWrites(app, 'vda', 8, { rate: 64 });

  await app.getByRole('button', { name: 'Back up' }).click();
  let dialog = app.getByRole('dialog', { name: /^Back up / });
  await expect(dialog.getByRole('radio', { name: /^Push/ })).toBeChecked();
  await dialog.getByRole('radio', { name: /^Pull/ }).check();
  await expect(dialog.getByLabel('Speed limit per disk (MiB/s)')).toHaveCount(0); // push only
  await expect(dialog.getByLabel('Fleecing space limit (MiB)')).toBeVisible();
  await expect(dialog.getByRole('checkbox', { name: /Export only/ })).not.toBeChecked();
  await expect(dialog.getByRole('radio', { name: /Full/ })).toBeChecked();
  await app.screenshot({ path: artifact('pull-form') });
  await dialog.getByRole('button', { name: 'Start pull backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/Pull backup \S+ finished: vda full 8\.0 MiB/, { timeout: 60_000 });
  await expect(dialog.getByRole('progressbar', { name: /: vda$/ })).toHaveAttribute('value', '100');
  await expect(dialog.getByRole('status')).toContainText(/Fleecing peaked at/);
  await dialog.getByText(/^Log \(\d+ lines\)$/).click();
  await expect(dialog.locator('.job-log')).toContainText('transaction done: point in time fixed, fleecing started');
  await app.screenshot({ path: artifact('pull-full-done') });
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(band(app, 'vda').locator('.backup-mark.backup-full')).toHaveAttribute('data-glyph', '■');
  await expect(band(app, 'vda').locator('.backup-mark.backup-full title')).toContainText('pull mode (read over NBD)');

  // Incremental: only the 4 MiB written since the full pull's checkpoint, as the dialog said before.
  await simulateWrites(app, 'vda', 4, { rate: 64 });
  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByRole('radio', { name: /^Pull/ }).check();
  await expect(dialog.getByRole('radio', { name: /Incremental/ })).toBeChecked();
  await expect(dialog.getByRole('table', { name: 'Bytes to copy per disk' }).getByRole('row', { name: /vda/ })).toContainText('4.0 MiB');
  await dialog.getByRole('button', { name: 'Start pull backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/vda incremental 4\.0 MiB/, { timeout: 60_000 });
  await dialog.getByRole('button', { name: 'Close' }).click();
  const inc = band(app, 'vda').locator('.backup-mark.backup-incremental');
  await expect(inc).toHaveAttribute('data-glyph', '◧');
  await expect.poll(() => bracketTo(inc)).toBe(true);
  await app.screenshot({ path: artifact('pull-incremental-done') });

  // Both are in the repository, written by the pull path, and verify.
  const listing = await host.handlers['backup:list']();
  expect(listing.backups.map((b) => [b.kind, b.tool.endsWith('(pull)')])).toEqual([['full', true], ['incremental', true]]);
  const report = await host.handlers['backup:verify']();
  expect(report.ok).toBe(true);
  expect(consoleErrors).toEqual([]);
});

test('export-only pull: NBD URIs with Copy, the commands work as shown, success keeps the checkpoint, failure rolls it back', async ({ app, host, consoleErrors }) => {
  await app.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: host.origin });
  // Arrange through the contract: a full backup (its checkpoint is the next incremental's base), then writes.
  const [vm] = await host.handlers['vm:list']();
  await host.handlers['checkpoint:create'](vm!.id, { name: 'base', layout: 'independent' });
  const { backup: full } = await host.handlers['backup:begin'](vm!.id, { full: true });
  const since = full.checkpoint!;
  await simulateWrites(app, 'vda', 4, { rate: 64 });
  // Counted in the table of checkpoints, which lists every one: the tree skips a node drawn closer than a
  // few pixels to the one before it (TreeLayer's MIN_NODE_PX), and on a slow run base and the full
  // backup's checkpoint, made half a second apart, end up that close as the time axis grows.
  const checkpoints = app.getByRole('table', { name: 'All checkpoints' });
  await expect(checkpoints).toHaveAttribute('aria-rowcount', '3'); // a header row and 2 checkpoints

  await app.getByRole('button', { name: 'Back up' }).click();
  let dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByRole('radio', { name: /^Pull/ }).check();
  await dialog.getByRole('checkbox', { name: /Export only/ }).check();
  await expect(dialog.getByRole('radio', { name: /Incremental/ })).toBeChecked();
  // Differential since base would be full: no backup holds the disks at base (said before it runs).
  await dialog.getByRole('radio', { name: /Differential/ }).check();
  await dialog.getByLabel('Base checkpoint').selectOption('base');
  await expect(dialog.getByRole('table', { name: 'Bytes to copy per disk' }).getByRole('row', { name: /vda/ })).toContainText('full: no backup in this repository holds vda at base');
  await dialog.getByRole('radio', { name: /Incremental/ }).check();
  await expect(dialog.getByRole('table', { name: 'Bytes to copy per disk' }).getByRole('row', { name: /vda/ })).toContainText('4.0 MiB');
  await dialog.getByRole('checkbox', { name: 'Back up vdc' }).uncheck();
  await app.screenshot({ path: artifact('pull-export-form') });
  await dialog.getByRole('button', { name: 'Open NBD exports' }).click();

  const vda = dialog.getByRole('region', { name: 'Export of vda' });
  await expect(vda).toBeVisible({ timeout: 30_000 });
  await expect(dialog.getByRole('region', { name: 'Export of vdb' })).toBeVisible();
  await expect(dialog.getByRole('region', { name: 'Export of vdc' })).toHaveCount(0);
  const uri = await vda.getByRole('textbox', { name: 'NBD URI of vda' }).inputValue();
  expect(uri).toMatch(/^nbd\+unix:\/\/\/tidemark-pull-\S+\?socket=\/\S+\.sock$/);
  await expect(vda).toContainText(`incremental since ${since}`);

  // Copy puts the URI on the clipboard.
  await vda.getByRole('button', { name: 'Copy NBD URI of vda' }).click();
  await expect(vda).toContainText('✓ NBD URI copied');
  expect(await app.evaluate(() => navigator.clipboard.readText())).toBe(uri);

  // The map command, run exactly as shown, lists the 4 MiB written since the full backup as dirty.
  const mapCommand = await vda.getByRole('textbox', { name: new RegExp(`^nbdinfo command for vda: which regions changed since ${since}`) }).inputValue();
  expect(mapCommand).toMatch(/^nbdinfo --map=qemu:dirty-bitmap:\S+ '/);
  const map = execFileSync('sh', ['-c', mapCommand], { encoding: 'utf8' });
  const dirty = map.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[3] === 'dirty').reduce((n, f) => n + Number(f[1]), 0);
  expect(dirty).toBe(4 * MiB);
  const info = execFileSync('sh', ['-c', await vda.getByRole('textbox', { name: /^nbdinfo command for vda: the export/ }).inputValue()], { encoding: 'utf8' });
  expect(info).toContain(`export-size: ${1024 * MiB}`);
  await app.screenshot({ path: artifact('pull-export-open') });

  // The exports outlive the dialog, and even a reload of the page: the Jobs pane shows them (read
  // back from the pull's job log) with the buttons that end the pull.
  await dialog.getByRole('button', { name: 'Close, keep exports open' }).click();
  await expect(dialog).toBeHidden();
  await app.reload();
  const jobs = app.getByRole('region', { name: 'Jobs' });
  const again = jobs.getByRole('region', { name: 'Export of vda' });
  await expect(again.getByRole('textbox', { name: 'NBD URI of vda' })).toHaveValue(uri);
  await expect(again.getByRole('textbox', { name: /^nbdinfo command for vda: which regions changed/ })).toHaveValue(mapCommand);
  await again.scrollIntoViewIfNeeded();
  await app.screenshot({ path: artifact('pull-export-jobs') });
  await jobs.getByRole('button', { name: '✓ External copy succeeded' }).click();
  await expect(jobs.getByRole('article', { name: 'Pull backup (export only)' })).toContainText('succeeded', { timeout: 30_000 });
  await expect(jobs.getByRole('region', { name: 'Export of vda' })).toHaveCount(0);
  await expect(checkpoints).toHaveAttribute('aria-rowcount', '4'); // the pull's checkpoint counts now
  // The export is closed: nbdinfo can no longer connect.
  expect(() => execFileSync('nbdinfo', [uri], { encoding: 'utf8', stdio: 'pipe' })).toThrow();

  // A second export-only pull, reported as failed: its checkpoint is rolled back, ✕ stays visible.
  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByRole('radio', { name: /^Pull/ }).check();
  await dialog.getByRole('checkbox', { name: /Export only/ }).check();
  await dialog.getByRole('radio', { name: /Full/ }).check();
  await dialog.getByLabel('Checkpoint name').fill('never-kept');
  await dialog.getByRole('button', { name: 'Open NBD exports' }).click();
  await expect(dialog.getByRole('region', { name: 'Export of vda' })).toBeVisible({ timeout: 30_000 });
  await expect(dialog.getByRole('region', { name: 'Export of vda' })).toContainText('full: the whole disk');
  await dialog.getByRole('button', { name: '✕ External copy failed' }).click();
  await expect(dialog.getByRole('alert').filter({ hasText: '✕ The pull ended as failed' })).toContainText('its checkpoint was rolled back', { timeout: 30_000 });
  await expect(dialog.getByRole('region', { name: 'Export of vda' })).toHaveCount(0); // closed: no dead URIs left on screen
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(checkpoints).toHaveAttribute('aria-rowcount', '4');
  await expect(checkpoints.getByRole('button', { name: 'base', exact: true })).toHaveCount(1); // the locator finds a listed one
  await expect(checkpoints.getByRole('button', { name: /^never-kept/ })).toHaveCount(0);
  await expect(band(app, 'vda').locator('.backup-mark.backup-failed')).toHaveAttribute('data-glyph', '✕');
  await app.screenshot({ path: artifact('pull-export-failed') });
  expect(consoleErrors).toEqual([]);
});
