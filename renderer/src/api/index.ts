// createApi(): the one way the renderer reaches the engine. Inside Electron the preload bridge
// (window.api) is used; in a browser, a WebSocket client to the web host, authorised by the session
// cookie the page got at login (web-login.ts, run by main.tsx before the app renders).

import type { AppApi } from '../../../shared/contract';
import { createWsApi, wsUrlFromLocation } from './ws-client';

declare global {
  interface Window {
    /** Set by the Electron preload (electron/preload.ts); absent in a browser. */
    api?: AppApi;
  }
}

export type { AppApi };
export { createWsApi, wsUrlFromLocation } from './ws-client';

let shared: AppApi | undefined;

/** Returns the process-wide API (created on first use). */
export function createApi(win: Window = window): AppApi {
  if (shared) return shared;
  if (win.api) return (shared = win.api);
  return (shared = createWsApi({ url: wsUrlFromLocation(win.location) }));
}

/** For tests: forget the cached API. */
export function resetApiForTests(): void {
  shared = undefined;
}
