// How a contract call travels, for every carrier: Electron IPC (electron/shell/ipc.ts, preload.ts)
// and the web host's WebSocket (electron/host/web-host.ts ↔ renderer/src/api/ws-client.ts).
//   page → host   {id, channel, args}                               (IPC: invoke(channel, args))
//   host → page   {id, ok: true, result} | {id, ok: false, error}   (IPC: the same without id)
//                 {event, payload}                                  (IPC: one channel per event)
// Errors travel as their message only, never a stack. Also here: the renderer's
// Content-Security-Policy, which the Electron shell, the web host and renderer/index.html share.

import type { EventMap, EventName } from './contract/events';

/** Path of the web host's WebSocket endpoint (authorised by the session cookie and the Origin). */
export const WS_PATH = '/ipc';

/** The outcome of one call. */
export type Reply = { ok: true; result?: unknown } | { ok: false; error: string };

/** page → host over the WebSocket. */
export interface WsRequest {
  id: number | string;
  channel: string;
  args: unknown[];
}

/** host → page: the reply to the request with this id (null when the request's id could not be read). */
export type WsReply = Reply & { id: number | string | null };

/** host → page: a pushed event. */
export interface WsEvent<E extends EventName = EventName> {
  event: E;
  payload: EventMap[E];
}

/** The text of an error as callers see it. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return typeof e === 'string' ? e : 'unknown error';
}

/** Runs a call and turns its outcome into a Reply. */
export async function settle(run: () => Promise<unknown>): Promise<Reply> {
  try {
    return { ok: true, result: await run() };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

/** The reply's result, or its error thrown with the engine's text (not a transport's wrapping). */
export function unwrapReply(reply: Reply): unknown {
  if (reply.ok) return reply.result;
  throw new Error(reply.error);
}

// ---------------------------------------------------------------- the WebSocket frames

export function encodeRequest(request: WsRequest): string {
  return JSON.stringify(request);
}

/** Parses one request frame: the id (when one could be read) and either the request or why it is bad. */
export function parseRequest(text: string): { id: number | string | null; channel?: unknown; args?: unknown; error?: string } {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return { id: null, error: 'request is not valid JSON' };
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return { id: null, error: 'request must be a JSON object {id, channel, args}' };
  const m = msg as Record<string, unknown>;
  const idOk = (typeof m.id === 'number' && Number.isFinite(m.id)) || (typeof m.id === 'string' && m.id.length <= 100);
  const id = idOk ? (m.id as number | string) : null;
  if (!idOk) return { id, error: 'request id must be a number or a short string' };
  if (typeof m.channel !== 'string') return { id, error: 'request channel must be a string' };
  if (!Array.isArray(m.args)) return { id, error: 'request args must be an array' };
  return { id, channel: m.channel, args: m.args };
}

/** A reply frame; a result JSON cannot carry (a cycle, a BigInt) becomes an error reply. */
export function encodeReply(reply: WsReply): string {
  try {
    return JSON.stringify(reply);
  } catch (e) {
    return JSON.stringify({ id: reply.id, ok: false, error: `result cannot be sent: ${errorText(e)}` } satisfies WsReply);
  }
}

/** An event frame, or undefined when the payload cannot be sent as JSON. */
export function encodeEvent(event: EventName, payload: unknown): string | undefined {
  try {
    return JSON.stringify({ event, payload });
  } catch {
    return undefined;
  }
}

/** A frame from the host: a reply, an event, or undefined for anything else (ignored, never a crash). */
export function parseHostMessage(data: unknown): WsReply | WsEvent | undefined {
  if (typeof data !== 'string') return undefined;
  let msg: unknown;
  try {
    msg = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return undefined;
  const m = msg as Record<string, unknown>;
  if (typeof m.event === 'string') return { event: m.event, payload: m.payload } as WsEvent;
  if ((typeof m.id !== 'number' && typeof m.id !== 'string') || typeof m.ok !== 'boolean') return undefined;
  if (m.ok) return { id: m.id, ok: true, result: m.result };
  return { id: m.id, ok: false, error: typeof m.error === 'string' ? m.error : 'the host replied with an error without a message' };
}

// ---------------------------------------------------------------- Content-Security-Policy

/**
 * The renderer's CSP: nothing but its own files, no inline script or style, no eval.
 * `connect`: origins the page may connect to besides 'self' (the web host's WebSocket);
 * `meta`: the variant for renderer/index.html's <meta> tag, which cannot carry frame-ancestors.
 */
export function rendererCsp(options: { connect?: string[]; meta?: boolean } = {}): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    ["connect-src 'self'", ...(options.connect ?? [])].join(' '),
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
    ...(options.meta ? [] : ["frame-ancestors 'none'"]),
  ].join('; ');
}

/** The meta CSP in renderer/index.html (test/transport-csp.test.ts keeps the file equal to it). */
export const RENDERER_META_CSP = rendererCsp({ connect: ['ws://127.0.0.1:*'], meta: true });
