// Protocol edge cases against a scripted fake peer. Real QEMU behaviour is covered by client.itest.ts.

import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient, QmpReconnector } from './client';
import { parseEndpoint, formatEndpoint } from './endpoint';
import { QmpConnectionError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors';
import { FakePeer, reply, startFakePeer } from './fake-peer';

let peer: FakePeer | undefined;
let client: QmpClient | undefined;
afterEach(async () => {
  await client?.close();
  await peer?.close();
  client = undefined;
  peer = undefined;
});

describe('endpoint parsing', () => {
  it('accepts unix:, tcp: and bare socket paths', () => {
    expect(parseEndpoint('unix:/run/q.sock')).toEqual({ kind: 'unix', path: '/run/q.sock' });
    expect(parseEndpoint('/run/q.sock')).toEqual({ kind: 'unix', path: '/run/q.sock' });
    expect(parseEndpoint('./q.sock')).toEqual({ kind: 'unix', path: './q.sock' });
    expect(parseEndpoint('tcp:127.0.0.1:4444')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 4444 });
    expect(parseEndpoint('tcp:[::1]:4444')).toEqual({ kind: 'tcp', host: '::1', port: 4444 });
    expect(formatEndpoint(parseEndpoint('tcp:[::1]:4444'))).toBe('tcp:[::1]:4444');
  });
  it('names what is wrong with a bad endpoint', () => {
    expect(() => parseEndpoint('')).toThrow(/empty/);
    expect(() => parseEndpoint('unix:')).toThrow(/no socket path/);
    expect(() => parseEndpoint('tcp:host')).toThrow(/tcp:HOST:PORT/);
    expect(() => parseEndpoint('tcp:host:99999')).toThrow(/invalid port/);
    expect(() => parseEndpoint('http://x')).toThrow(/unknown scheme/);
  });
});

