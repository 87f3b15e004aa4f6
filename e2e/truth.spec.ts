// Every figure on screen is either exact or says what it is — checked against the engine's own
// answers, with a REAL demo VM: the chained layout's "changed since" an older checkpoint (the
// merge of the bitmaps on the path, also after a reload), the bytes a full backup may copy (a
// bound, said to be one), and the base a finished incremental backup or pull really used.
import type { Page } from '@playwright/test';
import { formatPart } from '../renderer/src/format';
import { artifact, expect, test } from './fixtures';
import { band, clickCheckpoint, createCheckpoint, writeThroughContract } from './ui';

const areaEnd = (page: Page, disk: string) => band(page, disk).locator('.area-end');

test('chained layout: "changed since" an older checkpoint is the engine’s merge of the chain, also after a reload', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  await createCheckpoint(app, 'c1', 'Chained');
  await writeThroughContract(host, vm!.id, 'vda', 40);
  await createCheckpoint(app, 'c2');
  await writeThroughContract(host, vm!.id, 'vda', 8);
  await createCheckpoint(app, 'c3');

  const engine = async (name: string, disk: string) => (await host.handlers['checkpoint:changes'](vm!.id, name)).disks.find((d) => d.disk === disk)!;
  const expectExact = async (page: Page, name: string) => {
    for (const disk of ['vda', 'vdb']) {
      const answer = await engine(name, disk);
      await expect(areaEnd(page, disk)).toHaveAttribute('data-kind', 'exact', { timeout: 20_000 });
      await expect(areaEnd(page, disk)).toHaveText(formatPart(answer.bytes, answer.virtualSize));
    }
  };

  await clickCheckpoint(app, 'c1');
  await expectExact(app, 'c1');
  await expect(band(app, 'vda').locator('.area-end-g title')).toContainText('merge of 3 bitmaps (c1 + c2 + c3)');
  // The details table says the same.
  const answer = await engine('c1', 'vda');
  await expect(app.getByRole('table', { name: 'Bitmaps of c1' }).getByRole('row', { name: /^vda/ })).toContainText(formatPart(answer.bytes, answer.virtualSize));
  await app.screenshot({ path: artifact('truth-chained-older-baseline') });

  // After a reload (no live events on an idle VM): still the engine's figure, never "≤ 0 B".
  await app.reload();
  await expect(app.getByRole('region', { name: 'Disks' }).getByText('vda', { exact: true })).toBeVisible();
  await clickCheckpoint(app, 'c1');
  await expectExact(app, 'c1');
  await expect(areaEnd(app, 'vda')).not.toHaveText(/^≤/);
  await app.screenshot({ path: artifact('truth-chained-after-reload') });
  expect(consoleErrors).toEqual([]);
});

