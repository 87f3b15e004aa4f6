// The IPC channel names between electron/main.ts and electron/preload.ts. Requests travel on ONE
// channel and replies come back as an envelope, so the renderer sees the engine's error text
// (not Electron's "Error invoking remote method …" wrapping).

import type { EventName } from '../../shared/contract';

export const INVOKE_CHANNEL = 'tidemark:invoke';

export function eventChannel(event: EventName): string {
  return `tidemark:event:${event}`;
}

export type InvokeReply = { ok: true; result: unknown } | { ok: false; error: string };

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return typeof e === 'string' ? e : 'unknown error';
}
