// The web host's /session endpoint. POST {"code": "…"} from the host's own Origin exchanges the
// one-time code for the session cookie (204 + Set-Cookie) or answers 403 with a plain message;
// GET answers 200 {"loggedIn": true|false} (not 401: a browser logs every 4xx as a console error).
// The code travels in the body, never in a URL, so it reaches no log, history or Referer.

import type * as http from 'node:http';
import type { WebLogin } from './web-login';

export const SESSION_PATH = '/session';
/** A code is 43 characters; anything much larger is not a login. */
const MAX_BODY_BYTES = 1024;

export type Send = (status: number, body: string, extraHeaders?: http.OutgoingHttpHeaders) => void;

function readCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as unknown;
    const code = typeof parsed === 'object' && parsed !== null ? (parsed as { code?: unknown }).code : undefined;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

export function handleSessionRequest(req: http.IncomingMessage, send: Send, login: WebLogin, origin: string): void {
  if (req.method === 'GET' || req.method === 'HEAD') {
    return send(200, JSON.stringify({ loggedIn: login.hasSession(req.headers.cookie) }), { 'Content-Type': 'application/json; charset=utf-8' });
  }
  if (req.method !== 'POST') return send(405, 'only GET, HEAD and POST are served at /session', { Allow: 'GET, HEAD, POST' });
  if (req.headers.origin !== origin) return send(403, `Origin ${JSON.stringify(req.headers.origin ?? null)} is not ${origin}`);
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) return send(415, 'send the code as application/json {"code": "…"}');
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('error', () => undefined);
  req.on('end', () => {
    if (tooLarge) return send(413, `login request larger than ${MAX_BODY_BYTES} bytes`);
    const code = readCode(Buffer.concat(chunks).toString('utf8'));
    if (code === undefined) return send(400, 'send the code as application/json {"code": "…"}');
    const outcome = login.redeem(code);
    if (!outcome.ok) return send(403, outcome.reason);
    send(204, '', { 'Set-Cookie': outcome.setCookie });
  });
}
