// Hostile frames over the WebSocket transport (in-process web host, recording handlers that must
// never be reached) and over IPC (electron/main.ts's handleInvoke is dispatch + errorText; main.ts
// needs Electron, so the same two calls run here).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import NodeWs from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, type EventName, type Handlers } from '../../shared/contract';
import { errorText } from '../../shared/transport';
import { createWebHost, type WebHost } from '../../electron/host/web-host';
import { loginCookie } from '../web-host-login';
import { tally } from './tally';

const reached: string[] = [];
const handlers = new Proxy({}, { get: (_t, ch: string) => () => { reached.push(ch); throw new Error('a handler was reached'); } }) as unknown as Handlers;
const events = { on: (_e: EventName, _fn: (p: never) => void) => () => undefined };

describe('contract payloads over IPC (dispatch + errorText, as handleInvoke)', () => {
  const bad: [unknown, unknown, RegExp][] = [
    ['vm:info', undefined, /expected|array/],
    ['vm:info', [undefined], /expected|missing/],
    ['checkpoint:delete', ['vm', 7], /expected a string, got number 7|got number/],
    ['checkpoint:create', ['vm', { name: 'x', disks: 'vda' }], /disks/],
    ['checkpoint:create', ['vm', { name: 'x', layout: 'sideways' }], /layout/],
    [{ toString: () => 'vm:info' }, [], /unknown channel/],
    ['hasOwnProperty', [], /unknown channel "hasOwnProperty"/],
    ['vm:info\u202e', [], /unknown channel "vm:info\\u202e"|unknown channel/],
  ];
  for (const [channel, args, reason] of bad) {
    it(`${typeof channel === 'string' ? JSON.stringify(channel) : typeof channel} ${JSON.stringify(args)?.slice(0, 60)}`, async () => {
      const text = await dispatch(handlers, channel, args).then(() => 'accepted', (e: unknown) => errorText(e));
      expect(text).not.toBe('accepted');
      expect(text).not.toMatch(/a handler was reached/);
      expect(text.split('\n')).toHaveLength(1);
      expect(text).toMatch(reason);
      tally('IPC payloads');
    });
  }
});

describe('contract payloads over the WebSocket (malformed frames)', () => {
  let dir: string;
  let host: WebHost;
  let ws: NodeWs;
  let cookie: string;
  const open = () => new Promise<NodeWs>((resolve, reject) => {
    const s = new NodeWs(`ws://127.0.0.1:${host.port}/ipc`, { origin: host.origin, headers: { Cookie: cookie } });
    s.once('open', () => resolve(s));
    s.once('error', reject);
  });
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-corpus-wh-'));
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
    host = await createWebHost({ service: { handlers, events } as never, rendererDir: dir, code: 'code-corpus' });
    cookie = await loginCookie({ origin: host.origin, code: 'code-corpus' });
    ws = await open();
  });
  afterAll(async () => {
    ws.close();
    await host.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const request = (frame: string | Buffer, binary = false) => new Promise<Record<string, unknown>>((resolve) => {
    ws.once('message', (data) => resolve(JSON.parse(data.toString()) as Record<string, unknown>));
    ws.send(frame, { binary });
  });

  const bad: [string, string | Buffer, RegExp][] = [
    ['not JSON', '{"id":1,', /request is not valid JSON/],
    ['empty frame', '', /request is not valid JSON/],
    ['a JSON array', '[1,2]', /request must be a JSON object/],
    ['a JSON string', '"vm:list"', /request must be a JSON object/],
    ['null', 'null', /request must be a JSON object/],
    ['id an object', JSON.stringify({ id: {}, channel: 'vm:list', args: [] }), /request id must be a number or a short string/],
    ['id too long', JSON.stringify({ id: 'i'.repeat(101), channel: 'vm:list', args: [] }), /request id must be/],
    ['channel a number', JSON.stringify({ id: 1, channel: 5, args: [] }), /request channel must be a string/],
    ['args an object', JSON.stringify({ id: 1, channel: 'vm:info', args: { 0: 'vm' } }), /request args must be an array/],
    ['args missing', JSON.stringify({ id: 1, channel: 'vm:info' }), /request args must be an array/],
    ['unknown channel', JSON.stringify({ id: 2, channel: 'fs:rm', args: ['/'] }), /unknown channel "fs:rm"/],
    ['prototype channel', JSON.stringify({ id: 3, channel: '__proto__', args: [] }), /unknown channel "__proto__"/],
    ['wrong argument type', JSON.stringify({ id: 4, channel: 'checkpoint:create', args: ['vm', { name: 5 }] }), /name: expected a string, got number 5/],
    ['unexpected field', JSON.stringify({ id: 5, channel: 'checkpoint:create', args: ['vm', { name: 'x', rm: true }] }), /unexpected field "rm"/],
    ['binary frame', Buffer.from('{"id":1}'), /binary frames are not accepted/],
  ];
  for (const [what, frame, reason] of bad) {
    it(what, async () => {
      const r = await request(frame, Buffer.isBuffer(frame));
      expect(r.ok).toBe(false);
      expect(String(r.error).split('\n')).toHaveLength(1);
      expect(String(r.error)).toMatch(reason);
      expect(reached).toEqual([]);
      tally('WebSocket frames');
    });
  }

  it('an oversized frame (over 4 MiB) closes that socket with 1009, the host keeps serving', async () => {
    const big = await open();
    const closed = new Promise<number>((resolve) => big.once('close', (code) => resolve(code)));
    big.send(JSON.stringify({ id: 1, channel: 'vm:info', args: ['x'.repeat(5 * 1024 * 1024)] }));
    expect(await closed).toBe(1009); // "message too big", ws's own close reason
    expect((await request(JSON.stringify({ id: 9, channel: 'nope', args: [] }))).error).toMatch(/unknown channel "nope"/);
    expect(reached).toEqual([]);
    tally('WebSocket frames');
  });
});
