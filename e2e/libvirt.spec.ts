// A REAL libvirt domain through the UI (issue 10): the web host with no demo VM, a guest-less TCG test
// domain from the harness (test/libvirt/lab.ts, removed on every path), and in Chromium: add
// qemu:///system in the VM panel, see its domains with their state, pick the test domain, create a
// checkpoint from the dialog, a full push and an incremental pull backup from the Back up dialog, and a restore to a new image
// from the Restore dialog, checked against the source disk with qemu-img compare.
// Runs as root only (libvirt's system daemon; the libvirt itests' rule) and needs libvirtd to answer.
import { test as base, expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startWebHost, type RunningWebHost } from '../electron/host/web-host';
import { ensureLibvirtDaemons } from '../test/libvirt/daemons';
import { guestFlush, guestWrite } from '../test/libvirt/guest-writes';
import { LOCAL_URI, LibvirtTestLab, runsAsRoot, type TestDomain } from '../test/libvirt/lab';
import { artifact } from './fixtures';
import { band, clickCheckpoint, createCheckpoint } from './ui';

interface Fixtures {
  lab: LibvirtTestLab;
  domain: TestDomain;
  host: RunningWebHost & { stateDir: string };
  consoleErrors: string[];
  app: Page;
}

/** Why libvirtd cannot be used here, or undefined when qemu:///system answers. */
async function libvirtdUnreachable(): Promise<string | undefined> {
  try {
    await ensureLibvirtDaemons();
    execFileSync('virsh', ['-q', '-c', LOCAL_URI, 'uri'], { stdio: 'pipe', timeout: 20_000 });
    return undefined;
  } catch (e) {
    return `libvirtd is not reachable at ${LOCAL_URI}: ${(e as Error).message.split('\n')[0]}`;
  }
}

const test = base.extend<Fixtures>({
  // eslint-disable-next-line no-empty-pattern
  lab: async ({}, use) => {
    const lab = await LibvirtTestLab.open();
    try {
      await use(lab);
    } finally {
      await lab.close(); // removes every tm-test-* domain it defined, also when the test failed
    }
  },
  domain: async ({ lab }, use) => {
    const domain = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 16 }] });
    // Data for the backup to carry: 1 MiB of 0x5a at 1 MiB, through the guest's disk backend.
    await guestWrite(lab.conn, domain, 'vda', { offset: 1 << 20, length: 1 << 20, pattern: 0x5a });
    await guestFlush(lab.conn, domain, 'vda');
    await use(domain);
  },
  // eslint-disable-next-line no-empty-pattern
  host: async ({}, use) => {
    // 0711: QEMU (libvirt-qemu) must traverse it to reach the push staging folder beside the repository.
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-e2e-lv-'));
    fs.chmodSync(stateDir, 0o711);
    const host = await startWebHost({ stateDir, startDemo: false });
    try {
      await use(Object.assign(host, { stateDir }));
    } finally {
      await host.close();
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  },
  consoleErrors: async ({ page }, use) => {
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    await use(errors);
  },
  app: async ({ page, host, consoleErrors }, use) => {
    void consoleErrors; // attach the listeners before the page loads
    await page.goto(host.url);
    await expect(page.getByRole('heading', { name: 'Connect to a VM' })).toBeVisible();
    await use(page);
  },
});

/** Adds qemu:///system in the VM panel and picks the test domain once it is listed running. */
async function addAndPick(app: Page, domain: TestDomain): Promise<void> {
  const panel = app.getByRole('navigation', { name: 'Virtual machines' });
  await panel.getByRole('textbox', { name: 'QMP endpoint or libvirt URI' }).fill(LOCAL_URI);
  await panel.getByRole('button', { name: 'Add VM' }).click();
  const row = panel.getByRole('list', { name: 'Virtual machine list' }).getByRole('button', { name: new RegExp(domain.name) });
  await expect(row).toContainText('running', { timeout: 30_000 });
  await row.click();
  await expect(app.getByRole('region', { name: 'Disks' }).getByText('vda', { exact: true })).toBeVisible();
}

