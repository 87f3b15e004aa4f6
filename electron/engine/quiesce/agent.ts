// Quiesce for QMP mode: find the VM's guest agent channel, connect, and freeze around an operation.
//
// The channel is the virtserialport named org.qemu.guest_agent.0 (qom-list of /machine/peripheral
// and /machine/peripheral-anon, its "name" and "chardev" properties), and the host end is that
// chardev's unix socket (query-chardev). query-chardev also says whether the guest opened the port
// ("frontend-open": an agent runs in the guest) and whether another client holds the socket
// (QEMU serves one client at a time; a second one is accepted and never answered, so libvirt's own
// connection would make us time out): both are refused at once with the reason.

import { GuestAgentClient, type AgentClientOptions } from '../../qga/client';
import { withFrozenFilesystems, type FreezeOptions, type FrozenRun } from '../../qga/freeze';
import type { QmpExecutor } from '../vm/discovery';

export const AGENT_PORT_NAME = 'org.qemu.guest_agent.0';

export interface AgentChannel {
  /** The QOM path of the virtserialport. */
  device: string;
  chardev: string;
  /** The host end, when it is a unix socket server. */
  socket?: string;
  /** The guest opened the port (an agent runs). */
  guestConnected: boolean;
  /** Some client is connected to the host end right now. */
  hostConnected: boolean;
  filename: string;
}

interface QomProperty {
  name: string;
  type: string;
}

/** The VM's guest agent channel, or undefined when it has none. */
export async function findGuestAgent(qmp: QmpExecutor): Promise<AgentChannel | undefined> {
  for (const parent of ['/machine/peripheral', '/machine/peripheral-anon']) {
    const children = await qmp.execute<QomProperty[]>('qom-list', { path: parent }).catch(() => [] as QomProperty[]);
    for (const child of children) {
      if (!/^child<(virtserialport|virtconsole)>$/.test(child.type)) continue;
      const device = `${parent}/${child.name}`;
      const name = await qmp.execute<string>('qom-get', { path: device, property: 'name' }).catch(() => undefined);
      if (name !== AGENT_PORT_NAME) continue;
      const chardev = await qmp.execute<string>('qom-get', { path: device, property: 'chardev' });
      const all = await qmp.execute<{ label: string; filename: string; 'frontend-open'?: boolean }[]>('query-chardev');
      const c = all.find((x) => x.label === chardev);
      if (!c) return { device, chardev, guestConnected: false, hostConnected: false, filename: '' };
      // "disconnected:unix:PATH,server=on" while no client is connected, "unix:PATH,server=on" while one is.
      const m = /^(?:disconnected:)?unix:(.*?)(?:,server(?:=on)?)?(?: <-> .*)?$/.exec(c.filename);
      return {
        device, chardev, filename: c.filename, guestConnected: c['frontend-open'] === true, hostConnected: !c.filename.startsWith('disconnected:'),
        ...(m ? { socket: m[1]!.replace(/,,/g, ',') } : {}),
      };
    }
  }
  return undefined;
}

/**
 * A guest agent client for quiesce: `--agent unix:PATH` when given, else the VM's own channel.
 * Refuses with the reason when there is no channel, no agent in the guest, or no unix socket.
 */
export async function openGuestAgent(qmp: QmpExecutor, options: { agent?: string; client?: AgentClientOptions } = {}): Promise<GuestAgentClient> {
  if (options.agent !== undefined) return GuestAgentClient.connect(options.agent, options.client);
  const ch = await findGuestAgent(qmp);
  if (!ch) {
    throw new Error(`quiesce needs the QEMU guest agent, and the VM has no ${AGENT_PORT_NAME} channel (add -chardev socket,path=PATH,server=on,wait=off,id=qga0 -device virtio-serial -device virtserialport,chardev=qga0,name=${AGENT_PORT_NAME}), or give --agent unix:PATH`);
  }
  if (!ch.socket) throw new Error(`the guest agent channel (chardev ${ch.chardev}: ${ch.filename || 'unknown'}) is not a unix socket Tidemark can connect to; give --agent unix:PATH`);
  if (ch.hostConnected) {
    throw new Error(`another client is connected to the guest agent socket ${ch.socket} (libvirt, or another tool); QEMU serves one at a time. Quiesce through that client (virsh domfsfreeze), or give --agent for a free channel`);
  }
  if (!ch.guestConnected) {
    throw new Error(`quiesce needs the QEMU guest agent: the guest has not opened ${AGENT_PORT_NAME} (is qemu-guest-agent installed and running in the guest?); or run without --quiesce (crash-consistent)`);
  }
  return GuestAgentClient.connect(`unix:${ch.socket}`, options.client);
}

/** Opens the agent, freezes, runs fn, thaws (see qga/freeze.ts), and closes the agent. */
export async function quiesced<T>(
  qmp: QmpExecutor, fn: (signal: AbortSignal) => Promise<T>, options: { agent?: string; client?: AgentClientOptions; freeze?: FreezeOptions } = {},
): Promise<FrozenRun<T>> {
  const agent = await openGuestAgent(qmp, options);
  try {
    return await withFrozenFilesystems(agent, fn, options.freeze);
  } finally {
    agent.close();
  }
}