describe('QmpClient against a fake peer', () => {
  it('negotiates capabilities and matches concurrent replies by id, whatever their order', async () => {
    const held: { id: unknown; n: number; sock: import('node:net').Socket }[] = [];
    peer = await startFakePeer((cmd, sock) => {
      held.push({ id: cmd.id, n: Number((cmd.arguments ?? {}).n), sock });
      if (held.length === 3) for (const h of [...held].reverse()) reply(h.sock, h.id, { echoed: h.n });
    });
    client = await QmpClient.connect(peer.endpoint);
    expect(client.greeting.version.qemu.major).toBe(7);
    expect(peer.received[0]).toBe('qmp_capabilities');
    const results = await Promise.all([1, 2, 3].map((n) => client!.execute<{ echoed: number }>('echo', { n })));
    expect(results.map((r) => r.echoed)).toEqual([1, 2, 3]);
  });

  it('a command\'s id is a number (the shortest: QEMU reads commands byte by byte); a reply to another id is not its answer', async () => {
    const lines: string[] = [];
    peer = await startFakePeer((cmd, sock) => {
      lines.push(JSON.stringify(cmd));
      // First an answer to an id this client never sent (the same number as a string), then the real one.
      sock.write(JSON.stringify({ return: { wrong: true }, id: String(cmd.id) }) + '\r\n');
      reply(sock, cmd.id, { right: true });
    });
    client = await QmpClient.connect(peer.endpoint);
    expect(await client.execute('query-version')).toEqual({ right: true });
    await client.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name: 'b' });
    expect(lines).toEqual(['{"execute":"query-version","id":2}', '{"execute":"block-dirty-bitmap-add","arguments":{"node":"vda-fmt","name":"b"},"id":3}']);
  });

  it('turns an error reply into a QmpError carrying class and desc', async () => {
    peer = await startFakePeer((cmd, sock) => sock.write(JSON.stringify({ error: { class: 'DeviceNotFound', desc: "Device 'x' not found" }, id: cmd.id }) + '\n'));
    client = await QmpClient.connect(peer.endpoint);
    const err = await failure(client.execute('block-dirty-bitmap-add'));
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).errorClass).toBe('DeviceNotFound');
    expect((err as QmpError).desc).toBe("Device 'x' not found");
    expect((err as QmpError).message).toBe("block-dirty-bitmap-add: Device 'x' not found");
    expect(client.isOpen).toBe(true);
  });

  it('delivers events to listeners and waitForEvent', async () => {
    peer = await startFakePeer((cmd, sock) => {
      sock.write(JSON.stringify({ event: 'JOB_STATUS_CHANGE', data: { id: 'j1', status: 'running' }, timestamp: { seconds: 1, microseconds: 2 } }) + '\n');
      reply(sock, cmd.id, {});
    });
    client = await QmpClient.connect(peer.endpoint);
    const seen: string[] = [];
    client.onEvent((e) => seen.push(`${e.event}:${String(e.data.status)}`));
    const waited = client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE', 2000);
    await client.execute('go');
    expect((await waited).data.id).toBe('j1');
    expect(seen).toEqual(['JOB_STATUS_CHANGE:running']);
  });

  it('times out one command without breaking the connection, and drops the late reply', async () => {
    peer = await startFakePeer((cmd, sock) => {
      if (cmd.execute === 'slow') setTimeout(() => reply(sock, cmd.id, 'late'), 150);
      else reply(sock, cmd.id, 'fast');
    });
    client = await QmpClient.connect(peer.endpoint);
    const err = await failure(client.execute('slow', undefined, { timeoutMs: 50 }));
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect((err as Error).message).toMatch(/slow: no reply from QEMU within 50 ms/);
    await new Promise((r) => setTimeout(r, 200));
    expect(await client.execute('quick')).toBe('fast');
  });

  it('rejects every pending command when the peer drops the connection', async () => {
    peer = await startFakePeer((_cmd, sock) => {
      // answer nothing; drop after the third command
      if (peer!.received.length === 4) sock.destroy();
    });
    client = await QmpClient.connect(peer.endpoint);
    const closed = new Promise<Error>((resolve) => client!.onClose(resolve));
    const errs = await Promise.all(['a', 'b', 'c'].map((c) => failure(client!.execute(c))));
    for (const e of errs) {
      expect(e).toBeInstanceOf(QmpConnectionError);
      expect(e.message).toMatch(/closed by QEMU/);
    }
    expect((await closed).message).toMatch(/closed by QEMU/);
    expect(client.isOpen).toBe(false);
    await expect(client.execute('after')).rejects.toThrow(/closed by QEMU/);
  });

  it('closes with a protocol error on garbage JSON, and the process survives', async () => {
    peer = await startFakePeer((_cmd, sock) => sock.write('{"return": {}, "id": tm-broken}\n'));
    client = await QmpClient.connect(peer.endpoint);
    const err = await failure(client.execute('x'));
    expect(err).toBeInstanceOf(QmpConnectionError);
    expect(err.message).toMatch(/invalid JSON/);
    expect(err.cause).toBeInstanceOf(QmpProtocolError);
  });

  it('handles replies split across many writes and several replies in one write', async () => {
    peer = await startFakePeer((cmd, sock) => {
      const text = JSON.stringify({ return: { big: 'x'.repeat(10_000) }, id: cmd.id }) + '\n';
      let i = 0;
      const step = () => {
        if (i >= text.length) return;
        sock.write(text.slice(i, i + 777));
        i += 777;
        setImmediate(step);
      };
      step();
    });
    client = await QmpClient.connect(peer.endpoint);
    const r = await client.execute<{ big: string }>('q');
    expect(r.big.length).toBe(10_000);
  });

  it('refuses an oversized message without a line break', async () => {
    peer = await startFakePeer((_cmd, sock) => sock.write('{"return": "' + 'y'.repeat(300_000)));
    client = await QmpClient.connect(peer.endpoint, { maxMessageBytes: 100_000 });
    const err = await failure(client.execute('q'));
    expect(err.message).toMatch(/larger than 100000 bytes/);
    expect(client.isOpen).toBe(false);
  });

  it('treats non-object JSON as a protocol violation', async () => {
    peer = await startFakePeer((_cmd, sock) => sock.write('[1,2,3]\n'));
    client = await QmpClient.connect(peer.endpoint);
    await expect(client.execute('q')).rejects.toThrow(/not an object/);
  });

  it('ignores replies with unknown ids and keeps working', async () => {
    peer = await startFakePeer((cmd, sock) => {
      reply(sock, 'not-ours', 'stray');
      reply(sock, cmd.id, 'mine');
    });
    client = await QmpClient.connect(peer.endpoint);
    expect(await client.execute('q')).toBe('mine');
  });

  it('fails to connect with a clear error when the greeting never comes', async () => {
    peer = await startFakePeer(() => undefined, null);
    const err = await failure(QmpClient.connect(peer.endpoint, { connectTimeoutMs: 100 }));
    expect(err).toBeInstanceOf(QmpConnectionError);
    expect(err.message).toMatch(/no QMP greeting/);
  });

  it('rejects a malformed greeting', async () => {
    peer = await startFakePeer(() => undefined, '{"QMP": "nonsense"}');
    await expect(QmpClient.connect(peer.endpoint)).rejects.toThrow(/malformed QMP greeting/);
  });

  it('says the socket does not exist', async () => {
    await expect(QmpClient.connect('unix:/nonexistent/tidemark.sock')).rejects.toThrow(/no such socket: is QEMU running\?/);
  });

  it('reconnects after a drop', async () => {
    peer = await startFakePeer((cmd, sock) => reply(sock, cmd.id, 'ok'));
    const states: string[] = [];
    let connects = 0;
    const rc = new QmpReconnector(peer.endpoint, () => void connects++, { minDelayMs: 20 });
    rc.onState((s) => states.push(s));
    rc.start();
    await waitUntil(() => connects === 1);
    for (const s of peer.sockets) s.destroy();
    await waitUntil(() => connects === 2);
    expect(states.slice(0, 3)).toEqual(['connected', 'disconnected', 'connected']);
    expect(await rc.current!.execute('q')).toBe('ok');
    await rc.stop();
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The error a promise rejects with; fails the test if it resolves. */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}
