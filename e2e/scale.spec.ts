// The timeline in daily use, against a REAL demo VM: forty checkpoints in the independent layout
// (every bitmap records), a 300-character name, a burst after an idle stretch — at 1440×900 and
// 1024×700, light and dark. Screenshots of each state go to e2e/artifacts/.
import { artifact, expect, test } from './fixtures';
import { band, clickCheckpoint, writeThroughContract } from './ui';

const LONG = `long-${'x'.repeat(280)}-end-of-a-300-character-name`.slice(0, 300);

test('forty checkpoints: the newest and the selected bitmaps stay drawn, the oldest fold into a group that opens; the cost note; no overprinting', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  for (let i = 1; i <= 39; i++) {
    await host.handlers['checkpoint:create'](vm!.id, { name: `cp-${String(i).padStart(2, '0')}`, layout: 'independent' });
    if (i % 10 === 0) await writeThroughContract(host, vm!.id, 'vda', 4);
  }
  await host.handlers['checkpoint:create'](vm!.id, { name: LONG });
  await writeThroughContract(host, vm!.id, 'vda', 8);
  // Every checkpoint is listed (the tree draws the ones with room; arrow keys reach all of them). The
  // list renders the rows in view (issue 11) and tells the full count; the newest row is first.
  const list = app.getByRole('table', { name: 'All checkpoints' });
  await expect(list).toHaveAttribute('aria-rowcount', '41');
  await expect(list.getByRole('row').nth(1)).toHaveAttribute('aria-rowindex', '2');
  await expect(list.getByRole('row').nth(1).getByRole('button')).toHaveAttribute('title', LONG);

  const vda = band(app, 'vda');
  // The current bitmap (the long name) is drawn, the oldest are folded into one group row.
  await expect(vda.locator(`.span[data-checkpoint="${LONG}"]`)).toHaveCount(1);
  const group = vda.getByRole('button', { name: /older bitmaps on vda/ });
  await expect(group).toHaveAttribute('aria-expanded', 'false');
  await expect(group).toHaveAccessibleName(/^35 older bitmaps on vda \(recording\)/);
  // The note: forty bitmaps each take every write, and what they cost.
  await expect(vda.locator('.band-warn')).toContainText('⚠ 40 bitmaps record every write to vda');
  await expect(vda.locator('.band-warn')).toContainText('80.0 KiB of bitmap memory'); // 40 × 1 GiB / 64 KiB / 8
  await app.screenshot({ path: artifact('scale-40-independent') });

  // Selecting an old checkpoint draws its bitmap (it was folded) and measures from it. Selected from
  // the list: under load the creation times bunch up, and the tree may leave cp-03's node undrawn
  // (nodes closer than 8 px are skipped; arrow keys and the list still reach them).
  // cp-03 is near the end of the list: scroll to it as an admin would, with the wheel.
  await list.hover();
  await app.mouse.wheel(0, 2000);
  await expect(list.getByRole('button', { name: 'cp-01', exact: true }).locator('xpath=ancestor::tr')).toHaveAttribute('aria-rowindex', '41');
  await list.getByRole('button', { name: 'cp-03', exact: true }).click();
  await expect(vda.locator('.span[data-checkpoint="cp-03"]')).toHaveCount(1);
  await expect(vda.locator('.span[data-checkpoint="cp-03"]')).toHaveClass(/span-selected/);
  // Its figure is its own bitmap's live count: exact, as the engine says.
  const changes = await host.handlers['checkpoint:changes'](vm!.id, 'cp-03');
  const exact = changes.disks.find((d) => d.disk === 'vda')!.bytes;
  await expect(vda.locator('.area-end')).toHaveAttribute('data-kind', 'exact');
  await expect(vda.locator('.area-end')).toHaveText(new RegExp(`^${(exact / 2 ** 20).toFixed(1).replace('.', '\\.')} MiB of 1\\.0 GiB`));

  // The group opens (keyboard) and folds again.
  await group.focus();
  await app.keyboard.press('Enter');
  await expect(group).toHaveAttribute('aria-expanded', 'true');
  await expect(vda.locator('.span[data-state="recording"]')).toHaveCount(40);
  await app.screenshot({ path: artifact('scale-40-group-open') });
  await group.click();
  await expect(group).toHaveAttribute('aria-expanded', 'false');

  // No two labels on one row overprint (tree labels, backup labels, span labels).
  const overlaps = await app.evaluate(() => {
    const rows = new Map<string, DOMRect[]>();
    for (const t of document.querySelectorAll<SVGTextElement>('.node-label, .backup-label, .now-label')) {
      const r = t.getBoundingClientRect();
      const key = `${Math.round(r.top / 4)}`;
      rows.set(key, [...(rows.get(key) ?? []), r]);
    }
    let n = 0;
    for (const list of rows.values()) for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) {
      const a = list[i]!;
      const b = list[j]!;
      if (a.left < b.right - 1 && b.left < a.right - 1) n++;
    }
    return n;
  });
  expect(overlaps).toBe(0);
  expect(consoleErrors).toEqual([]);
});

