// The retention simulator against a REAL demo VM and real push backups: a policy greys the points
// it would remove and marks the layers it would merge, with the bytes freed, before anything
// changes (the engine's dry run); bad input is named; Apply asks first, then prunes for real.
import { artifact, expect, test } from './fixtures';
import { writeThroughContract } from './ui';

test('retention simulator: removed points greyed, merged layers marked, nothing changes until Apply', async ({ app, host, consoleErrors }) => {
  // Arrange through the contract: a full backup and three incrementals of one VM.
  const [vm] = await host.handlers['vm:list']();
  await host.handlers['checkpoint:create'](vm!.id, { name: 'base', layout: 'independent' });
  await writeThroughContract(host, vm!.id, 'vda', 2);
  const points = [(await host.handlers['backup:begin'](vm!.id, { full: true })).backup.id];
  for (let i = 0; i < 3; i++) {
    await writeThroughContract(host, vm!.id, 'vda', 1);
    points.push((await host.handlers['backup:begin'](vm!.id, {})).backup.id);
  }

  await app.getByRole('button', { name: 'Retention…' }).click();
  const dialog = app.getByRole('dialog', { name: 'Retention: prune and merge backups' });
  for (const rule of ['Daily', 'Weekly']) await dialog.getByLabel(rule, { exact: true }).fill('');
  await dialog.getByLabel('Keep last', { exact: true }).fill('2');
  const summary = dialog.getByTestId('ret-summary');
  await expect(summary).toContainText('2 kept · 2 removed');
  await expect(summary).toContainText(/frees \S+/);

  // The two oldest points are greyed; their vda layers are marked as merged into the oldest kept point.
  const removed = dialog.locator('tr.ret-removed');
  await expect(removed).toHaveCount(2);
  expect(await removed.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-point')))).toEqual([points[1], points[0]]);
  expect(await removed.first().evaluate((r) => getComputedStyle(r.querySelector('td')!).textDecorationLine)).toBe('line-through'); // greyed and struck through
  const merged = removed.locator('.ret-layer.ret-merge', { hasText: 'vda' });
  await expect(merged).toHaveCount(2);
  await expect(merged.first()).toContainText(`merged into ${points[2]!.slice(0, 12)}`);
  await expect(dialog.locator(`tr[data-point="${points[2]}"] .ret-layer.ret-rewrite`, { hasText: 'vda' })).toHaveCount(1);
  await expect(dialog.locator('tr.ret-kept')).toHaveCount(2);
  await app.screenshot({ path: artifact('retention-simulator') });
  expect((await host.handlers['backup:list']()).backups.map((b) => b.id)).toEqual(points); // a dry run only

  // Another policy re-plans; a bad number is named and nothing is simulated.
  await dialog.getByLabel('Keep last', { exact: true }).fill('3');
  await expect(summary).toContainText('3 kept · 1 removed');
  await dialog.getByLabel('Keep last', { exact: true }).fill('two');
  await expect(dialog.getByRole('alert')).toContainText('Keep last: a whole number from 0 to 1000000.');
  await expect(dialog.getByRole('button', { name: 'Apply…' })).toBeEnabled(); // the last good preview stays
  await dialog.getByLabel('Keep last', { exact: true }).fill('2');
  await expect(summary).toContainText('2 kept · 2 removed');

  // Apply asks first; Back changes nothing; then it prunes for real.
  await dialog.getByRole('button', { name: 'Apply…' }).click();
  await expect(dialog.getByRole('alert')).toContainText('Remove 2 backup point(s) and merge');
  await dialog.getByRole('button', { name: 'Back' }).click();
  expect((await host.handlers['backup:list']()).backups).toHaveLength(4);
  await dialog.getByRole('button', { name: 'Apply…' }).click();
  await dialog.getByRole('button', { name: 'Remove 2 point(s) now' }).click();
  await expect(dialog.getByRole('status')).toContainText(/Done: 2 kept, 2 removed, \d+ layer\(s\) merged; \S+ \S+ freed\./, { timeout: 60_000 });
  await app.screenshot({ path: artifact('retention-applied') });
  expect((await host.handlers['backup:list']()).backups.map((b) => b.id)).toEqual([points[2], points[3]]);
  expect((await host.handlers['backup:verify']()).ok).toBe(true);
  await dialog.getByRole('button', { name: 'Close' }).click();
  expect(consoleErrors).toEqual([]);
});
