// Quiesce on a libvirt domain: libvirt's guest-agent calls (domfsfreeze / domfsthaw) around ONE
// libvirt call (a checkpoint create, a backup-begin). libvirt's QEMU driver rejects the checkpoint
// and backup APIs' own quiesce flag, so the freeze is ours; the thaw runs on every path, and a
// failed thaw is an error naming the command that thaws by hand, even when the call worked.

import type { LibvirtConnection } from '../../libvirt/connection';
import { fsFreeze, fsThaw } from '../../libvirt/domains';
import { LibvirtError } from '../../libvirt/errors';

const why = (e: unknown) => (e instanceof LibvirtError ? e.message.replace(/^error: /, '') : (e as Error).message);

/**
 * Runs `call` with the guest's filesystems frozen. `what` names the call's result in messages
 * ("checkpoint c1", "backup 2026…"): "no <what> was created" when the freeze fails.
 */
export async function frozen<T>(conn: LibvirtConnection, domain: { uuid: string; name: string }, what: string, call: () => Promise<T>): Promise<T> {
  try {
    await fsFreeze(conn, domain.uuid);
  } catch (e) {
    throw new Error(`cannot quiesce domain ${domain.name}: libvirt could not freeze its filesystems (${why(e)}); no ${what} was created`, { cause: e });
  }
  let done = false;
  try {
    const out = await call();
    done = true;
    return out;
  } finally {
    try {
      await fsThaw(conn, domain.uuid);
    } catch (e) {
      // eslint-disable-next-line no-unsafe-finally -- a frozen guest must never go unreported
      throw new Error(
        `${done ? `${what} was created, but` : `${what} was not created, and`} thawing the filesystems of domain ${domain.name} failed (${why(e)}); ` +
          `run virsh domfsthaw ${domain.name}`,
        { cause: e },
      );
    }
  }
}
