import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { AppApi } from '../shared/contract';

// Electron is mocked: the real package would try to download its binary.
const electron = vi.hoisted(() => ({
  contextBridge: { exposeInMainWorld: vi.fn() },
  ipcRenderer: { invoke: vi.fn(), on: vi.fn(), removeListener: vi.fn(), send: vi.fn(), sendSync: vi.fn() },
}));
vi.mock('electron', () => electron);

let api: AppApi;
beforeAll(async () => {
  await import('./preload');
  api = electron.contextBridge.exposeInMainWorld.mock.calls[0]![1] as AppApi;
});

describe('preload (#3, #20)', () => {
  it('exposes exactly one global, window.api, with invoke, on and transport only', () => {
    expect(electron.contextBridge.exposeInMainWorld).toHaveBeenCalledTimes(1);
    expect(electron.contextBridge.exposeInMainWorld.mock.calls[0]![0]).toBe('api');
    expect(Object.keys(api).sort()).toEqual(['invoke', 'on', 'transport']);
    expect(api.transport).toBe('electron');
    for (const value of Object.values(api)) {
      expect(value).not.toBe(electron.ipcRenderer);
      expect(value).not.toBe(electron.ipcRenderer.invoke);
    }
  });

  it('refuses a channel outside the contract without sending anything', async () => {
    await expect((api.invoke as (c: string) => Promise<unknown>)('shell:exec')).rejects.toThrow('unknown channel "shell:exec"');
    await expect((api.invoke as (c: string) => Promise<unknown>)('__proto__')).rejects.toThrow('unknown channel');
    expect(electron.ipcRenderer.invoke).not.toHaveBeenCalled();
  });

  it('sends a contract call on the one invoke channel and unwraps the reply', async () => {
    electron.ipcRenderer.invoke.mockResolvedValueOnce({ ok: true, result: { id: 'vm-1' } });
    await expect(api.invoke('vm:info', 'vm-1')).resolves.toEqual({ id: 'vm-1' });
    expect(electron.ipcRenderer.invoke).toHaveBeenLastCalledWith('tidemark:invoke', 'vm:info', ['vm-1']);
  });

  it('rejects with the engine message, not Electron wrapping', async () => {
    electron.ipcRenderer.invoke.mockResolvedValueOnce({ ok: false, error: 'checkpoint "x" does not exist' });
    await expect(api.invoke('checkpoint:get', 'vm', 'x')).rejects.toThrow(/^checkpoint "x" does not exist$/);
  });

  it('on() strips the IpcRendererEvent and its unsubscribe removes exactly the listener it added', () => {
    const got: unknown[][] = [];
    const off = api.on('job:update', (...args: unknown[]) => got.push(args));
    expect(electron.ipcRenderer.on).toHaveBeenLastCalledWith('tidemark:event:job:update', expect.any(Function));
    const wrapped = electron.ipcRenderer.on.mock.calls.at(-1)![1] as (e: unknown, p: unknown) => void;
    wrapped({ sender: 'ipcRenderer-internals', ports: [] }, { id: 'j1' });
    expect(got).toEqual([[{ id: 'j1' }]]);
    off();
    expect(electron.ipcRenderer.removeListener).toHaveBeenCalledWith('tidemark:event:job:update', wrapped);
  });

  it('refuses unknown events', () => {
    expect(() => (api.on as (e: string, f: () => void) => void)('ipc:raw', () => undefined)).toThrow('unknown event "ipc:raw"');
  });
});
