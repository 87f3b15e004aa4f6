// The wire format between a browser page and the web host (electron/host/web-host.ts):
//   page → host   {id, channel, args}
//   host → page   {id, ok: true, result} | {id, ok: false, error} | {event, payload}
// The host keeps its own copy of these shapes (it may not import renderer/); both follow this comment.

import type { EventMap, EventName } from '../../../shared/contract';

export interface WsRequest {
  id: number;
  channel: string;
  args: unknown[];
}

export type WsReply = { id: number | null; ok: true; result?: unknown } | { id: number | null; ok: false; error: string };

export interface WsEvent<E extends EventName = EventName> {
  event: E;
  payload: EventMap[E];
}

/** Path of the WebSocket endpoint on the host; the token goes in the query string. */
export const WS_PATH = '/ipc';
