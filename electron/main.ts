// Electron main: wiring only. The engine (the host service) runs here; the renderer is served
// from app://tidemark (never file://) and reaches the engine only through window.api → one IPC
// channel → dispatch(). The security rules live in shell/security.ts; this file applies them.

import {
  app, BrowserWindow, dialog, ipcMain, Menu, protocol, session, shell,
  type IpcMainInvokeEvent, type MenuItemConstructorOptions, type WebContents,
} from 'electron';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { EVENT_NAMES, dispatch, type EventName, type Handlers } from '../shared/contract';
import { resolveStateDir } from './engine/statedir';
import { createService } from './host/service';
import { contentTypeFor, resolveStaticPath } from './host/static-files';
import { shouldStartDemo } from './host/first-run';
import { buildMenuTemplate, createShellActions, type ShellUi } from './menu';
import { CONNECT_PROMPT_PATH, connectPromptPage, parseConnectSubmit } from './shell/connect-prompt';
import { INVOKE_CHANNEL, errorText, eventChannel, type InvokeReply } from './shell/ipc';
import {
  APP_CSP, APP_ENTRY_URL, APP_HOST, APP_ORIGIN, APP_SCHEME, SECURE_WEB_PREFERENCES, isSafeExternalUrl, isTrustedSenderUrl,
} from './shell/security';

// out/main/main.js → out/renderer, out/preload (electron-vite layout).
const RENDERER_DIR = path.join(__dirname, '../renderer');
const PRELOAD = path.join(__dirname, '../preload/preload.js');

// Before 'ready': app:// behaves like https (standard, secure origin) (#18). codeCache: Chromium keeps
// V8's compiled code of the renderer bundle between starts, as it does for https (Electron ≥ 28.1;
// standard schemes only). The app's first render spends ~60 ms evaluating its bundle (bench/README.md).
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } }]);

