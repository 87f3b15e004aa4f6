// The preload: exposes ONE object, window.api (the contract's AppApi), and nothing of Electron
// (checklist #20). Channels outside the contract are refused here before anything is sent, and
// main validates again (the renderer is untrusted). Listeners never see the IpcRendererEvent,
// and on() returns an unsubscribe that removes exactly the listener it added.
// Bundled as one CommonJS file: a sandboxed preload cannot load chunks or ES modules.

import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { EVENT_NAMES, isInvokeChannel, type AppApi, type EventName } from '../shared/contract';
import { unwrapReply, type Reply } from '../shared/transport';
import { INVOKE_CHANNEL, eventChannel } from './shell/ipc';

const api: AppApi = {
  transport: 'electron',
  async invoke(channel, ...args) {
    if (!isInvokeChannel(channel)) throw new Error(`unknown channel ${JSON.stringify(String(channel)).slice(0, 80)}`);
    return unwrapReply((await ipcRenderer.invoke(INVOKE_CHANNEL, channel, args)) as Reply) as never;
  },
  on(event, listener) {
    if (!(EVENT_NAMES as readonly string[]).includes(event)) throw new Error(`unknown event ${JSON.stringify(String(event)).slice(0, 80)}`);
    const channel = eventChannel(event as EventName);
    const wrapped = (_e: IpcRendererEvent, payload: unknown) => listener(payload as never);
    ipcRenderer.on(channel, wrapped);
    return () => {
      ipcRenderer.removeListener(channel, wrapped);
    };
  },
};

contextBridge.exposeInMainWorld('api', api);
