// The Electron shell's security rules as plain data and pure checks (electron/main.ts applies
// them; tests read them without Electron). Numbers refer to the Electron security checklist.

import { rendererCsp } from '../../shared/transport';

/** The renderer is served from this custom protocol, never file:// (#18). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'tidemark';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

/** Sent as a header with every app:// response (#7); the renderer's CSP (shared/transport.ts). */
export const APP_CSP = rendererCsp();

/** webPreferences of every window (#2, #3, #4, #6, #8, #9, #10, #11). Nothing here is toggled for development. */
export const SECURE_WEB_PREFERENCES = {
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  experimentalFeatures: false,
  navigateOnDragDrop: false,
  spellcheck: false,
} as const;

/** IPC is answered only for our own page (#17): app://tidemark, not any other scheme or host. */
export function isTrustedSenderUrl(url: string | undefined | null): boolean {
  if (!url) return false;
  try {
    const u = new URL(url);
    // Node's URL gives origin "null" for non-special schemes, so compare scheme and host.
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}

/** Hosts the app may open in the user's browser (#15): documentation only. */
export const EXTERNAL_HOSTS: readonly string[] = ['www.qemu.org', 'qemu.readthedocs.io', 'libvirt.org', 'github.com'];

/** True for https URLs to an allow-listed host without credentials (#15). */
export function isSafeExternalUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && u.username === '' && u.password === '' && u.port === '' && EXTERNAL_HOSTS.includes(u.hostname);
  } catch {
    return false;
  }
}
