import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connectPromptPage, parseConnectSubmit } from './connect-prompt';

describe('connectPromptPage', () => {
  it('has a form posting to app://tidemark/__shell/connect, no script, and a CSP that allows only its own style', () => {
    const { html, csp } = connectPromptPage();
    expect(html).toContain('<form method="get" action="app://tidemark/__shell/connect">');
    expect(html).toContain('name="endpoint"');
    expect(html).not.toMatch(/<script|on[a-z]+=/i);
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
    expect(csp).toContain('form-action app://tidemark');
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    const hash = createHash('sha256').update(style).digest('base64');
    expect(csp).toContain(`style-src 'sha256-${hash}'`);
  });
  it('escapes an error message', () => {
    const { html } = connectPromptPage('<img src=x onerror=alert(1)>');
    expect(html).toContain('&#60;img src=x onerror=alert(1)&#62;');
    expect(html).not.toContain('<img');
  });
});

describe('parseConnectSubmit', () => {
  it.each([
    ['app://tidemark/__shell/connect?endpoint=unix%3A%2Frun%2Fq.sock&label=web1&action=connect', { action: 'connect', endpoint: 'unix:/run/q.sock', label: 'web1' }],
    ['app://tidemark/__shell/connect?endpoint=+tcp%3A127.0.0.1%3A4444+&label=&action=connect', { action: 'connect', endpoint: 'tcp:127.0.0.1:4444' }],
    ['app://tidemark/__shell/connect?endpoint=x&action=cancel', { action: 'cancel' }],
    ['app://tidemark/__shell/connect?endpoint=&action=connect', { action: 'cancel' }],
    ['app://tidemark/__shell/other?endpoint=x&action=connect', undefined],
    ['app://evil/__shell/connect?endpoint=x&action=connect', undefined],
    ['https://tidemark/__shell/connect?endpoint=x&action=connect', undefined],
    ['garbage', undefined],
  ])('%s', (url, expected) => {
    expect(parseConnectSubmit(url)).toEqual(expected);
  });
});
