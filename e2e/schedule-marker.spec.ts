// Backup schedules on the timeline (issue 13): a schedule added through the contract (into a unit
// folder under the e2e host's state dir, --unit-dir) shows as a marker at its next run right of
// NOW, or as a note at the right edge while its next run is beyond the visible range.
// The page lists schedules from the host's default place (/etc/cron.d here); the test points that
// one request at its own folder by rewriting it on the WebSocket, so nothing outside the temp
// state dir is read or written.
import * as path from 'node:path';
import { artifact, expect, test } from './fixtures';

test('schedule marker: the next run right of NOW with its label, an off-range note, the retention dialog lists them', async ({ app, host, consoleErrors }) => {
  const unitDir = path.join(host.stateDir, 'units');
  await app.routeWebSocket(/.*/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const text = typeof m === 'string' ? m : m.toString();
      const req = JSON.parse(text) as { channel?: string; args?: unknown[] };
      server.send(req.channel === 'schedule:list' ? JSON.stringify({ ...req, args: [{ unitDir }] }) : text);
    });
  });
  const [vm] = await host.handlers['vm:list']();
  const hourly = await host.handlers['schedule:add'](vm!.id, { every: 'hourly', id: 'demo-hourly', unitDir, policy: { daily: 7 } });
  const minutely = await host.handlers['schedule:add'](vm!.id, { every: 'minutely', id: 'demo-minutely', unitDir, mode: 'pull' });
  expect(hourly.schedule.next).toBeGreaterThan(Date.now());
  expect(minutely.schedule.next).toBeGreaterThan(Date.now());
  await app.reload();
  await expect(app.getByRole('region', { name: 'Disks' }).getByText('vda', { exact: true })).toBeVisible();

  // Fitted to a fresh VM, the view spans minutes: the hourly run is beyond it, named at the right edge.
  const beyond = app.locator('g.sched-beyond');
  await expect(beyond).toBeVisible();
  await expect(beyond).toContainText(/next scheduled backup in \d+ (s|min)/);

  // Zoomed out, the minutely run is a marker right of NOW, labelled for people and screen readers.
  const mark = app.locator('g.sched-mark[data-schedule="demo-minutely"]');
  for (let i = 0; i < 12 && (await mark.count()) === 0; i++) await app.getByRole('button', { name: 'Zoom out' }).click();
  await expect(mark).toHaveCount(1);
  const label = await mark.getAttribute('aria-label');
  expect(label).toMatch(/^scheduled backup minutely · next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(pull\)$/);
  await expect(app.getByRole('img', { name: label! })).toHaveCount(1);
  // Both x read in one pass in the page: the axis moves with NOW between two separate reads.
  const [markX, nowX] = await mark.locator('line').evaluate((line) => [Number(line.getAttribute('x1')), Number(document.querySelector('line.now-line')?.getAttribute('x1'))]);
  expect(markX).toBeGreaterThan(nowX!);
  await app.screenshot({ path: artifact('schedule-marker') });

  // The retention dialog lists this VM's schedules (matched by its identity) with their next run.
  await app.getByRole('button', { name: 'Retention…' }).click();
  const dialog = app.getByRole('dialog', { name: 'Retention: prune and merge backups' });
  await expect(dialog.locator('li[data-schedule]')).toHaveCount(2);
  await expect(dialog.locator('li[data-schedule="demo-hourly"]')).toContainText('push backup hourly, then prune (keep-daily 7)');
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Removing the schedules clears the timeline after the VM is read again.
  await host.handlers['schedule:remove']('demo-minutely', { unitDir });
  await host.handlers['schedule:remove']('demo-hourly', { unitDir });
  await app.reload();
  await expect(app.getByRole('region', { name: 'Disks' }).getByText('vda', { exact: true })).toBeVisible();
  await app.getByRole('button', { name: 'Retention…' }).click();
  await expect(app.getByRole('dialog').getByText(`No backup schedule in ${unitDir}.`)).toBeVisible(); // the listing came back empty
  await app.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await expect(app.locator('g.schedule-marks')).toHaveCount(0);
  expect(consoleErrors).toEqual([]);
});
