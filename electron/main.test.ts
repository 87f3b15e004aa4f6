import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// Electron is mocked (the real package downloads its binary); so is the service, whose real
// wiring is covered by the web host's integration test. What is asserted here is main.ts's wiring
// of each security checklist item (numbers from the Electron security tutorial).

type Listener = (...args: unknown[]) => unknown;
const m = vi.hoisted(() => {
  const order: string[] = [];
  const appListeners = new Map<string, Listener[]>();
  const windows: { options: Record<string, unknown>; url?: string; listeners: Map<string, Listener[]>; contents: { sent: unknown[][]; listeners: Map<string, Listener[]> } }[] = [];
  const on = (map: Map<string, Listener[]>) => (ev: string, fn: Listener) => {
    map.set(ev, [...(map.get(ev) ?? []), fn]);
  };
  class BrowserWindow {
    rec: (typeof windows)[number];
    webContents: Record<string, unknown>;
    constructor(options: Record<string, unknown>) {
      const contents = { sent: [] as unknown[][], listeners: new Map<string, Listener[]>() };
      this.rec = { options, listeners: new Map(), contents };
      windows.push(this.rec);
      this.webContents = {
        send: (...a: unknown[]) => contents.sent.push(a),
        on: on(contents.listeners),
        setWindowOpenHandler: vi.fn(),
      };
    }
    loadURL(url: string) {
      this.rec.url = url;
      return Promise.resolve();
    }
    on(ev: string, fn: Listener) {
      on(this.rec.listeners)(ev, fn);
      return this;
    }
    once(ev: string, fn: Listener) {
      return this.on(ev, fn);
    }
    isDestroyed() {
      return false;
    }
    isMinimized() {
      return false;
    }
    restore() {}
    focus() {}
    close() {}
  }
  let ready!: () => void;
  const whenReady = new Promise<void>((r) => (ready = r));
  return {
    order, appListeners, windows, ready,
    electron: {
      app: {
        whenReady: () => {
          order.push('whenReady');
          return whenReady;
        },
        on: on(appListeners),
        requestSingleInstanceLock: () => true,
        isPackaged: false,
        quit: vi.fn(),
        exit: vi.fn(),
      },
      BrowserWindow,
      ipcMain: { handle: vi.fn() },
      protocol: {
        registerSchemesAsPrivileged: vi.fn(() => order.push('registerSchemesAsPrivileged')),
        handle: vi.fn(),
      },
      session: { defaultSession: { setPermissionRequestHandler: vi.fn(), setPermissionCheckHandler: vi.fn() } },
      shell: { openExternal: vi.fn(async () => undefined) },
      dialog: { showErrorBox: vi.fn(), showOpenDialog: vi.fn() },
      Menu: { buildFromTemplate: vi.fn((t: unknown) => t), setApplicationMenu: vi.fn() },
    },
  };
});
vi.mock('electron', () => m.electron);

const svc = vi.hoisted(() => {
  const calls: [string, unknown[]][] = [];
  const listeners = new Map<string, ((p: unknown) => void)[]>();
  const handlers = new Proxy({} as Record<string, (...a: unknown[]) => Promise<unknown>>, {
    get: (_t, channel: string) => async (...args: unknown[]) => {
      calls.push([channel, args]);
      if (channel === 'vm:list') return [];
      if (channel === 'lab:status') return { running: false, qmp: 'unix:/q', qmpSecondary: 'unix:/q2', disks: [] };
      if (channel === 'lab:start' || channel === 'lab:stop') return { running: channel === 'lab:start', qmp: 'unix:/q', qmpSecondary: 'unix:/q2', disks: [] };
      return { channel, args };
    },
  });
  const close = vi.fn(async () => undefined);
  const createService = vi.fn(() => ({
    handlers,
    events: {
      on: (ev: string, fn: (p: unknown) => void) => {
        listeners.set(ev, [...(listeners.get(ev) ?? []), fn]);
        return () => listeners.set(ev, (listeners.get(ev) ?? []).filter((f) => f !== fn));
      },
    },
    close,
  }));
  return { calls, listeners, createService, close };
});
vi.mock('./host/service', () => ({ createService: svc.createService }));

let mainModule: typeof import('./main');
const flush = () => new Promise((r) => setTimeout(r, 0));

beforeAll(async () => {
  mainModule = await import('./main');
  m.ready();
  for (let i = 0; i < 5; i++) await flush();
});

const mainWindow = () => m.windows[0]!;
function fakeEvent(url: string | null, parent: unknown = null) {
  return { senderFrame: url === null ? null : { url, parent } } as never;
}
const invokeHandler = () => m.electron.ipcMain.handle.mock.calls[0]![1] as (e: unknown, c: unknown, a: unknown) => Promise<unknown>;

