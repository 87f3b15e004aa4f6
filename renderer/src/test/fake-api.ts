// A fake AppApi for unit tests: scripted invoke handlers (recording every call) and an emit()
// that pushes events to the registered listeners, as the host would.

import type { AppApi, Args, EventMap, EventName, InvokeChannel, Result } from '../../../shared/contract';
import type { Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';

type Handler<C extends InvokeChannel> = (...args: Args<C>) => Result<C> | Promise<Result<C>>;

export class FakeApi implements AppApi {
  readonly transport = 'memory' as const;
  readonly calls: { channel: InvokeChannel; args: unknown[] }[] = [];
  private handlers = new Map<InvokeChannel, (...a: unknown[]) => unknown>();
  private listeners = new Map<EventName, Set<(p: unknown) => void>>();

  handle<C extends InvokeChannel>(channel: C, fn: Handler<C>): this {
    this.handlers.set(channel, fn as (...a: unknown[]) => unknown);
    return this;
  }

  async invoke<C extends InvokeChannel>(channel: C, ...args: Args<C>): Promise<Result<C>> {
    this.calls.push({ channel, args });
    const fn = this.handlers.get(channel);
    if (!fn) throw new Error(`fake api: no handler for ${channel}`);
    return (await fn(...args)) as Result<C>;
  }

  on<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): () => void {
    const set = this.listeners.get(event) ?? new Set();
    this.listeners.set(event, set);
    set.add(listener as (p: unknown) => void);
    return () => set.delete(listener as (p: unknown) => void);
  }

  emit<E extends EventName>(event: E, payload: EventMap[E]): void {
    for (const fn of this.listeners.get(event) ?? []) fn(payload);
  }

  listenerCount(event: EventName): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  callsTo(channel: InvokeChannel): unknown[][] {
    return this.calls.filter((c) => c.channel === channel).map((c) => c.args);
  }
}

export const MiB = 1024 * 1024;

export function disk(name: string, over: Partial<DiskInfo> = {}): DiskInfo {
  return {
    name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1024 * MiB, imageFile: `/lab/${name}.qcow2`,
    granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [], ...over,
  };
}

export function vmInfo(id: string, disks: DiskInfo[]): VmInfo {
  return { id, name: id, endpoint: `unix:/tmp/${id}.sock`, status: 'running', qemuVersion: '7.2.22', disks };
}

export function checkpoint(name: string, parent: string | undefined, createdAtMs: number, disks: string[], layout: Checkpoint['layout'] = 'independent'): Checkpoint {
  return {
    name, parent, createdAtMs, creationTime: Math.floor(createdAtMs / 1000), layout,
    disks: disks.map((d) => ({ name: d, checkpoint: 'bitmap' as const, bitmap: name })),
  };
}
