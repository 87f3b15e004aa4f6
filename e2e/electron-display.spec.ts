// The virtual display that e2e/electron.spec.ts uses when the run has no DISPLAY: checked here
// with a headed Chromium, so it is known to work before an Electron binary ever shows up.
import { chromium } from '@playwright/test';
import { CHROMIUM_ARGS } from '../playwright.config';
import { startXvfb } from './xvfb';
import { expect, test } from './fixtures';

test('Xvfb gives a display a headed browser can draw on', async () => {
  const x = await startXvfb();
  try {
    expect(x.display).toMatch(/^:\d+$/);
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: false,
      args: CHROMIUM_ARGS.filter((a) => a !== '--headless'),
      env: { ...process.env, DISPLAY: x.display },
    });
    try {
      const page = await browser.newPage();
      await page.setContent('<p>on a virtual display</p>');
      expect(await page.evaluate(() => [window.screen.width, window.screen.height])).toEqual([1440, 900]);
    } finally {
      await browser.close();
    }
  } finally {
    await x.stop();
  }
});
