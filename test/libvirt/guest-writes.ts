// Guest writes for domains that have no guest OS: HMP `qemu-io` on the disk's virtio backend,
// through libvirt (qemu-monitor-command) on one long-lived connection. The writes go through the
// device's BlockBackend, so they dirty bitmaps exactly as guest writes would.
// TESTS ONLY: qemu-monitor-command taints the domain in libvirt's log; product code never uses it
// (electron/libvirt/connection.ts refuses it unless opened with allowMonitorCommands).

import type { LibvirtConnection } from '../../electron/libvirt/connection';
import { opt } from '../../electron/libvirt/virsh-protocol';
import type { TestDomain } from './lab';

export interface WriteSpec {
  offset: number;
  length: number;
  /** Byte value 0–255 written over the range. */
  pattern: number;
}

function backend(domain: TestDomain, target: string): string {
  const disk = domain.disks.find((d) => d.target === target);
  if (!disk) throw new Error(`domain ${domain.name} has no disk ${target}`);
  if (!disk.alias) throw new Error(`domain ${domain.name} disk ${target} has no alias (start the domain through the lab)`);
  return `/machine/peripheral/${disk.alias}/virtio-backend`;
}

async function hmp(conn: LibvirtConnection, domain: TestDomain, command: string): Promise<void> {
  const out = await conn.command(['qemu-monitor-command', opt('domain', domain.uuid), '--hmp', opt('cmd', command)]);
  // HMP reports its own errors ("Error: Device … not found") in the reply; qemu-io's go to QEMU's log.
  const err = out.split('\n').find((l) => /^Error\b/i.test(l.trim()));
  if (err) throw new Error(`HMP ${command}: ${err.trim()}`);
}

export async function guestWrite(conn: LibvirtConnection, domain: TestDomain, target: string, w: WriteSpec): Promise<void> {
  if (!Number.isInteger(w.pattern) || w.pattern < 0 || w.pattern > 255) throw new Error(`pattern ${w.pattern} is not a byte`);
  await hmp(conn, domain, `qemu-io -d ${backend(domain, target)} "write -P 0x${w.pattern.toString(16)} ${w.offset} ${w.length}"`);
}

/** Flushes the disk so `qemu-img compare -U` against the live image sees every write and the qcow2 metadata. */
export async function guestFlush(conn: LibvirtConnection, domain: TestDomain, target: string): Promise<void> {
  await hmp(conn, domain, `qemu-io -d ${backend(domain, target)} "flush"`);
}
