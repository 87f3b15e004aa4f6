// One CSP for the renderer (shared/transport.ts): the <meta> in renderer/index.html, the header of
// Electron's app:// protocol and the web host's header must all be it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { contentSecurityPolicy } from '../electron/host/web-host';
import { APP_CSP } from '../electron/shell/security';
import { RENDERER_META_CSP, rendererCsp } from '../shared/transport';

describe('the renderer CSP', () => {
  it('renderer/index.html carries the meta variant exactly', () => {
    const html = fs.readFileSync(path.join(__dirname, '..', 'renderer', 'index.html'), 'utf8');
    const metas = [...html.matchAll(/<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"/g)].map((m) => m[1]);
    expect(metas).toEqual([RENDERER_META_CSP]);
  });

  it('the Electron shell and the web host send the same policy, differing only in the WebSocket they allow', () => {
    expect(APP_CSP).toBe(rendererCsp());
    expect(contentSecurityPolicy(8123)).toBe(rendererCsp({ connect: ['ws://127.0.0.1:8123'] }));
    expect(RENDERER_META_CSP.replace(' ws://127.0.0.1:*', '')).toBe(rendererCsp({ meta: true }));
  });
});