test('backups: a full backup’s size is a bound and says so; the summary names the base that was really used, push and pull', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  await createCheckpoint(app, 'base', 'Independent');
  await writeThroughContract(host, vm!.id, 'vda', 8, 'sequential'); // exactly 8 MiB allocated: random blocks may land twice

  await app.getByRole('button', { name: 'Back up' }).click();
  let dialog = app.getByRole('dialog', { name: /^Back up / });
  await expect(dialog.getByRole('radio', { name: /Full/ })).toBeChecked();
  // Not "at most 1.6 GiB" as if it were an estimate: the disks' size, said to be a bound.
  await expect(dialog.locator('.foot-note')).toHaveText('Up to 1.6 GiB for vda, vdb, vdc copied in full (disk size: only allocated data is copied, often far less)');
  // A checkpoint name the engine would refuse is refused here, before anything runs.
  await dialog.getByLabel('Checkpoint name').fill('nightly/1');
  await expect(dialog.getByText('checkpoint name "nightly/1" contains "/"')).toBeVisible();
  await expect(dialog.getByRole('button', { name: 'Start backup' })).toBeDisabled();
  await app.screenshot({ path: artifact('truth-backup-bad-name') });
  await dialog.getByLabel('Checkpoint name').fill('full-1');
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/Backup \S+ finished: vda full 8\.0 MiB/, { timeout: 60_000 });
  await expect(dialog).toContainText('■ Full backup of vda, vdb, vdc.');
  await dialog.getByRole('button', { name: 'Close' }).click();
  // Nothing failed: no ✕ on any lane.
  await expect(app.locator('.backup-mark.backup-failed')).toHaveCount(0);

  // Incremental (push): the summary names full-1, the base it used — not inc-1, the checkpoint it made.
  await writeThroughContract(host, vm!.id, 'vda', 4, 'sequential'); // exactly 4 MiB dirty: random blocks may land twice
  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await expect(dialog.getByRole('radio', { name: /Incremental/ })).toBeChecked();
  await expect(dialog.locator('.foot-note')).toHaveText(/^4\.0 MiB measured from the bitmaps \+ up to 64\.0 MiB for vdc copied in full/);
  await dialog.getByLabel('Checkpoint name').fill('inc-1');
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/vda incremental 4\.0 MiB/, { timeout: 60_000 });
  const listing = await host.handlers['backup:list']();
  const inc = listing.backups.find((b) => b.checkpoint === 'inc-1')!;
  expect(inc.since).toBe('full-1');
  await expect(dialog).toContainText('Backup of vda incremental since full-1 · vdb incremental since full-1 · vdc full.');
  await expect(dialog).not.toContainText('since inc-1');
  // Only this backup's job is in the dialog.
  await expect(dialog.getByRole('article')).toHaveCount(1);
  await app.screenshot({ path: artifact('truth-incremental-summary') });
  await dialog.getByRole('button', { name: 'Close' }).click();

  // The same in pull mode: the base is inc-1.
  await writeThroughContract(host, vm!.id, 'vda', 4, 'sequential');
  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByRole('radio', { name: /^Pull/ }).check();
  await dialog.getByLabel('Checkpoint name').fill('pull-1');
  await dialog.getByRole('button', { name: 'Start pull backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/vda incremental 4\.0 MiB/, { timeout: 60_000 });
  expect((await host.handlers['backup:list']()).backups.find((b) => b.checkpoint === 'pull-1')!.since).toBe('inc-1');
  await expect(dialog).toContainText('Backup of vda incremental since inc-1 · vdb incremental since inc-1 · vdc full, pull mode.');
  await app.screenshot({ path: artifact('truth-pull-summary') });
  await dialog.getByRole('button', { name: 'Close' }).click();
  expect(consoleErrors).toEqual([]);
});

test('a dialog shows only its own job: a retry after a cancelled backup shows the new attempt alone', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  await createCheckpoint(app, 'base', 'Independent');
  await writeThroughContract(host, vm!.id, 'vda', 16);
  await app.getByRole('button', { name: 'Back up' }).click();
  let dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByLabel('Speed limit per disk (MiB/s)').fill('1');
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  await dialog.getByRole('button', { name: 'Cancel backup' }).click();
  await expect(dialog.getByRole('alert').first()).toContainText(/cancel/i, { timeout: 30_000 });
  await dialog.getByRole('button', { name: 'Close' }).click();

  await app.getByRole('button', { name: 'Back up' }).click();
  dialog = app.getByRole('dialog', { name: /^Back up / });
  await dialog.getByRole('button', { name: 'Start backup' }).click();
  await expect(dialog.getByRole('status')).toContainText(/finished/, { timeout: 60_000 });
  await expect(dialog.getByRole('article')).toHaveCount(1);
  await expect(dialog.getByRole('article')).toContainText('succeeded');
  await expect(dialog.locator('.job.failed, .job.cancelled')).toHaveCount(0);
  await app.screenshot({ path: artifact('truth-retry-own-job') });
  expect(consoleErrors).toEqual([]);
});
