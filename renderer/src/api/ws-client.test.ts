import { afterEach, describe, expect, it, vi } from 'vitest';
import { createWsApi, wsUrlFromLocation, type WebSocketLike } from './ws-client';
import { createApi, resetApiForTests } from './index';
import type { AppApi, VmSummary } from '../../../shared/contract';

/** A scripted peer: records what the client sends and lets the test play the host's part. */
class FakeSocket implements WebSocketLike {
  readyState = 0;
  sent: unknown[] = [];
  closed: { code?: number; reason?: string } | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string) {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data));
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(msg: unknown) {
    this.onmessage?.({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
  }
  drop(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function setup(reconnectDelayMs = 10) {
  const sockets: FakeSocket[] = [];
  const api = createWsApi({
    url: 'ws://127.0.0.1:1234/ipc',
    reconnectDelayMs,
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
  });
  return { api, sockets };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

afterEach(() => {
  vi.useRealTimers();
  resetApiForTests();
});

describe('wsUrlFromLocation', () => {
  it('builds the ws URL on the page host, with no secret in it (the cookie authorises it)', () => {
    expect(wsUrlFromLocation({ protocol: 'http:', host: '127.0.0.1:8123' })).toBe('ws://127.0.0.1:8123/ipc');
    expect(wsUrlFromLocation({ protocol: 'https:', host: 'h:1' })).toBe('wss://h:1/ipc');
  });
});

describe('createWsApi', () => {
  it('sends {id, channel, args} and resolves with the matching reply, whatever the order', async () => {
    const { api, sockets } = setup();
    expect(api.transport).toBe('websocket');
    const a = api.invoke('vm:list');
    const b = api.invoke('vm:info', 'vm-1');
    sockets[0]!.open();
    await tick();
    expect(sockets).toHaveLength(1);
    expect(sockets[0]!.url).toBe('ws://127.0.0.1:1234/ipc');
    expect(sockets[0]!.sent).toEqual([
      { id: 1, channel: 'vm:list', args: [] },
      { id: 2, channel: 'vm:info', args: ['vm-1'] },
    ]);
    const list: VmSummary[] = [{ id: 'x', label: 'demo', endpoint: 'unix:/s', kind: 'demo', connection: 'connected' }];
    sockets[0]!.push({ id: 2, ok: true, result: { id: 'vm-1' } });
    sockets[0]!.push({ id: 1, ok: true, result: list });
    await expect(a).resolves.toEqual(list);
    await expect(b).resolves.toEqual({ id: 'vm-1' });
  });

  it('rejects with the host error text', async () => {
    const { api, sockets } = setup();
    const p = api.invoke('checkpoint:get', 'vm', 'nope');
    sockets[0]!.open();
    await tick();
    sockets[0]!.push({ id: 1, ok: false, error: 'checkpoint "nope" does not exist' });
    await expect(p).rejects.toThrow('checkpoint "nope" does not exist');
  });

  it('delivers pushed events to the listeners of that event only, and unsubscribe stops them', async () => {
    const { api, sockets } = setup();
    const got: unknown[] = [];
    const other: unknown[] = [];
    const off = api.on('checkpoints:changed', (p) => got.push(p));
    api.on('job:update', (p) => other.push(p));
    expect(sockets).toHaveLength(1); // listening opens the connection
    sockets[0]!.open();
    sockets[0]!.push({ event: 'checkpoints:changed', payload: { vmId: 'a' } });
    off();
    sockets[0]!.push({ event: 'checkpoints:changed', payload: { vmId: 'b' } });
    expect(got).toEqual([{ vmId: 'a' }]);
    expect(other).toEqual([]);
  });

  it('the same listener registered twice is removed once per unsubscribe', async () => {
    const { api, sockets } = setup();
    const got: unknown[] = [];
    const fn = (p: unknown) => got.push(p);
    const off1 = api.on('vm:list', fn);
    api.on('vm:list', fn);
    sockets[0]!.open();
    off1();
    sockets[0]!.push({ event: 'vm:list', payload: [] });
    expect(got).toHaveLength(1);
  });

  it('ignores garbage from the peer and a throwing listener does not stop the others', async () => {
    const { api, sockets } = setup();
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const got: unknown[] = [];
    api.on('vm:list', () => {
      throw new Error('boom');
    });
    api.on('vm:list', (p) => got.push(p));
    sockets[0]!.open();
    sockets[0]!.push('not json{');
    sockets[0]!.push({ id: 99, ok: true, result: 1 }); // nobody asked
    sockets[0]!.push({ event: 'vm:list', payload: [1] });
    expect(got).toEqual([[1]]);
    expect(errors).toHaveBeenCalledTimes(1);
    errors.mockRestore();
  });

  it('a dropped connection rejects what is in flight, and the next invoke reconnects', async () => {
    const { api, sockets } = setup();
    const p = api.invoke('lab:status');
    sockets[0]!.open();
    await tick();
    sockets[0]!.drop(1006);
    await expect(p).rejects.toThrow(/connection to the Tidemark host closed/);
    const q = api.invoke('lab:status');
    await tick();
    expect(sockets).toHaveLength(2);
    sockets[1]!.open();
    await tick();
    sockets[1]!.push({ id: 2, ok: true, result: { running: false } });
    await expect(q).resolves.toEqual({ running: false });
  });

  it('a refused connection rejects with a hint about the host and its printed address', async () => {
    const { api, sockets } = setup();
    const p = api.invoke('vm:list');
    sockets[0]!.drop(1006);
    await expect(p).rejects.toThrow(/failed.*tidemark serve.*address it printed/);
  });

  it('reconnects by itself while someone listens to events, with back-off', async () => {
    vi.useFakeTimers();
    const { api, sockets } = setup(100);
    api.on('vm:list', () => undefined);
    sockets[0]!.open();
    sockets[0]!.drop(1006);
    expect(sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets).toHaveLength(2);
    sockets[1]!.drop(1006); // refused again: next attempt waits twice as long
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets).toHaveLength(3);
    api.close();
    sockets[2]!.drop(1000);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sockets).toHaveLength(3);
    await expect(api.invoke('vm:list')).rejects.toThrow(/closed/);
  });
});

describe('createApi', () => {
  it('uses the preload bridge when the page has one', () => {
    const bridge: AppApi = { transport: 'electron', invoke: () => Promise.reject(new Error('x')), on: () => () => undefined };
    const api = createApi({ api: bridge, location: { protocol: 'app:', host: 'tidemark', search: '' } } as unknown as Window);
    expect(api).toBe(bridge);
  });
  it('in a browser, returns the WebSocket client (the login ran before, in main.tsx)', () => {
    const api = createApi({ location: { protocol: 'http:', host: '127.0.0.1:1', search: '' } } as unknown as Window);
    expect(api.transport).toBe('websocket');
  });
});