test('a burst after hours of idle stays readable; 1024×700 with the VMs panel folded, light and dark; a long name never widens the page', async ({ app, host, consoleErrors }) => {
  const [vm] = await host.handlers['vm:list']();
  // History from earlier today (recorded, as libvirt's redefine does: metadata without bitmaps).
  const now = Date.now();
  for (const [i, hoursAgo] of [[1, 6], [2, 4], [3, 3]] as const) {
    const xml = `<domaincheckpoint><name>night-${i}</name>${i > 1 ? `<parent><name>night-${i - 1}</name></parent>` : ''}` +
      `<creationTime>${Math.floor((now - hoursAgo * 3600_000) / 1000)}</creationTime><disks><disk name='vda' checkpoint='no'/><disk name='vdb' checkpoint='no'/><disk name='vdc' checkpoint='no'/></disks></domaincheckpoint>`;
    await host.handlers['checkpoint:create-xml'](vm!.id, xml, { redefine: true });
  }
  // Then a burst of thirty, 300 ms or more apart. Creating a checkpoint now takes far less than that, and
  // thirty back-to-back creates spanned ~2 s: too little of the axis for the labels polled below (a
  // clean-clone run drew 5 and failed), so the burst keeps the spacing a burst of real creates has.
  for (let i = 1; i <= 30; i++) {
    const started = Date.now();
    await host.handlers['checkpoint:create'](vm!.id, { name: `q-${String(i).padStart(2, '0')}`, layout: 'independent' });
    await new Promise((r) => setTimeout(r, Math.max(0, 300 - (Date.now() - started))));
  }
  await host.handlers['checkpoint:create'](vm!.id, { name: LONG });
  await expect(app.getByRole('table', { name: 'All checkpoints' })).toHaveAttribute('aria-rowcount', '35');

  // Compressed: the hours become short breaks that say how long they were; the burst gets the width.
  const svg = app.locator('svg.timeline-svg');
  await expect(app.getByRole('button', { name: 'Compress idle time' })).toHaveAttribute('aria-pressed', 'true');
  await expect(svg.locator('.idle-break').first()).toBeVisible();
  await expect(svg.locator('.idle-label').first()).toHaveText(/^≈ (1|2|3) h/);
  const burstWidth = async () => app.evaluate(() => {
    const xs = [...document.querySelectorAll('[role="treeitem"][data-name^="q-"] circle.node')].map((c) => Number(c.getAttribute('cx')));
    return Math.max(...xs) - Math.min(...xs);
  });
  const compressed = await burstWidth();
  // Polled: the labels are placed in passes after the nodes are drawn.
  await expect.poll(() => svg.locator('.node-label').count()).toBeGreaterThan(5);
  await app.screenshot({ path: artifact('scale-burst-compressed') });
  await app.getByRole('button', { name: 'Compress idle time' }).click();
  await expect(app.getByRole('button', { name: 'Compress idle time' })).toHaveAttribute('aria-pressed', 'false');
  const linear = await burstWidth();
  expect(compressed).toBeGreaterThan(5 * linear);
  await app.screenshot({ path: artifact('scale-burst-linear') });
  await app.getByRole('button', { name: 'Compress idle time' }).click();

  // The view follows NOW after a zoom, and stops following once NOW is panned off screen.
  await app.getByRole('button', { name: 'Zoom in' }).click();
  await expect(svg).toHaveAttribute('data-view-mode', 'follow');
  for (let i = 0; i < 6; i++) await app.getByRole('button', { name: 'Pan earlier' }).click();
  await expect(svg).toHaveAttribute('data-view-mode', 'free');
  await expect(app.getByRole('button', { name: 'Follow now' })).toHaveAttribute('aria-pressed', 'false');
  await app.getByRole('button', { name: 'Follow now' }).click();
  await expect(svg).toHaveAttribute('data-view-mode', 'follow');
  await app.getByRole('button', { name: 'Fit all' }).click();

  // 1024×700: the VMs panel folds away; nothing runs off the page, the long name included.
  await app.setViewportSize({ width: 1024, height: 700 });
  await app.getByRole('button', { name: /VMs/ }).click();
  await expect(app.getByRole('navigation', { name: 'Virtual machines' })).toHaveCount(0);
  await clickCheckpoint(app, new RegExp(`^${LONG.slice(0, 20)}`));
  const overflow = () => app.evaluate(() => {
    const out: string[] = [];
    const W = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth > W) out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${W}`);
    for (const sel of ['.timeline-toolbar button', '.actionbar button', 'section[aria-label="Jobs"]', '.now-label', '[role="dialog"] button']) {
      for (const el of document.querySelectorAll(sel)) {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && (r.right > W + 1 || r.left < -1)) out.push(`${sel} runs off: ${Math.round(r.left)}..${Math.round(r.right)}`);
      }
    }
    return out;
  });
  expect(await overflow()).toEqual([]);
  await app.screenshot({ path: artifact('scale-1024-long-name') });
  // The delete dialog of the long name keeps its buttons in the window.
  await app.keyboard.press('Delete');
  const dialog = app.getByRole('dialog', { name: /^Delete checkpoint long-x/ });
  await expect(dialog.getByRole('button', { name: 'Cancel' })).toBeFocused();
  expect(await overflow()).toEqual([]);
  await app.screenshot({ path: artifact('scale-1024-delete-long-name') });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  // Focus goes back to the checkpoint (the tree), not to <body>.
  await expect(app.getByRole('treeitem', { name: new RegExp(`^${LONG.slice(0, 20)}`) })).toBeFocused();

  await app.emulateMedia({ colorScheme: 'dark' });
  await app.screenshot({ path: artifact('scale-1024-dark') });
  await app.setViewportSize({ width: 1440, height: 900 });
  await app.screenshot({ path: artifact('scale-burst-dark') });
  expect(consoleErrors).toEqual([]);
});
