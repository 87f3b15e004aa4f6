// The transport's frames and envelope: both ends of the WebSocket and the Electron IPC use these.
import { describe, expect, it } from 'vitest';
import { encodeEvent, encodeReply, encodeRequest, errorText, parseHostMessage, parseRequest, rendererCsp, settle, unwrapReply } from './transport';

describe('reply envelope', () => {
  it('settle turns a result or a failure into a Reply with the message only', async () => {
    expect(await settle(async () => 42)).toEqual({ ok: true, result: 42 });
    const e = new Error('checkpoint "x" does not exist');
    e.stack = 'secret stack';
    expect(await settle(async () => Promise.reject(e))).toEqual({ ok: false, error: 'checkpoint "x" does not exist' });
    expect(await settle(async () => Promise.reject('plain text'))).toEqual({ ok: false, error: 'plain text' });
    expect(await settle(async () => Promise.reject({ weird: true }))).toEqual({ ok: false, error: 'unknown error' });
  });

  it('unwrapReply returns the result or throws the engine text unwrapped', () => {
    expect(unwrapReply({ ok: true, result: [1] })).toEqual([1]);
    expect(unwrapReply({ ok: true })).toBeUndefined();
    expect(() => unwrapReply({ ok: false, error: 'no such VM' })).toThrow(/^no such VM$/);
    expect(errorText(new TypeError(''))).toBe('TypeError');
  });
});

describe('WebSocket frames', () => {
  it('a request round-trips through encodeRequest and parseRequest', () => {
    expect(parseRequest(encodeRequest({ id: 7, channel: 'vm:info', args: ['demo'] }))).toEqual({ id: 7, channel: 'vm:info', args: ['demo'] });
  });

  it('parseRequest keeps the id when it can, to answer bad requests', () => {
    expect(parseRequest('{')).toEqual({ id: null, error: 'request is not valid JSON' });
    expect(parseRequest('null')).toEqual({ id: null, error: 'request must be a JSON object {id, channel, args}' });
    expect(parseRequest(JSON.stringify({ id: 'x'.repeat(101), channel: 'vm:list', args: [] }))).toEqual({ id: null, error: 'request id must be a number or a short string' });
    expect(parseRequest(JSON.stringify({ id: 3, channel: 'vm:list', args: 'all' }))).toEqual({ id: 3, error: 'request args must be an array' });
  });

  it('a reply that JSON cannot carry becomes an error reply with the same id', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(JSON.parse(encodeReply({ id: 4, ok: true, result: cyclic }))).toMatchObject({ id: 4, ok: false, error: expect.stringMatching(/^result cannot be sent: /) });
    expect(JSON.parse(encodeReply({ id: 5, ok: true, result: 10n }))).toMatchObject({ id: 5, ok: false });
    expect(encodeEvent('vm:list', [10n])).toBeUndefined();
  });

  it('parseHostMessage reads replies and events and ignores everything else', () => {
    expect(parseHostMessage(encodeReply({ id: 1, ok: true, result: { a: 1 } }))).toEqual({ id: 1, ok: true, result: { a: 1 } });
    expect(parseHostMessage(encodeReply({ id: 2, ok: false, error: 'boom' }))).toEqual({ id: 2, ok: false, error: 'boom' });
    expect(parseHostMessage(encodeEvent('checkpoints:changed', { vmId: 'a' }))).toEqual({ event: 'checkpoints:changed', payload: { vmId: 'a' } });
    expect(parseHostMessage('{"id":3,"ok":false}')).toEqual({ id: 3, ok: false, error: 'the host replied with an error without a message' });
    for (const garbage of ['not json{', '[1]', 'null', '{"id":1}', '{"ok":true}', new Uint8Array([1]), 5]) expect(parseHostMessage(garbage)).toBeUndefined();
  });
});

describe('rendererCsp', () => {
  it('allows only the renderer\'s own files, and extra connect sources only where given', () => {
    const csp = rendererCsp();
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self';");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(rendererCsp({ connect: ['ws://127.0.0.1:8123'] })).toContain("connect-src 'self' ws://127.0.0.1:8123;");
    expect(rendererCsp({ meta: true })).not.toContain('frame-ancestors');
  });
});
