// Playwright fixtures for every e2e spec. Each test gets:
//   host          the web host over the real service, a fresh temp state dir and a REAL demo VM
//                 (QEMU), stopped and removed afterwards: { url (with the one-time code), origin,
//                 port, code, cookieName, stateDir, labDir, handlers }
//   app           a page opened on host.url, logged in the way a user does (the page exchanges the
//                 code for the session cookie), on the WebSocket transport; ready when the demo
//                 VM's disks are listed. The code is then spent: the page's context holds the cookie.
//   consoleErrors console errors, page errors and CSP violations seen on `page`; specs assert it
//                 stays empty
// Usage: import { test, expect } from './fixtures';

import { test as base, expect, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Handlers } from '../shared/contract';
import { stopLab } from '../electron/engine/lab/labvm';
import { startWebHost } from '../electron/host/web-host';

export interface E2eHost {
  /** http://127.0.0.1:PORT/#code=…: works for one login. */
  url: string;
  origin: string;
  port: number;
  code: string;
  cookieName: string;
  stateDir: string;
  labDir: string;
  /** The service's handlers, to arrange state without clicking through the UI. */
  handlers: Handlers;
}

export const ARTIFACTS = path.join(__dirname, 'artifacts');

/** Where a spec's screenshots go: e2e/artifacts/NAME.png. */
export function artifact(name: string): string {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name.endsWith('.png') ? name : `${name}.png`);
}

interface Fixtures {
  host: E2eHost;
  consoleErrors: string[];
  app: Page;
}

export const test = base.extend<Fixtures>({
  // eslint-disable-next-line no-empty-pattern
  host: async ({}, use) => {
    // Short temp path: QMP unix sockets live under it (108-byte limit).
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-e2e-'));
    const labDir = path.join(stateDir, 'lab');
    const host = await startWebHost({ stateDir, labDir, startDemo: true });
    try {
      await use({ url: host.url, origin: host.origin, port: host.port, code: host.code, cookieName: host.cookieName, stateDir, labDir, handlers: host.handlers });
    } finally {
      await host.close();
      await stopLab(labDir); // in case the host did not get to it
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  },

  consoleErrors: async ({ page }, use) => {
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
    });
    await use(errors);
  },

  app: async ({ page, host, consoleErrors }, use) => {
    void consoleErrors; // attach the listeners before the page loads
    await page.goto(host.url);
    await expect(page.getByRole('region', { name: 'Disks' }).getByText('vda', { exact: true })).toBeVisible();
    await use(page);
  },
});

export { expect };
