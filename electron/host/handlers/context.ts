// What every handler group works with: the registry (VMs by id), the job runner, the events and
// the host's own bookkeeping after a change. Handlers speak to VMs only through VmDriver.

import type { EventMap } from '../../../shared/contract';
import type { DemoConnection } from '../../engine/lab/demo';
import type { TypedEmitter } from '../../engine/emitter';
import type { JobRunner } from '../jobs';
import type { VmRegistry } from '../registry';

export type ServiceEvents = Pick<TypedEmitter<EventMap>, 'on' | 'off' | 'emit' | 'listenerCount'>;

export interface HostContext {
  stateDir: string;
  /** The demo VM's folder (its sockets: schedules name its secondary one). */
  labDir: string;
  /** Connect now and keep reconnecting (app, web host), or when a call needs it (CLI). */
  eager: boolean;
  registry: VmRegistry;
  demo: DemoConnection;
  jobs: JobRunner;
  events: ServiceEvents;
  pushVmList(): void;
  /** After a change this host made to a VM: tell listeners now rather than at the next poll. */
  changed(vmId: string): Promise<void>;
  /** Poll one VM's bitmaps now (e.g. after writes). */
  pollNow(vmId: string): void;
}
