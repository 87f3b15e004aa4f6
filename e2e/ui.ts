// Page actions the UI specs share: they drive the app the way an admin does, through its dialogs.
import type { Locator, Page } from '@playwright/test';
import { expect, type E2eHost } from './fixtures';

/** Creates a checkpoint from the dialog (choosing the layout at the first one) and waits for it in the tree. */
export async function createCheckpoint(page: Page, name: string, layout?: 'Independent' | 'Chained'): Promise<void> {
  await page.getByRole('toolbar', { name: 'Actions' }).getByRole('button', { name: 'Create checkpoint' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name').fill(name);
  if (layout) await dialog.getByRole('radio', { name: new RegExp(layout) }).check();
  await dialog.getByRole('button', { name: 'Create checkpoint' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('treeitem', { name: new RegExp(`^${name},`) })).toBeVisible();
}

/** Runs the write simulator on `disk` from its dialog and waits until the job has succeeded. */
export async function simulateWrites(
  page: Page, disk: string, mib: number,
  options: { rate?: number; pattern?: 'sequential' | 'random' } = {},
): Promise<void> {
  const pattern = options.pattern ?? 'sequential';
  const jobs = page.getByRole('region', { name: 'Jobs' }).getByRole('article').filter({ hasText: `Write ${mib} MiB` });
  const before = await jobs.count();
  await page.getByRole('button', { name: 'Simulate writes' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Disk', { exact: true }).selectOption(disk);
  await dialog.getByRole('radio', { name: new RegExp(`^${pattern}`, 'i') }).check();
  await dialog.getByLabel('Amount (MiB)').fill(String(mib));
  await dialog.getByLabel('Rate (MiB/s)').fill(String(options.rate ?? 32));
  await dialog.getByRole('button', { name: 'Start writing' }).click();
  await expect(dialog).toBeHidden();
  await expect(jobs).toHaveCount(before + 1);
  await expect(jobs.first()).toContainText('succeeded', { timeout: 30_000 });
}

/** A disk's band (its lanes) on the timeline. */
export const band = (page: Page, disk: string) => page.locator(`g.band[data-disk="${disk}"]`);

/** Runs the write simulator through the contract (no dialog) and waits until its job has ended. */
export async function writeThroughContract(host: E2eHost, vmId: string, disk: string, mib: number, pattern: 'sequential' | 'random' = 'random'): Promise<void> {
  const job = await host.handlers['lab:write'](vmId, { disk, pattern, mib, rateMibPerS: 256 });
  await expect.poll(async () => (await host.handlers['job:list']()).find((j) => j.id === job.id)?.state, { timeout: 30_000 }).toBe('succeeded');
}

/** Clicks a checkpoint's node in the tree (its circle: labels live in their own layer). */
export async function clickCheckpoint(page: Page, name: string | RegExp): Promise<void> {
  const re = typeof name === 'string' ? new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')},`) : name;
  await page.getByRole('treeitem', { name: re }).locator('circle.node').click();
}

/**
 * True when the band's brackets have one that ends at this backup marker's x (drawn back to its base).
 * The marker's x and the brackets are read in one pass in the page: the time axis moves with NOW, so
 * two separate reads can see two different scales. Callers poll it (a render may be in flight).
 */
export async function bracketTo(mark: Locator): Promise<boolean> {
  return mark.evaluate((el) => {
    const x = Number(el.getAttribute('data-x'));
    const paths = el.closest('g.band')?.querySelectorAll('path.backup-bracket:not(.backup-bracket-failed)') ?? [];
    return [...paths].some((p) => [...(p.getAttribute('d') ?? '').matchAll(/H(-?[\d.]+)/g)].some((m) => Math.abs(Number(m[1]) - x) < 0.2));
  });
}

export interface WordsWhileMoving {
  /** The plot's texts shown before the wheel, by class. */
  before: string[];
  /** Whether the wheel put the timeline in its moving (draft) state. */
  moving: boolean;
  /** The plot's texts shown while it moves. */
  during: string[];
  /** Shown once it settled (no draft left). */
  after: string[];
}

/**
 * One wheel step on the timeline and the plot's texts shown (computed display) before, while the
 * view moves and once it settled, all read in one pass in the page (the moving state lasts 180 ms).
 * Then "Fit all", so the caller finds the view as a fresh page draws it.
 */
export async function wordsWhileMoving(page: Page): Promise<WordsWhileMoving> {
  const seen = await page.evaluate(async () => {
    const svg = document.querySelector('svg.timeline-svg') as SVGSVGElement;
    const shown = () => [...svg.querySelectorAll('.timeline-plot text')].filter((t) => getComputedStyle(t).display !== 'none').map((t) => t.getAttribute('class') ?? '');
    const before = shown();
    const r = svg.getBoundingClientRect();
    svg.dispatchEvent(new WheelEvent('wheel', { deltaY: -60, bubbles: true, cancelable: true, clientX: r.left + r.width / 2, clientY: r.top + 60 }));
    await new Promise((f) => requestAnimationFrame(() => requestAnimationFrame(f)));
    const moving = svg.hasAttribute('data-draft');
    const during = shown();
    for (let i = 0; i < 100 && svg.hasAttribute('data-draft'); i++) await new Promise((f) => setTimeout(f, 50));
    return { before, moving, during, after: svg.hasAttribute('data-draft') ? [] : shown() };
  });
  await page.getByRole('button', { name: 'Fit all' }).click();
  return seen;
}
