// The first thing that must work: the page loads from the web host, talks to the engine over the
// WebSocket, and shows the real demo VM with its disks — with no console errors.
import { artifact, expect, test } from './fixtures';

test('the page loads over the WebSocket transport and shows the demo VM and its disks', async ({ app, host, consoleErrors }) => {
  await expect(app).toHaveTitle('Tidemark');
  await expect(app.getByTitle('How this page reaches the engine')).toHaveText('websocket');
  const disks = app.getByRole('region', { name: 'Disks' });
  for (const name of ['vda', 'vdb', 'vdc']) await expect(disks.getByText(name, { exact: true })).toBeVisible();
  await expect(app.getByRole('banner').getByText('● connected')).toBeVisible();
  await expect(app.getByRole('button', { name: 'Create checkpoint' })).toBeEnabled();

  // The token is in the URL only; the served HTML does not carry it.
  const html = await (await app.request.get(`${host.origin}/`)).text();
  expect(html).not.toContain(host.token);

  await app.screenshot({ path: artifact('smoke'), fullPage: true });
  expect(consoleErrors).toEqual([]);
});
