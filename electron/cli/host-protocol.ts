// What the thin client (host-client.ts) and a resident host (host-server.ts) say to each other over
// the host's unix socket: one JSON object per line. Hand-written (a few fixed frames; no library
// needed). The socket is <state dir>/run/cli.sock: the state dir and run/ are private (0700), the
// socket 0600, so only its owner can connect.
//
//   client → host   {"v":1,"argv":[…],"cwd":"/abs","env":{…},"isTTY":false}, then {"interrupt":true} per Ctrl-C
//   host → client   {"out":"text"} | {"err":"text"} … then one of {"exit":N} | {"local":true} | {"error":"why"}
//
// Two clients speak it: host-client.ts and its twin in C, bin/tidemark-client.c, which reads the host's
// frames exactly as JSON.stringify writes these single-key objects. A change here is a change there, and a
// new protocol number: scripts/native-client.test.ts compares the two.

import * as path from 'node:path';

export const HOST_PROTOCOL = 1;
/** A longer line is refused (a request's argv and env fit in far less). */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** The environment a command reads from its caller (state dir, debug output); the host's own is used for the rest. */
export const FORWARDED_ENV = ['TIDEMARK_STATE_DIR', 'TIDEMARK_DEBUG', 'XDG_DATA_HOME', 'HOME'] as const;

/** What runCli returns, in a resident host, for a command that must run in the caller's own process. */
export const RUN_LOCALLY = -1;

export interface HostRequest {
  v: number;
  argv: string[];
  cwd: string;
  env: Partial<Record<(typeof FORWARDED_ENV)[number], string>>;
  isTTY: boolean;
}

export type HostFrame = { out: string } | { err: string } | { exit: number } | { local: true } | { error: string };

export function hostSocketPath(stateDir: string): string {
  return path.join(stateDir, 'run', 'cli.sock');
}

/** Splits a byte stream into lines; refuses a line over MAX_FRAME_BYTES, whether its end has come or not. */
export class LineReader {
  private buf = '';
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.length > MAX_FRAME_BYTES) throw new Error(`a line longer than ${MAX_FRAME_BYTES} bytes`);
      if (line.trim() !== '') this.onLine(line);
    }
    if (this.buf.length > MAX_FRAME_BYTES) throw new Error(`a line longer than ${MAX_FRAME_BYTES} bytes`);
  }
}
