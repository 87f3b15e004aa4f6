// The app by keyboard alone, against a REAL demo VM: a skip link to the timeline, Delete on a
// checkpoint opens the delete dialog, Escape clears the selection (and the list of every checkpoint
// comes back), and focus lands on something that exists after every dialog — never on <body>.
import type { Page } from '@playwright/test';
import { artifact, expect, test } from './fixtures';

const focused = (page: Page) => page.evaluate(() => {
  const el = document.activeElement;
  return el === document.body || !el ? 'body' : `${el.getAttribute('role') ?? el.tagName.toLowerCase()}:${el.getAttribute('data-name') ?? el.textContent?.trim().slice(0, 40) ?? ''}`;
});

test('keyboard only: skip link, create, Delete, Escape, and focus after each dialog', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  for (const name of ['a', 'b', 'c']) await host.handlers['checkpoint:create'](vm!.id, { name, layout: 'independent' });
  await expect(app.getByRole('table', { name: 'All checkpoints' }).getByRole('row')).toHaveCount(4);

  // From the top of the page: Tab, Tab, Enter reaches the checkpoint details (the table of every
  // checkpoint) through the second skip link…
  await app.keyboard.press('Tab');
  const skip = app.getByRole('link', { name: 'Skip to the timeline' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  await app.screenshot({ path: artifact('keyboard-skip-link') });
  await app.keyboard.press('Tab');
  await expect(app.getByRole('link', { name: 'Skip to the checkpoint details' })).toBeFocused();
  await app.keyboard.press('Enter');
  await expect(app.getByRole('region', { name: 'Checkpoint details' })).toBeFocused();
  await app.keyboard.press('Tab');
  await expect(app.getByRole('table', { name: 'All checkpoints' }).getByRole('button', { name: 'c' })).toBeFocused();
  // …and the first one lands in the tree, on the current checkpoint.
  await skip.focus();
  await app.keyboard.press('Enter');
  const tree = app.getByRole('tree', { name: /^Checkpoints of / });
  await expect(tree.getByRole('treeitem', { name: /^c,/ })).toBeFocused();

  // Arrow keys select; Escape clears the selection and brings the list of every checkpoint back.
  await tree.getByRole('treeitem', { name: /^c,/ }).focus();
  await app.keyboard.press('ArrowUp');
  await expect(tree.getByRole('treeitem', { name: /^b,/ })).toBeFocused();
  await expect(app.getByRole('heading', { name: 'Checkpoint b' })).toBeVisible();
  await app.keyboard.press('Escape');
  await expect(app.getByRole('table', { name: 'All checkpoints' })).toBeVisible();
  await expect(app.locator('.selection-info')).toHaveText(/^Select a checkpoint/);

  // Delete on a checkpoint opens the delete dialog for it, with Cancel focused; Escape cancels and
  // focus returns to that checkpoint.
  await tree.getByRole('treeitem', { name: /^b,/ }).focus();
  await app.keyboard.press('Delete');
  let dialog = app.getByRole('dialog', { name: /^Delete checkpoint b / });
  await expect(dialog.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await app.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(tree.getByRole('treeitem', { name: /^b,/ })).toBeFocused();

  // Delete it for real: focus goes to what is left (its parent, a), never to <body>.
  await app.keyboard.press('Delete');
  dialog = app.getByRole('dialog', { name: /^Delete checkpoint b / });
  await dialog.getByRole('button', { name: 'Delete b' }).focus();
  await app.keyboard.press('Enter');
  await expect(dialog).toBeHidden();
  await expect(tree.getByRole('treeitem', { name: /^a,/ })).toBeFocused();
  expect(await focused(app)).toBe('treeitem:a');
  await app.screenshot({ path: artifact('keyboard-after-delete') });

  // Create from the action bar: focus lands on the new checkpoint in the tree.
  await app.getByRole('toolbar', { name: 'Actions' }).getByRole('button', { name: 'Create checkpoint' }).focus();
  await app.keyboard.press('Enter');
  dialog = app.getByRole('dialog', { name: /^Create checkpoint of/ });
  await expect(dialog.getByLabel('Name')).toBeFocused();
  await app.keyboard.press('Control+A');
  await app.keyboard.type('d');
  await app.keyboard.press('Enter');
  await expect(dialog).toBeHidden();
  await expect(tree.getByRole('treeitem', { name: /^d,/ })).toBeFocused();

  // A dialog closed without changes: focus returns to the button that opened it.
  const backUp = app.getByRole('button', { name: 'Back up' });
  await backUp.focus();
  await app.keyboard.press('Enter');
  await expect(app.getByRole('dialog', { name: /^Back up / })).toBeVisible();
  await app.keyboard.press('Escape');
  await expect(backUp).toBeFocused();

  // The VMs panel folds away and back from the keyboard.
  const toggle = app.getByRole('button', { name: /VMs/ });
  await toggle.focus();
  await app.keyboard.press('Enter');
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await expect(app.getByRole('navigation', { name: 'Virtual machines' })).toHaveCount(0);
  await app.keyboard.press('Enter');
  await expect(app.getByRole('navigation', { name: 'Virtual machines' })).toBeVisible();
  expect(consoleErrors).toEqual([]);
});
