import { describe, expect, it } from 'vitest';
import { APP_CSP, APP_ENTRY_URL, SECURE_WEB_PREFERENCES, isSafeExternalUrl, isTrustedSenderUrl } from './security';

describe('isTrustedSenderUrl (#17)', () => {
  it.each([
    ['app://tidemark/index.html', true],
    ['app://tidemark/', true],
    ['app://tidemark/index.html?x=1#y', true],
    ['app://evil/index.html', false],
    ['app://tidemark.evil/index.html', false],
    ['app://user:pw@tidemark/index.html', false],
    ['file:///work/main/out/renderer/index.html', false],
    ['http://127.0.0.1:8080/', false],
    ['https://evil.example/', false],
    ['devtools://devtools/', false],
    ['about:blank', false],
    ['', false],
    [null, false],
    ['not a url', false],
  ])('%j → %s', (url, trusted) => {
    expect(isTrustedSenderUrl(url)).toBe(trusted);
  });
});

describe('isSafeExternalUrl (#15)', () => {
  it.each([
    ['https://www.qemu.org/docs/master/interop/bitmaps.html', true],
    ['https://libvirt.org/formatcheckpoint.html', true],
    ['http://libvirt.org/', false],
    ['https://evil.example/', false],
    ['https://libvirt.org.evil.example/', false],
    ['https://user@libvirt.org/', false],
    ['https://libvirt.org:8443/', false],
    ['file:///etc/passwd', false],
    ['javascript:alert(1)', false],
    ['smb://host/share', false],
    ['', false],
  ])('%j → %s', (url, ok) => {
    expect(isSafeExternalUrl(url)).toBe(ok);
  });
});

describe('window settings', () => {
  it('isolate, sandbox and keep web security on (#2, #3, #4, #6), with nothing risky enabled (#8, #9, #10, #11)', () => {
    expect(SECURE_WEB_PREFERENCES).toMatchObject({
      contextIsolation: true, sandbox: true, nodeIntegration: false, nodeIntegrationInSubFrames: false, nodeIntegrationInWorker: false,
      webSecurity: true, allowRunningInsecureContent: false, experimentalFeatures: false, webviewTag: false,
    });
    expect(SECURE_WEB_PREFERENCES).not.toHaveProperty('enableBlinkFeatures');
    expect(SECURE_WEB_PREFERENCES).not.toHaveProperty('preload');
  });
  it('the entry is app://, never file:// (#18), and the CSP starts from nothing (#7)', () => {
    expect(APP_ENTRY_URL).toBe('app://tidemark/index.html');
    const directives = Object.fromEntries(APP_CSP.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1).join(' ')]));
    expect(directives).toMatchObject({
      'default-src': "'none'", 'script-src': "'self'", 'object-src': "'none'", 'base-uri': "'none'", 'form-action': "'none'", 'frame-ancestors': "'none'",
    });
    expect(APP_CSP).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
  });
});