function textResponse(status: number, body: string): Response {
  return new Response(`${body}\n`, { status, headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Security-Policy': APP_CSP } });
}

/** Serves app://tidemark/… from `rendererDir`, refusing anything outside it (#18). */
export function createAppRequestHandler(rendererDir: string): (request: { url: string }) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    if (url.protocol !== `${APP_SCHEME}:` || url.host !== APP_HOST) return textResponse(404, 'unknown host');
    if (url.pathname === CONNECT_PROMPT_PATH) {
      const page = connectPromptPage();
      return new Response(page.html, { headers: { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': page.csp } });
    }
    const found = resolveStaticPath(rendererDir, url.pathname);
    if ('status' in found) return textResponse(found.status, found.reason);
    const body = await fs.readFile(found.file);
    return new Response(body, {
      headers: { 'Content-Type': contentTypeFor(found.file), 'Content-Security-Policy': APP_CSP, 'X-Content-Type-Options': 'nosniff' },
    });
  };
}

/** Answers IPC only from the top frame of our own page (#17), after validating the payload. */
export async function handleInvoke(handlers: Handlers, event: IpcMainInvokeEvent, channel: unknown, args: unknown): Promise<InvokeReply> {
  const frame = event.senderFrame;
  if (!frame || frame.parent !== null || !isTrustedSenderUrl(frame.url)) {
    throw new Error(`untrusted IPC sender ${JSON.stringify(frame?.url ?? null)}`);
  }
  try {
    return { ok: true, result: await dispatch(handlers, channel, args) };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

/** Every web contents (windows, and any webview someone tries to add) gets the same limits. */
function hardenWebContents(contents: WebContents): void {
  contents.on('will-attach-webview', (event) => event.preventDefault()); // #11, #12
  contents.on('will-navigate', (event) => event.preventDefault()); // #13
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    // #14: never a new window; documentation links open in the user's browser (#15).
    if (isSafeExternalUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
}

function createMainWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1360,
    height: 860,
    minWidth: 900,
    minHeight: 560,
    title: 'Tidemark',
    show: false,
    backgroundColor: '#1e1f22',
    webPreferences: { ...SECURE_WEB_PREFERENCES, preload: PRELOAD },
  });
  win.once('ready-to-show', () => win.show());
  void win.loadURL(APP_ENTRY_URL);
  return win;
}

/** The "Connect to a VM…" dialog: a script-less modal page whose form submission we intercept. */
function promptEndpoint(parent: BrowserWindow | undefined): Promise<{ endpoint: string; label?: string } | null> {
  return new Promise((resolve) => {
    const win = new BrowserWindow({
      ...(parent ? { parent, modal: true } : {}),
      width: 520,
      height: 270,
      resizable: false,
      minimizable: false,
      maximizable: false,
      autoHideMenuBar: true,
      title: 'Connect to a VM',
      show: false,
      webPreferences: { ...SECURE_WEB_PREFERENCES, javascript: false },
    });
    let answered = false;
    win.webContents.on('will-navigate', (event) => {
      event.preventDefault();
      const answer = parseConnectSubmit(event.url);
      if (!answer) return;
      answered = true;
      resolve(answer.action === 'connect' ? { endpoint: answer.endpoint, ...(answer.label ? { label: answer.label } : {}) } : null);
      win.close();
    });
    win.once('ready-to-show', () => win.show());
    win.on('closed', () => {
      if (!answered) resolve(null);
    });
    void win.loadURL(`${APP_ORIGIN}${CONNECT_PROMPT_PATH}`);
  });
}

/** `--state-dir DIR` or `--state-dir=DIR` from the command line. */
export function stateDirArg(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state-dir') return argv[i + 1];
    if (a.startsWith('--state-dir=')) return a.slice('--state-dir='.length);
  }
  return undefined;
}

export async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  app.on('web-contents-created', (_event, contents) => hardenWebContents(contents));
  await app.whenReady();

  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false)); // #5
  session.defaultSession.setPermissionCheckHandler(() => false);
  protocol.handle(APP_SCHEME, createAppRequestHandler(RENDERER_DIR));

  const service = createService({ stateDir: resolveStateDir(stateDirArg(process.argv)) });
  const { handlers } = service;
  ipcMain.handle(INVOKE_CHANNEL, (event, channel: unknown, args: unknown) => handleInvoke(handlers, event, channel, args));

  let win: BrowserWindow | undefined = createMainWindow();
  win.on('closed', () => (win = undefined));
  const send = (event: EventName, payload: unknown) => {
    if (win && !win.isDestroyed()) win.webContents.send(eventChannel(event), payload);
  };
  const unsubscribe = EVENT_NAMES.map((name) => service.events.on(name, (payload) => send(name, payload)));

  let startedDemo = false;
  const ui: ShellUi = {
    promptEndpoint: () => promptEndpoint(win),
    async chooseDirectory(title) {
      const options = { title, properties: ['openDirectory', 'createDirectory'] as ('openDirectory' | 'createDirectory')[] };
      const r = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0]!;
    },
    showError: (title, message) => dialog.showErrorBox(title, message),
  };
  const actions = createShellActions({
    handlers,
    ui,
    repositoryChosen: (dir) => send('shell:open-repository', { path: dir }),
    demoStarted: () => (startedDemo = true),
    quit: () => app.quit(),
  });
  Menu.setApplicationMenu(Menu.buildFromTemplate(buildMenuTemplate(actions, { devTools: !app.isPackaged }) as MenuItemConstructorOptions[]));

  app.on('second-instance', () => {
    if (!win) return;
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('window-all-closed', () => app.quit());

  // Quit waits for a clean shutdown: stop the demo VM we started (QMP quit stores its bitmaps), close QMP.
  let shutDown = false;
  app.on('before-quit', (event) => {
    if (shutDown) return;
    event.preventDefault();
    void (async () => {
      for (const off of unsubscribe) off();
      if (startedDemo) await handlers['lab:stop']().catch(() => undefined);
      await service.close().catch(() => undefined);
      shutDown = true;
      app.quit();
    })();
  });

  // First run: nothing configured → the demo VM, so there is something to look at.
  try {
    const [vms, lab] = await Promise.all([handlers['vm:list'](), handlers['lab:status']()]);
    if (shouldStartDemo(vms, lab)) await actions.startDemo();
  } catch (e) {
    dialog.showErrorBox('Tidemark', `Cannot read the configuration: ${errorText(e)}`);
  }
}

main().catch((e: unknown) => {
  dialog.showErrorBox('Tidemark cannot start', errorText(e));
  app.exit(1);
});
