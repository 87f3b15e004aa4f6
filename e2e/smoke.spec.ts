// The first thing that must work: the page loads from the web host, talks to the engine over the
// WebSocket, and shows the real demo VM with its disks — with no console errors.
import { artifact, expect, test } from './fixtures';

test('the page loads over the WebSocket transport and shows the demo VM and its disks', async ({ app, host, consoleErrors, browser }) => {
  await expect(app).toHaveTitle('Tidemark');
  await expect(app.getByTitle('How this page reaches the engine')).toHaveText('websocket');
  const disks = app.getByRole('region', { name: 'Disks' });
  for (const name of ['vda', 'vdb', 'vdc']) await expect(disks.getByText(name, { exact: true })).toBeVisible();
  await expect(app.getByRole('banner').getByText('● connected')).toBeVisible();
  await expect(app.getByRole('button', { name: 'Create checkpoint' })).toBeEnabled();

  // Logged in through the one-time code: it left the address bar (and so history) before the app
  // rendered, the session is an HttpOnly, SameSite=Strict cookie, and the served HTML carries neither.
  expect(await app.evaluate(() => location.href)).toBe(`${host.origin}/`);
  expect(app.url()).not.toContain(host.code);
  const cookies = await app.context().cookies(host.origin);
  expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.path])).toEqual([[host.cookieName, true, 'Strict', '/']]);
  expect(await app.evaluate(() => document.cookie)).toBe('');
  const html = await (await app.request.get(`${host.origin}/`)).text();
  expect(html).not.toContain(host.code);
  expect(html).not.toContain(cookies[0]!.value);

  // A reload logs in again through the cookie; the printed address, used once, is refused.
  await app.reload();
  await expect(app.getByRole('banner').getByText('● connected')).toBeVisible();
  const again = await app.request.post(`${host.origin}/session`, { headers: { Origin: host.origin, 'Content-Type': 'application/json' }, data: { code: host.code } });
  expect(again.status()).toBe(403);
  expect(await again.text()).toContain('restart `tidemark serve`');

  // Another browser profile: the printed address, spent, shows the host's message; the plain
  // address asks for the code, and a wrong one is refused on the form.
  const other = await browser.newContext();
  try {
    const page2 = await other.newPage();
    await page2.goto(host.url);
    await expect(page2.getByRole('alert')).toHaveText(/^this login code was already used: restart `tidemark serve`/);
    expect(page2.url()).toBe(`${host.origin}/`);
    await page2.goto(`${host.origin}/`);
    await expect(page2.getByRole('alert')).toHaveText(/Paste the login code/);
    await page2.getByLabel('Login code').fill('A'.repeat(43));
    await page2.getByRole('button', { name: 'Log in' }).click();
    await expect(page2.getByRole('alert')).toHaveText(/^wrong login code/);
    expect(await other.cookies(host.origin)).toEqual([]);
  } finally {
    await other.close();
  }

  await app.screenshot({ path: artifact('smoke'), fullPage: true });
  expect(consoleErrors).toEqual([]);
});
