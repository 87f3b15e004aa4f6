// A scripted QMP peer for protocol edge cases only (garbage, disconnects, slow replies).
// Everything about real QEMU behaviour is tested against real QEMU.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export type Responder = (cmd: { execute: string; arguments?: Record<string, unknown>; id?: unknown }, sock: net.Socket) => void;

export const GREETING = {
  QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'fake' }, capabilities: ['oob'] },
};

export interface FakePeer {
  endpoint: string;
  /** Sockets currently connected. */
  sockets: Set<net.Socket>;
  /** Every command received, in order. */
  received: string[];
  close(): Promise<void>;
}

/**
 * Starts a fake QMP server on a fresh unix socket. `onCommand` decides how each command
 * (after qmp_capabilities, which is answered normally) is answered; `greeting` may replace the
 * greeting line (raw text) or suppress it (null).
 */
export async function startFakePeer(onCommand: Responder, greeting: string | null = JSON.stringify(GREETING)): Promise<FakePeer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-fake-'));
  const sockPath = path.join(dir, 'qmp.sock');
  const sockets = new Set<net.Socket>();
  const received: string[] = [];
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    if (greeting !== null) sock.write(greeting + '\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const cmd = JSON.parse(line) as { execute: string; arguments?: Record<string, unknown>; id?: unknown };
        received.push(cmd.execute);
        if (cmd.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
        else onCommand(cmd, sock);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  return {
    endpoint: `unix:${sockPath}`,
    sockets,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Replies `{return: value}` with the command's id. */
export function reply(sock: net.Socket, id: unknown, value: unknown): void {
  sock.write(JSON.stringify({ return: value, id }) + '\r\n');
}