test.describe('libvirt domain through the UI', () => {
  test.skip(!runsAsRoot, 'needs root: libvirt\'s system daemon (qemu:///system) and the QEMU file ownership the harness sets up');
  let unreachable: string | undefined;
  test.beforeAll(async () => {
    unreachable = await libvirtdUnreachable();
  });
  test.beforeEach(() => {
    test.skip(unreachable !== undefined, unreachable);
  });

  test('add qemu:///system, pick the test domain, checkpoint, full push + incremental pull backup, restore to a new image', async ({ lab, domain, host, app, consoleErrors }) => {
    test.setTimeout(240_000);
    const vmId = `${LOCAL_URI}#${domain.uuid}`;

    // Add the connection by URI in the VM panel; its domains are listed with libvirt's state.
    const panel = app.getByRole('navigation', { name: 'Virtual machines' });
    await panel.getByRole('textbox', { name: 'QMP endpoint or libvirt URI' }).fill(LOCAL_URI);
    await panel.getByRole('textbox', { name: 'Label' }).fill('this host');
    await panel.getByRole('button', { name: 'Add VM' }).click();
    const row = panel.getByRole('list', { name: 'Virtual machine list' }).getByRole('button', { name: new RegExp(domain.name) });
    await expect(row).toContainText('running', { timeout: 30_000 });
    await expect(row).toContainText('libvirt');
    await expect(row).toContainText('● connected');
    await expect(panel.getByRole('button', { name: `Remove connection ${LOCAL_URI}` })).toBeVisible();

    // Pick it: its disk, and the note that bitmap counts come from libvirt on demand.
    await row.click();
    const disks = app.getByRole('region', { name: 'Disks' });
    await expect(disks.getByText('vda', { exact: true })).toBeVisible();
    await expect(disks).toContainText('libvirt domain · running');
    await expect(disks.getByTestId('on-demand-counts')).toBeVisible();
    await app.screenshot({ path: artifact('libvirt-connection') });

    // A checkpoint from the dialog: libvirt records it (virsh sees it), the timeline shows it.
    await createCheckpoint(app, 'lv-base');
    const listed = execFileSync('virsh', ['-q', '-c', LOCAL_URI, 'checkpoint-list', domain.uuid, '--name'], { encoding: 'utf8' });
    expect(listed.split('\n').map((l) => l.trim())).toContain('lv-base');
    await app.screenshot({ path: artifact('libvirt-timeline') });
    // A full push backup from the Back up dialog.
    await app.getByRole('button', { name: 'Back up' }).click();
    let dialog = app.getByRole('dialog', { name: /^Back up / });
    await dialog.getByRole('radio', { name: /^Push/ }).check();
    await dialog.getByRole('radio', { name: /Full/ }).check();
    await dialog.getByRole('button', { name: 'Start backup' }).click();
    await expect(dialog.getByRole('status')).toContainText(/Backup \S+ finished: vda full \d/, { timeout: 90_000 });
    await app.screenshot({ path: artifact('libvirt-backup-done') });
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect(band(app, 'vda').locator('.backup-mark.backup-full')).toHaveCount(1);

    // The guest writes 512 KiB, then an incremental pull backup copies just that.
    await guestWrite(lab.conn, domain, 'vda', { offset: 4 << 20, length: 512 << 10, pattern: 0xa5 });
    await guestFlush(lab.conn, domain, 'vda');
    await app.getByRole('button', { name: 'Back up' }).click();
    dialog = app.getByRole('dialog', { name: /^Back up / });
    await dialog.getByRole('radio', { name: /^Pull/ }).check();
    await expect(dialog.getByRole('radio', { name: /Incremental/ })).toBeChecked();
    await expect(dialog.getByRole('table', { name: 'Bytes to copy per disk' }).getByRole('row', { name: /vda/ })).toContainText('512 KiB');
    await dialog.getByRole('button', { name: 'Start pull backup' }).click();
    const pulled = dialog.getByRole('status').filter({ hasText: 'finished' });
    await expect(pulled).toContainText(/Pull backup \S+ finished: vda incremental 512 KiB/, { timeout: 90_000 });
    const pullId = /Pull backup (\S+) finished/.exec((await pulled.textContent()) ?? '')?.[1];
    await app.screenshot({ path: artifact('libvirt-backup-pull-done') });
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect(band(app, 'vda').locator('.backup-mark.backup-incremental')).toHaveCount(1);
    const mine = (await host.handlers['backup:list']()).backups.filter((b) => b.vm.uuid === domain.uuid);
    expect(mine.map((b) => b.id)).toContain(pullId);

    // Restore to a new image: the running domain is not touched.
    await app.getByRole('button', { name: 'Restore' }).click();
    dialog = app.getByRole('dialog', { name: /^Restore .* to (a new image|new images)/ });
    await expect(dialog.getByLabel('Backup point')).toHaveValue(pullId!);
    await expect(dialog.getByRole('radio', { name: /In place/ })).toBeDisabled();
    const target = await dialog.getByLabel('Path for vda').inputValue();
    expect(path.isAbsolute(target)).toBe(true);
    await dialog.getByRole('button', { name: 'Restore vda to a new image' }).click();
    await expect(dialog.getByRole('status')).toContainText(`vda restored to ${target}`, { timeout: 60_000 });
    await app.screenshot({ path: artifact('libvirt-restore-done') });
    await dialog.getByRole('button', { name: 'Close' }).click();

    // The restored image (full + incremental) holds what the domain's disk holds (nothing written since).
    await guestFlush(lab.conn, domain, 'vda');
    const out = execFileSync('qemu-img', ['compare', '-U', target, domain.disks[0]!.file], { encoding: 'utf8' });
    expect(out).toContain('Images are identical');
    // and not trivially: both guest writes are in it (1 MiB at 1 MiB, 512 KiB at 4 MiB)
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', target], { encoding: 'utf8' })) as { start: number; length: number; data: boolean }[];
    const dataAt = (off: number) => map.some((e) => e.data && e.start <= off && off < e.start + e.length);
    expect([dataAt(1 << 20), dataAt(4 << 20), dataAt(8 << 20)]).toEqual([true, true, false]);
    expect((await host.handlers['vm:list']()).find((v) => v.id === vmId)?.domainState).toBe('running');
    expect(consoleErrors).toEqual([]);
  });

  // libvirt domains get no vm:bitmaps events (counts are on demand): the store must take a new
  // checkpoint's bitmaps from vm:info on the load after it (it once kept the first load's).
  test('a checkpoint made on a running domain shows its bitmap, not "missing", without a reload', async ({ domain, app }) => {
    await addAndPick(app, domain);
    await createCheckpoint(app, 'lv-fresh');
    await clickCheckpoint(app, 'lv-fresh');
    const state = app.getByRole('row', { name: /^vda lv-fresh/ });
    await expect(state).toBeVisible();
    await expect(state).not.toContainText('missing', { timeout: 10_000 });
  });
});
