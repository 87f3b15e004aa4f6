// The timeline against a REAL demo VM: create checkpoints (chained layout, the 2019 picture),
// simulate guest writes and watch the lanes and the dirty area grow, move through the tree with
// the keyboard, delete a checkpoint. Screenshots of each state go to e2e/artifacts/.
import type { Page } from '@playwright/test';
import { artifact, expect, test } from './fixtures';
import { createCheckpoint, simulateWrites, wordsWhileMoving } from './ui';

const span = (page: Page, disk: string, checkpoint: string) => page.locator(`g.band[data-disk="${disk}"] .span[data-checkpoint="${checkpoint}"]`);

test('checkpoints in the chained layout: one recording bitmap, frozen ones behind it; writes grow the lanes', async ({ app, consoleErrors }) => {
  // First checkpoint: the layout is chosen here, each explained with its own lane picture.
  await app.getByRole('toolbar', { name: 'Actions' }).getByRole('button', { name: 'Create checkpoint' }).click();
  const dialog = app.getByRole('dialog', { name: /Create checkpoint of/ });
  await expect(dialog.getByLabel('Name')).toHaveValue(/^cp-\d{8}T\d{6}Z$/); // timestamped default
  await expect(dialog.getByRole('radio', { name: /Independent/ })).toBeChecked();
  await expect(dialog.getByRole('checkbox', { name: /vdc/ })).toBeDisabled(); // qcow2 v2: no bitmaps
  await expect(dialog.getByText(/cannot hold a persistent bitmap/)).toBeVisible();
  await app.screenshot({ path: artifact('timeline-create-dialog') });
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  await createCheckpoint(app, 'base', 'Chained');
  await expect(span(app, 'vda', 'base')).toHaveAttribute('data-state', 'recording');
  await expect(span(app, 'vdb', 'base')).toHaveAttribute('data-state', 'recording');
  await expect(app.locator('g.band[data-disk="vdc"]')).toContainText('vdc cannot hold persistent bitmaps');
  await expect(app.getByRole('img', { name: /^Now: 0 B changed since base$/ })).toBeVisible();

  // Writes: the live area under vda grows to exactly what was written (sequential, aligned).
  const areaEnd = app.locator('g.band[data-disk="vda"] .area-end');
  await expect(areaEnd).toHaveText('0 B of 1.0 GiB (0.0%)');
  await simulateWrites(app, 'vda', 8);
  await expect(areaEnd).toHaveText('8.0 MiB of 1.0 GiB (0.8%)');
  await expect(span(app, 'vda', 'base').locator('title')).toContainText('recording · 8.0 MiB');
  await expect(app.getByRole('img', { name: 'Now: 8.0 MiB changed since base' })).toBeVisible();
  await expect(app.locator('g.band[data-disk="vdb"] .area-end')).toHaveText('0 B of 512 MiB (0.0%)');
  await app.screenshot({ path: artifact('timeline-after-writes') });

  // Second checkpoint: base stops recording (frozen interval), cp-2 records; both on one track.
  await createCheckpoint(app, 'cp-2');
  await simulateWrites(app, 'vda', 4);
  await expect(span(app, 'vda', 'base')).toHaveAttribute('data-state', 'disabled');
  await expect(span(app, 'vda', 'base').locator('title')).toContainText('not recording · 8.0 MiB in its interval');
  await expect(span(app, 'vda', 'cp-2')).toHaveAttribute('data-state', 'recording');
  const y = async (cp: string) => Number(await span(app, 'vda', cp).locator('rect').first().getAttribute('y'));
  expect(await y('base')).toBe(await y('cp-2'));
  await expect(app.locator('g.band[data-disk="vda"] .span[data-state="recording"]')).toHaveCount(1);
  await createCheckpoint(app, 'cp-3');
  await expect(app.locator('g.band[data-disk="vda"] .span[data-state="disabled"]')).toHaveCount(2);
  await app.screenshot({ path: artifact('timeline-chained') });

  // While the view moves, the plot shows no words (axis, NOW, the dirty area's figures); they come back.
  const words = await wordsWhileMoving(app);
  expect(words.before).toEqual(expect.arrayContaining(['tick', 'now-label', 'area-end figure-exact']));
  expect(words.moving).toBe(true);
  expect(words.during).toEqual([]);
  expect(words.after).toEqual(expect.arrayContaining(['tick', 'now-label', 'area-end figure-exact']));

  // Baseline = the selected checkpoint: since base, the chain base+cp-2+cp-3 holds 12 MiB.
  await app.getByRole('treeitem', { name: /^base,/ }).click();
  await expect(app.locator('g.band[data-disk="vda"] .area-end')).toHaveText(/^(≤ )?12\.0 MiB of 1\.0 GiB/);

  // The theme follows the system: dark when the OS asks for it.
  const background = () => app.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await background();
  await app.emulateMedia({ colorScheme: 'dark' });
  expect(await background()).not.toBe(light);
  await app.screenshot({ path: artifact('timeline-chained-dark') });
  await app.emulateMedia({ colorScheme: 'light' });
  expect(await background()).toBe(light);
  expect(consoleErrors).toEqual([]);
});

