import { describe, expect, it } from 'vitest';
import type { Handlers, LabInfo, VmSummary } from '../shared/contract';
import { buildMenuTemplate, createShellActions, type MenuItemTemplate, type ShellUi } from './menu';

const lab = (running: boolean): LabInfo => ({ running, qmp: 'unix:/s', qmpSecondary: 'unix:/s2', disks: [] });
const vm = (kind: VmSummary['kind']): VmSummary => ({ id: kind, label: kind, endpoint: 'unix:/x', kind, connection: 'connected' });

function setup(answers: { endpoint?: { endpoint: string; label?: string } | null; dir?: string | null } = {}) {
  const calls: [string, unknown[]][] = [];
  const errors: [string, string][] = [];
  const chosen: string[] = [];
  let quit = 0;
  let demoStarted = 0;
  const handlers = new Proxy({} as Handlers, {
    get: (_t, channel: string) => async (...args: unknown[]) => {
      calls.push([channel, args]);
      if (channel === 'vm:add' && args[0] === 'unix:/nope') throw new Error('cannot connect to unix:/nope: ENOENT');
      if (channel === 'vm:add') return vm('endpoint');
      if (channel === 'lab:start') return lab(true);
      return undefined;
    },
  });
  const ui: ShellUi = {
    promptEndpoint: async () => answers.endpoint ?? null,
    chooseDirectory: async () => answers.dir ?? null,
    showError: (t, m) => errors.push([t, m]),
  };
  const actions = createShellActions({ handlers, ui, repositoryChosen: (d) => chosen.push(d), demoStarted: () => demoStarted++, quit: () => quit++ });
  return { actions, calls, errors, chosen, quits: () => quit, demoStarts: () => demoStarted };
}

function find(items: MenuItemTemplate[], label: string): MenuItemTemplate | undefined {
  for (const i of items) {
    if (i.label === label) return i;
    const sub = i.submenu && find(i.submenu, label);
    if (sub) return sub;
  }
  return undefined;
}

describe('shell actions', () => {
  it('Connect to a VM… adds the endpoint through the contract (validated), with its label', async () => {
    const s = setup({ endpoint: { endpoint: 'unix:/run/q.sock', label: 'web1' } });
    expect(await s.actions.connect()).toMatchObject({ kind: 'endpoint' });
    expect(s.calls).toEqual([['vm:add', ['unix:/run/q.sock', 'web1']]]);
  });
  it('a cancelled prompt does nothing', async () => {
    const s = setup({ endpoint: null });
    expect(await s.actions.connect()).toBeNull();
    expect(s.calls).toEqual([]);
  });
  it('a failed connect shows the engine error naming the endpoint', async () => {
    const s = setup({ endpoint: { endpoint: 'unix:/nope' } });
    expect(await s.actions.connect()).toBeNull();
    expect(s.errors).toEqual([['Cannot add the VM', 'unix:/nope: cannot connect to unix:/nope: ENOENT']]);
  });
  it('an endpoint longer than the contract allows is refused by validation before the engine', async () => {
    const s = setup({ endpoint: { endpoint: 'x'.repeat(2000) } });
    await s.actions.connect();
    expect(s.calls).toEqual([]);
    expect(s.errors[0]![1]).toMatch(/vm:add\[0\]: longer than 1024 characters/);
  });
  it('Start demo VM calls lab:start and reports that this process started it', async () => {
    const s = setup();
    expect(await s.actions.startDemo()).toMatchObject({ running: true });
    expect(s.calls).toEqual([['lab:start', []]]);
    expect(s.demoStarts()).toBe(1);
  });
  it('Open backup repository… hands the chosen directory on, and nothing when cancelled', async () => {
    const s = setup({ dir: '/srv/backups' });
    expect(await s.actions.openRepository()).toBe('/srv/backups');
    expect(s.chosen).toEqual(['/srv/backups']);
    const c = setup({ dir: null });
    expect(await c.actions.openRepository()).toBeNull();
    expect(c.chosen).toEqual([]);
  });
});

describe('menu template', () => {
  it('has the four File items wired to the actions, and dev tools only in development', async () => {
    const s = setup({ endpoint: { endpoint: 'unix:/a' }, dir: '/d' });
    const t = buildMenuTemplate(s.actions, { devTools: false });
    const labels = t[0]!.submenu!.filter((i) => i.label).map((i) => i.label);
    expect(labels).toEqual(['Connect to a VM…', 'Start demo VM', 'Open backup repository…', 'Quit']);
    find(t, 'Connect to a VM…')!.click!();
    find(t, 'Start demo VM')!.click!();
    find(t, 'Open backup repository…')!.click!();
    find(t, 'Quit')!.click!();
    await new Promise((r) => setTimeout(r, 0));
    expect(s.calls.map((c) => c[0]).sort()).toEqual(['lab:start', 'vm:add']);
    expect(s.chosen).toEqual(['/d']);
    expect(s.quits()).toBe(1);
    expect(JSON.stringify(t)).not.toContain('toggleDevTools');
    expect(JSON.stringify(buildMenuTemplate(s.actions, { devTools: true }))).toContain('toggleDevTools');
  });
});
