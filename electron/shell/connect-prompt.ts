// The "Connect to a VM…" dialog. Electron has no text prompt, so this is a tiny page in a modal
// window with JavaScript disabled and no preload: a plain HTML form whose submission is a
// navigation that electron/main.ts intercepts (will-navigate) and never lets happen. Nothing in
// the page can reach IPC.

import { createHash } from 'node:crypto';
import { APP_ORIGIN } from './security';

export const CONNECT_PROMPT_PATH = '/__shell/connect.html';
export const CONNECT_SUBMIT_PATH = '/__shell/connect';

const STYLE = `
:root { color-scheme: light dark; font: 13px system-ui, sans-serif; }
body { margin: 16px; }
label { display: block; margin: 8px 0 2px; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: 4px 6px; font: 13px ui-monospace, monospace; }
p { margin: 4px 0; opacity: .75; }
.buttons { margin-top: 14px; text-align: right; }
button { min-width: 80px; margin-left: 6px; }
`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The page and its CSP (inline style allowed by hash only; no script at all). */
export function connectPromptPage(error?: string): { html: string; csp: string } {
  const styleHash = createHash('sha256').update(STYLE).digest('base64');
  const csp = [
    "default-src 'none'",
    `style-src 'sha256-${styleHash}'`,
    `form-action ${APP_ORIGIN}`,
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connect to a VM</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body>
<form method="get" action="${APP_ORIGIN}${CONNECT_SUBMIT_PATH}">
<label for="endpoint">QMP endpoint</label>
<input id="endpoint" name="endpoint" required autofocus placeholder="unix:/run/vm/qmp.sock  or  tcp:127.0.0.1:4444" maxlength="1024">
<p>A QMP socket of a running QEMU: unix:PATH, tcp:HOST:PORT, or a socket path.</p>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<label for="label">Label (optional)</label>
<input id="label" name="label" maxlength="200">
<div class="buttons"><button type="submit" name="action" value="cancel" formnovalidate>Cancel</button><button type="submit" name="action" value="connect">Connect</button></div>
</form>
</body></html>`;
  return { html, csp };
}

export type ConnectAnswer = { action: 'connect'; endpoint: string; label?: string } | { action: 'cancel' };

/** Reads a form submission URL; undefined when the URL is not our form's. */
export function parseConnectSubmit(url: string): ConnectAnswer | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (`${u.protocol}//${u.host}` !== APP_ORIGIN || u.pathname !== CONNECT_SUBMIT_PATH) return undefined;
  if (u.searchParams.get('action') !== 'connect') return { action: 'cancel' };
  const endpoint = (u.searchParams.get('endpoint') ?? '').trim();
  const label = (u.searchParams.get('label') ?? '').trim();
  if (endpoint === '') return { action: 'cancel' };
  return label ? { action: 'connect', endpoint, label } : { action: 'connect', endpoint };
}