describe('startup', () => {
  it('registers app:// as a privileged standard scheme before the app is ready (#18)', () => {
    expect(m.electron.protocol.registerSchemesAsPrivileged).toHaveBeenCalledWith([
      { scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } },
    ]);
    expect(m.order.indexOf('registerSchemesAsPrivileged')).toBeLessThan(m.order.indexOf('whenReady'));
    expect(m.electron.protocol.handle).toHaveBeenCalledWith('app', expect.any(Function));
  });

  it('loads the renderer from app://tidemark, never file:// or http (#1, #18)', () => {
    expect(m.windows).toHaveLength(1);
    expect(mainWindow().url).toBe('app://tidemark/index.html');
  });

  it('creates the window isolated, sandboxed, without Node, with web security (#2, #3, #4, #6, #8, #9, #10)', () => {
    const prefs = mainWindow().options.webPreferences as Record<string, unknown>;
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, nodeIntegrationInSubFrames: false, webviewTag: false });
    expect(prefs.allowRunningInsecureContent).toBeFalsy();
    expect(prefs.experimentalFeatures).toBeFalsy();
    expect(prefs).not.toHaveProperty('enableBlinkFeatures');
    expect(String(prefs.preload)).toMatch(/[/\\]preload[/\\]preload\.js$/);
  });

  it('denies every permission request and check (#5)', () => {
    const request = m.electron.session.defaultSession.setPermissionRequestHandler.mock.calls[0]![0] as (wc: unknown, p: string, cb: (ok: boolean) => void) => void;
    for (const permission of ['media', 'notifications', 'geolocation', 'openExternal', 'clipboard-read']) {
      const cb = vi.fn();
      request({}, permission, cb);
      expect(cb).toHaveBeenCalledWith(false);
    }
    const check = m.electron.session.defaultSession.setPermissionCheckHandler.mock.calls[0]![0] as (...a: unknown[]) => boolean;
    expect(check({}, 'media', 'app://tidemark')).toBe(false);
  });

  it('starts the demo VM when nothing is configured', () => {
    expect(svc.calls.map((c) => c[0])).toContain('lab:start');
  });

  it('installs the menu with the shell actions', () => {
    const template = m.electron.Menu.setApplicationMenu.mock.calls[0]![0] as { label?: string; submenu?: { label?: string }[] }[];
    const file = template.find((t) => t.label === 'File')!;
    expect(file.submenu!.map((i) => i.label).filter(Boolean)).toEqual(['Connect to a VM…', 'Start demo VM', 'Open backup repository…', 'Quit']);
  });
});

describe('every web contents is limited', () => {
  function harden() {
    const listeners = new Map<string, Listener[]>();
    let openHandler: ((d: { url: string }) => { action: string }) | undefined;
    const contents = {
      on: (ev: string, fn: Listener) => listeners.set(ev, [...(listeners.get(ev) ?? []), fn]),
      setWindowOpenHandler: (fn: typeof openHandler) => (openHandler = fn),
    };
    for (const fn of m.appListeners.get('web-contents-created')!) fn({}, contents);
    const fire = (ev: string, ...args: unknown[]) => {
      const event = { preventDefault: vi.fn() };
      for (const fn of listeners.get(ev) ?? []) fn(event, ...args);
      return event.preventDefault;
    };
    return { fire, open: (url: string) => openHandler!({ url }) };
  }

  it('refuses navigation and redirects (#13)', () => {
    const h = harden();
    expect(h.fire('will-navigate', 'https://evil.example/')).toHaveBeenCalled();
    expect(h.fire('will-navigate', 'app://tidemark/index.html')).toHaveBeenCalled();
    expect(h.fire('will-redirect', 'https://evil.example/')).toHaveBeenCalled();
  });

  it('refuses to attach webviews (#11, #12)', () => {
    expect(harden().fire('will-attach-webview', {}, {})).toHaveBeenCalled();
  });

  it('never opens a window; only allow-listed https links go to the browser (#14, #15)', () => {
    const h = harden();
    m.electron.shell.openExternal.mockClear();
    expect(h.open('https://evil.example/')).toEqual({ action: 'deny' });
    expect(h.open('file:///etc/passwd')).toEqual({ action: 'deny' });
    expect(m.electron.shell.openExternal).not.toHaveBeenCalled();
    expect(h.open('https://libvirt.org/formatcheckpoint.html')).toEqual({ action: 'deny' });
    expect(m.electron.shell.openExternal).toHaveBeenCalledWith('https://libvirt.org/formatcheckpoint.html');
  });
});