test('keyboard: the checkpoint tree is a tree of named items with arrow keys; Enter opens details; delete shows what goes', async ({ app, consoleErrors }) => {
  await createCheckpoint(app, 'a', 'Independent');
  await createCheckpoint(app, 'b');
  await createCheckpoint(app, 'c');
  const tree = app.getByRole('tree', { name: /^Checkpoints of / });
  await expect(tree.getByRole('treeitem')).toHaveCount(3);

  // Focus the tab stop: the selection (c, just created).
  await tree.getByRole('treeitem', { name: /^c,/ }).focus();
  await app.keyboard.press('ArrowLeft');
  await expect(tree.getByRole('treeitem', { name: /^b,/ })).toBeFocused();
  await app.keyboard.press('Home');
  await expect(tree.getByRole('treeitem', { name: /^a,/ })).toBeFocused();
  await app.keyboard.press('ArrowDown');
  await expect(tree.getByRole('treeitem', { name: /^b,/ })).toBeFocused();
  await expect(tree.locator('[role="treeitem"][tabindex="0"]')).toHaveCount(1);

  // Enter opens details (never a destructive action).
  await app.keyboard.press('Enter');
  const details = app.getByRole('region', { name: 'Checkpoint details' });
  await expect(details).toBeFocused();
  await expect(details.getByRole('heading', { name: 'Checkpoint b' })).toBeVisible();
  await expect(details.getByRole('table', { name: 'Bitmaps of b' })).toContainText('recording');
  await expect(app.getByRole('dialog')).toHaveCount(0);
  await expect(tree.getByRole('treeitem')).toHaveCount(3);
  await app.screenshot({ path: artifact('timeline-keyboard-details') });

  // Delete b: Cancel has the focus; the dialog lists what goes and who gets a new parent.
  await app.getByRole('button', { name: 'Delete checkpoint' }).click();
  const dialog = app.getByRole('dialog', { name: /Delete checkpoint b/ });
  await expect(dialog.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await expect(dialog.getByRole('list', { name: 'Checkpoints deleted' })).toHaveText(/✕ b/);
  await expect(dialog).toContainText('c → a');
  await expect(dialog.getByRole('list', { name: 'Bitmap changes' })).toContainText('vda: bitmap b is removed.');
  await dialog.getByRole('radio', { name: /This checkpoint and everything under it/ }).check();
  await expect(dialog.getByRole('list', { name: 'Checkpoints deleted' }).getByRole('listitem')).toHaveCount(2);
  await dialog.getByRole('radio', { name: /This checkpoint only/ }).check();
  await app.screenshot({ path: artifact('timeline-delete-dialog') });
  await dialog.getByRole('button', { name: 'Delete b' }).click();
  await expect(dialog).toBeHidden();
  await expect(tree.getByRole('treeitem')).toHaveCount(2);
  await expect(tree.getByRole('treeitem', { name: /^b,/ })).toHaveCount(0);
  await expect(app.locator('g.band[data-disk="vda"] .span[data-checkpoint="b"]')).toHaveCount(0);
  await app.screenshot({ path: artifact('timeline-after-delete') });

  // A bad endpoint is refused with a message naming what is wrong, and nothing is added.
  await app.getByRole('textbox', { name: 'QMP endpoint' }).fill('ftp://nowhere');
  await app.getByRole('button', { name: 'Add VM' }).click();
  await expect(app.getByRole('form', { name: 'Connect to a VM' }).getByRole('alert')).toContainText(/ftp|endpoint/i);
  await expect(app.getByRole('list', { name: 'Virtual machine list' }).getByRole('listitem')).toHaveCount(1);
  expect(consoleErrors).toEqual([]);
});
