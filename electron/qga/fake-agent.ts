// A scripted QEMU guest agent peer on a unix socket, for the protocol and every failure path (the
// lab VM has no guest OS, so no real agent). It behaves like qemu-ga by default: 0xFF resets its
// input parser; guest-sync-delimited answers 0xFF + {"return": id}; fsfreeze keeps a frozen state
// and, while frozen, refuses commands qemu-ga disables. `onCommand` changes any reply: an error,
// silence ("hang"), a dropped connection, raw bytes, or a delay.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export type FakeReply =
  | { return: unknown }
  | { error: { class: string; desc: string } }
  | { raw: string | Buffer }
  | { delayMs: number; then: FakeReply }
  | 'hang'
  | 'close';

export interface FakeAgentState {
  frozen: boolean;
  freezes: number;
  thaws: number;
}

export interface FakeAgentOptions {
  /** A reply for this command (undefined: qemu-ga's default behaviour). */
  onCommand?: (command: string, state: FakeAgentState, args: Record<string, unknown> | undefined) => FakeReply | undefined;
  /** Bytes sent to every new connection first: a previous client's late replies. */
  stale?: string | Buffer;
  /** Accept connections but never answer (a VM whose guest runs no agent). */
  silent?: boolean;
  /** File systems a freeze freezes (default 2). */
  filesystems?: number;
}

export interface FakeAgent {
  endpoint: string;
  socket: string;
  state: FakeAgentState;
  /** Every command received, in order. */
  received: string[];
  /** The first byte each connection sent (0xff when the client flushed the agent's parser). */
  firstBytes: number[];
  connections: number;
  dropConnections(): void;
  close(): Promise<void>;
}

const ALLOWED_WHILE_FROZEN = new Set(['guest-sync', 'guest-sync-delimited', 'guest-ping', 'guest-info', 'guest-fsfreeze-status', 'guest-fsfreeze-thaw']);

function defaultReply(cmd: string, args: Record<string, unknown> | undefined, st: FakeAgentState, filesystems: number): FakeReply {
  if (st.frozen && !ALLOWED_WHILE_FROZEN.has(cmd)) return { error: { class: 'GenericError', desc: `Command ${cmd} has been disabled for this instance` } };
  switch (cmd) {
    case 'guest-sync-delimited':
      return { raw: Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: args?.id })}\n`)]) };
    case 'guest-sync':
      return { return: args?.id };
    case 'guest-ping':
      return { return: {} };
    case 'guest-fsfreeze-status':
      return { return: st.frozen ? 'frozen' : 'thawed' };
    case 'guest-fsfreeze-freeze':
      st.frozen = true;
      st.freezes++;
      return { return: filesystems };
    case 'guest-fsfreeze-thaw': {
      const n = st.frozen ? filesystems : 0;
      st.frozen = false;
      st.thaws++;
      return { return: n };
    }
    default:
      return { error: { class: 'CommandNotFound', desc: `The command ${cmd} has not been found` } };
  }
}

export async function startFakeAgent(options: FakeAgentOptions = {}): Promise<FakeAgent> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-qga-'));
  const socket = path.join(dir, 'qga.sock');
  const sockets = new Set<net.Socket>();
  const state: FakeAgentState = { frozen: false, freezes: 0, thaws: 0 };
  const received: string[] = [];
  const firstBytes: number[] = [];
  const agent: FakeAgent = {
    endpoint: `unix:${socket}`, socket, state, received, firstBytes, connections: 0,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const send = (sock: net.Socket, reply: FakeReply): void => {
    if (reply === 'hang') return;
    if (reply === 'close') {
      sock.destroy();
      return;
    }
    if ('delayMs' in reply) {
      setTimeout(() => !sock.destroyed && send(sock, reply.then), reply.delayMs);
      return;
    }
    if ('raw' in reply) sock.write(reply.raw);
    else sock.write(`${JSON.stringify(reply)}\n`);
  };
  const server = net.createServer((sock) => {
    agent.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    if (options.stale !== undefined) sock.write(options.stale);
    let buf = Buffer.alloc(0);
    let first = true;
    sock.on('data', (d: Buffer) => {
      if (first) firstBytes.push(d[0]!);
      first = false;
      if (options.silent) return;
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const ff = buf.indexOf(0xff);
        const nl = buf.indexOf(0x0a);
        if (ff >= 0 && (nl < 0 || ff < nl)) {
          buf = buf.subarray(ff + 1); // 0xFF: drop partial input, as qemu-ga does
          continue;
        }
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 1);
        let cmd: { execute?: string; arguments?: Record<string, unknown> };
        try {
          cmd = JSON.parse(line) as typeof cmd;
        } catch {
          send(sock, { error: { class: 'GenericError', desc: 'JSON parse error' } });
          continue;
        }
        const name = String(cmd.execute);
        received.push(name);
        send(sock, options.onCommand?.(name, state, cmd.arguments) ?? defaultReply(name, cmd.arguments, state, options.filesystems ?? 2));
      }
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return agent;
}
