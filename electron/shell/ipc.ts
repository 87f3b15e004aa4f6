// The IPC channel names between electron/main.ts and electron/preload.ts. Requests travel on ONE
// channel and replies come back as the transport's envelope (shared/transport.ts), so the renderer
// sees the engine's error text (not Electron's "Error invoking remote method …" wrapping).

import type { EventName } from '../../shared/contract';
import type { Reply } from '../../shared/transport';

export { errorText } from '../../shared/transport';

export const INVOKE_CHANNEL = 'tidemark:invoke';

export function eventChannel(event: EventName): string {
  return `tidemark:event:${event}`;
}

/** What main returns for INVOKE_CHANNEL. */
export type InvokeReply = Reply;
