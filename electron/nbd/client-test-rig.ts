// Shared by the NBD client's fake-server tests (client*.test.ts): the fake server each test scripts,
// closed after every test, and small helpers.

import { afterEach } from 'vitest';
import { FakeNbdConn, FakeNbdServer, FakeRequest, startFakeNbdServer } from './fake-server';
import * as P from './protocol';

const servers = new Set<FakeNbdServer>();

/** Registers an afterEach that destroys `client()` and closes every fake server a test started. */
export function closeAfterEach(client: () => { destroy(e: Error): void } | undefined, clear: () => void): void {
  afterEach(async () => {
    client()?.destroy(new Error('test over'));
    clear();
    await Promise.all([...servers].map((s) => s.close()));
    servers.clear();
  });
}

export async function serve(script: (c: FakeNbdConn) => Promise<void>): Promise<FakeNbdServer> {
  const server = await startFakeNbdServer(script);
  servers.add(server);
  // A test may close its server itself (several servers in one test): then afterEach leaves it.
  const close = async () => {
    servers.delete(server);
    await server.close();
  };
  return { ...server, close };
}

/** Runs the standard handshake, then `onRequest` for every request. */
export async function serveRequests(onRequest: (c: FakeNbdConn, r: FakeRequest, ids: Map<string, number>) => void | Promise<void>, opts: Parameters<FakeNbdConn['handshake']>[0] = { size: 4 * MiB }): Promise<FakeNbdServer> {
  return serve(async (c) => {
    const ids = await c.handshake(opts);
    for (;;) {
      const r = await c.readRequest();
      if (r.type === P.NBD_CMD_DISC) {
        c.sock.end();
        return;
      }
      await onRequest(c, r, ids);
    }
  });
}

export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure, got success');
}

export const MiB = 1024 * 1024;
export const KiB = 1024;
export function big64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
}
export const RO = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY;
