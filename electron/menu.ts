// The application menu and what its items do. Plain data and functions over injected UI
// primitives (electron/main.ts supplies dialogs and windows), so this file never imports
// Electron and is tested as is. Every engine call goes through dispatch(), like the renderer's.

import { dispatch, type Handlers, type LabInfo, type VmSummary } from '../shared/contract';
import { errorText } from './shell/ipc';

/** The subset of Electron's MenuItemConstructorOptions used here. */
export interface MenuItemTemplate {
  label?: string;
  role?: 'quit' | 'undo' | 'redo' | 'cut' | 'copy' | 'paste' | 'selectAll' | 'reload' | 'toggleDevTools' | 'resetZoom' | 'zoomIn' | 'zoomOut' | 'togglefullscreen' | 'minimize' | 'close' | 'editMenu' | 'about';
  type?: 'separator' | 'normal';
  accelerator?: string;
  enabled?: boolean;
  click?: () => void;
  submenu?: MenuItemTemplate[];
}

/** Dialogs the actions need; main.ts implements them with Electron. */
export interface ShellUi {
  /** Asks for a QMP endpoint; null when cancelled. */
  promptEndpoint(): Promise<{ endpoint: string; label?: string } | null>;
  /** Asks for a directory; null when cancelled. */
  chooseDirectory(title: string): Promise<string | null>;
  showError(title: string, message: string): void;
}

export interface ShellActions {
  connect(): Promise<VmSummary | null>;
  startDemo(): Promise<LabInfo | null>;
  openRepository(): Promise<string | null>;
  quit(): void;
}

export interface ShellActionDeps {
  handlers: Handlers;
  ui: ShellUi;
  /** Tells the window a repository was chosen (main forwards it as the 'shell:open-repository' event). */
  repositoryChosen(path: string): void;
  /** Called after this process started the demo VM (main stops it again on quit). */
  demoStarted?(): void;
  quit(): void;
}

export function createShellActions(deps: ShellActionDeps): ShellActions {
  const { handlers, ui } = deps;
  return {
    async connect() {
      const answer = await ui.promptEndpoint();
      if (!answer) return null;
      const args = answer.label ? [answer.endpoint, answer.label] : [answer.endpoint];
      try {
        return (await dispatch(handlers, 'vm:add', args)) as VmSummary;
      } catch (e) {
        ui.showError('Cannot add the VM', `${answer.endpoint}: ${errorText(e)}`);
        return null;
      }
    },
    async startDemo() {
      try {
        const lab = (await dispatch(handlers, 'lab:start', [])) as LabInfo;
        deps.demoStarted?.();
        return lab;
      } catch (e) {
        ui.showError('Cannot start the demo VM', errorText(e));
        return null;
      }
    },
    async openRepository() {
      const dir = await ui.chooseDirectory('Open backup repository');
      if (dir) deps.repositoryChosen(dir);
      return dir;
    },
    quit: () => deps.quit(),
  };
}

export function buildMenuTemplate(actions: ShellActions, opts: { devTools: boolean }): MenuItemTemplate[] {
  // Menu clicks cannot await; the actions report their own errors through ui.showError.
  const run = (fn: () => Promise<unknown>) => () => void fn();
  return [
    {
      label: 'File',
      submenu: [
        { label: 'Connect to a VM…', accelerator: 'CmdOrCtrl+Shift+O', click: run(actions.connect) },
        { label: 'Start demo VM', click: run(actions.startDemo) },
        { type: 'separator' },
        { label: 'Open backup repository…', accelerator: 'CmdOrCtrl+O', click: run(actions.openRepository) },
        { type: 'separator' },
        { label: 'Quit', accelerator: 'CmdOrCtrl+Q', click: () => actions.quit() },
      ],
    },
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
        ...(opts.devTools ? [{ type: 'separator' as const }, { role: 'reload' as const }, { role: 'toggleDevTools' as const }] : []),
      ],
    },
  ];
}
