// The libvirt connection as a backup uses it: the handle's own connection (one virsh, shared with
// the driver), brought back after a loss before anything is cleaned up. A backup never carries on
// across a loss (it cannot watch its job meanwhile), but its rollback must reach libvirt again:
// libvirtd comes back a few seconds after a restart, an SSH link after the network does.

import type { LibvirtConnection } from '../../../libvirt/connection';
import { LibvirtConnectionError } from '../../../libvirt/errors';

const reconnecting = new WeakMap<LibvirtConnection, Promise<void>>();

/** Reconnects `conn` if it was lost, retrying until `timeoutMs`; one attempt at a time per connection. */
export async function ensureConnected(conn: LibvirtConnection, timeoutMs = 60_000): Promise<void> {
  if (!conn.lost) return;
  const running = reconnecting.get(conn);
  if (running) return running;
  const attempt = (async () => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!conn.lost) return; // someone else (the driver) reconnected it meanwhile
      try {
        await conn.reconnect();
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new LibvirtConnectionError(conn.uri.text, `cannot reach libvirt at ${conn.uri.text} again within ${Math.round(timeoutMs / 1000)} s: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();
  reconnecting.set(conn, attempt);
  try {
    await attempt;
  } finally {
    reconnecting.delete(conn);
  }
}

/** True for a failure that is the connection's, not libvirt's answer (the command may or may not have run). */
export function isConnectionLoss(e: unknown): boolean {
  return e instanceof LibvirtConnectionError;
}
