// A small typed event emitter: `on` returns its own unsubscribe function, and one faulty
// listener never stops the others. Used by the drivers and by the host's service events.

export class TypedEmitter<M> {
  private readonly listeners = new Map<keyof M, Set<(payload: never) => void>>();

  constructor(private readonly onListenersChanged: () => void = () => undefined) {}

  on<E extends keyof M>(event: E, listener: (payload: M[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    this.onListenersChanged();
    return () => this.off(event, listener);
  }

  off<E extends keyof M>(event: E, listener: (payload: M[E]) => void): void {
    this.listeners.get(event)?.delete(listener as (payload: never) => void);
    this.onListenersChanged();
  }

  emit<E extends keyof M>(event: E, payload: M[E]): void {
    for (const l of [...(this.listeners.get(event) ?? [])]) {
      try {
        (l as (p: M[E]) => void)(payload);
      } catch {
        // one faulty listener must not stop the others
      }
    }
  }

  listenerCount(event: keyof M): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}