describe('IPC (#17)', () => {
  it('is one handle on tidemark:invoke', () => {
    expect(m.electron.ipcMain.handle).toHaveBeenCalledTimes(1);
    expect(m.electron.ipcMain.handle.mock.calls[0]![0]).toBe('tidemark:invoke');
  });

  it('answers the top frame of app://tidemark through dispatch', async () => {
    svc.calls.length = 0;
    const r = await invokeHandler()(fakeEvent('app://tidemark/index.html'), 'checkpoint:get', ['vm-1', 'c1']);
    expect(r).toEqual({ ok: true, result: { channel: 'checkpoint:get', args: ['vm-1', 'c1'] } });
    expect(svc.calls).toEqual([['checkpoint:get', ['vm-1', 'c1']]]);
  });

  it.each([
    ['https://evil.example/', null],
    ['file:///work/main/out/renderer/index.html', null],
    ['app://evil/index.html', null],
    ['app://tidemark/index.html', { url: 'app://tidemark/index.html' }], // a sub-frame
    [null, null], // frame gone
  ])('refuses a sender at %j (parent %j)', async (url, parent) => {
    svc.calls.length = 0;
    await expect(invokeHandler()(fakeEvent(url, parent), 'vm:list', [])).rejects.toThrow(/untrusted IPC sender/);
    expect(svc.calls).toEqual([]);
  });

  it('validates the payload: unknown channels and wrong shapes never reach the engine', async () => {
    svc.calls.length = 0;
    const ok = fakeEvent('app://tidemark/index.html');
    expect(await invokeHandler()(ok, 'fs:readFile', ['/etc/passwd'])).toEqual({ ok: false, error: 'unknown channel "fs:readFile"' });
    expect(await invokeHandler()(ok, 'checkpoint:create', ['vm'])).toEqual({ ok: false, error: 'checkpoint:create[1]: expected an object, got nothing' });
    expect(await invokeHandler()(ok, 'vm:info', 'not-an-array')).toEqual({ ok: false, error: 'vm:info: expected an argument list, got string "not-an-array"' });
    expect(svc.calls).toEqual([]);
  });
});

describe('events and shutdown', () => {
  it('forwards service events to the window on their own channel', () => {
    for (const fn of svc.listeners.get('job:update')!) fn({ id: 'j1' });
    expect(mainWindow().contents.sent).toContainEqual(['tidemark:event:job:update', { id: 'j1' }]);
  });

  it('quits only after stopping the demo VM it started and closing the service', async () => {
    svc.calls.length = 0;
    const event = { preventDefault: vi.fn() };
    for (const fn of m.appListeners.get('before-quit')!) fn(event);
    expect(event.preventDefault).toHaveBeenCalled();
    for (let i = 0; i < 5; i++) await flush();
    expect(svc.calls.map((c) => c[0])).toEqual(['lab:stop']);
    expect(svc.close).toHaveBeenCalledTimes(1);
    expect(m.electron.app.quit).toHaveBeenCalled();
  });
});

describe('app:// protocol handler (#18)', () => {
  let root: string;
  let handle: (r: { url: string }) => Promise<Response>;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-app-'));
    fs.mkdirSync(path.join(root, 'renderer', 'assets'), { recursive: true });
    fs.writeFileSync(path.join(root, 'renderer', 'index.html'), '<!doctype html><title>T</title>');
    fs.writeFileSync(path.join(root, 'renderer', 'assets', 'a.js'), '1');
    fs.writeFileSync(path.join(root, 'secret'), 'outside');
    handle = mainModule.createAppRequestHandler(path.join(root, 'renderer'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('serves the renderer with the CSP header', async () => {
    const r = await handle({ url: 'app://tidemark/index.html' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await r.text()).toBe('<!doctype html><title>T</title>');
    expect((await handle({ url: 'app://tidemark/assets/a.js' })).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  });

  it.each([
    ['app://tidemark/..%2fsecret', 403],
    ['app://tidemark/assets/..%2f..%2fsecret', 403],
    ['app://tidemark/%00', 400],
    ['app://tidemark/nope.js', 404],
    ['app://other/index.html', 404],
  ])('refuses %s with %i', async (url, status) => {
    const r = await handle({ url });
    expect(r.status).toBe(status);
    expect(await r.text()).not.toContain('outside');
  });

  it('serves the connect prompt page with its own script-less CSP', async () => {
    const r = await handle({ url: 'app://tidemark/__shell/connect.html' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).not.toContain('script-src');
    expect(await r.text()).toContain('QMP endpoint');
  });
});

describe('stateDirArg', () => {
  it('reads --state-dir in both forms', () => {
    expect(mainModule.stateDirArg(['electron', '.', '--state-dir', '/tmp/s'])).toBe('/tmp/s');
    expect(mainModule.stateDirArg(['tidemark', '--state-dir=/tmp/t'])).toBe('/tmp/t');
    expect(mainModule.stateDirArg(['tidemark'])).toBeUndefined();
  });
});
