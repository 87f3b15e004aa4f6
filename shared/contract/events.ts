// The contract's pushed events: what the host sends to every window or page while it listens.

import type { BitmapInfo } from '../domain';
import type { JobInfo } from './lab';
import type { VmSummary } from './vm';

export interface EventMap {
  'vm:list': VmSummary[];
  /** Live bitmap state of a VM's disks (pushed on change while connected). */
  'vm:bitmaps': { vmId: string; at: number; disks: { disk: string; bitmaps: BitmapInfo[] }[] };
  'checkpoints:changed': { vmId: string };
  'job:update': JobInfo;
  // issue 4: the Electron shell (menu "Open backup repository…" → the directory the user chose)
  'shell:open-repository': { path: string };
}
export type EventName = keyof EventMap;

/** Every event name, for transports that subscribe to all of them. */
export const EVENT_NAMES = ['vm:list', 'vm:bitmaps', 'checkpoints:changed', 'job:update', 'shell:open-repository'] as const satisfies readonly EventName[];

// EVENT_NAMES lists every key of EventMap: a name missing there fails this constraint at compile time.
type NoneMissing<T extends never> = T;
type _EveryEventListed = NoneMissing<Exclude<EventName, (typeof EVENT_NAMES)[number]>>;
