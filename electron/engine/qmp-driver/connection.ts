// A QMP endpoint in the VM registry: one connection, one VM, whose id is the endpoint's id.

import { createHash } from 'node:crypto';
import { QmpClient } from '../../qmp/client';
import { formatEndpoint, parseEndpoint } from '../../qmp/endpoint';
import { QmpConnectionError } from '../../qmp/errors';
import type { VmConnection } from '../driver';
import type { DurableIdentity } from '../identity';
import { QmpVmDriver } from './driver';

/** A stable id for an endpoint: the same endpoint always gets the same id, across restarts. */
export function endpointId(endpoint: string): string {
  return `ep-${createHash('sha256').update(formatEndpoint(parseEndpoint(endpoint))).digest('hex').slice(0, 12)}`;
}

export interface QmpEndpointOptions {
  /** The endpoint, as formatEndpoint writes it. */
  endpoint: string;
  label: string;
  stateDir: string;
  mode: 'eager' | 'on-demand';
  offlineReads: boolean;
  /** The durable identity key of the VM found there at the last connection (endpoints.json). */
  rememberedKey?: string;
  /** Called when a connection finds a VM whose key differs from the remembered one. */
  onSeen?(key: string): void;
}

export class QmpEndpointConnection implements VmConnection {
  readonly id: string;
  readonly kind = 'endpoint' as const;
  readonly driver: QmpVmDriver;
  label: string;
  rememberedKey: string | undefined;

  constructor(readonly endpoint: string, private readonly o: QmpEndpointOptions) {
    this.id = endpointId(endpoint);
    this.label = o.label;
    this.rememberedKey = o.rememberedKey;
    this.driver = new QmpVmDriver({
      id: this.id,
      stateDir: o.stateDir,
      mode: o.mode,
      offlineReads: o.offlineReads,
      target: {
        kind: 'endpoint',
        label: () => this.label,
        recordedName: () => this.label,
        endpoint: () => this.endpoint,
        connect: (timeoutMs) => QmpClient.connect(this.endpoint, { connectTimeoutMs: timeoutMs }),
        absent: () => undefined,
        nothingRuns: (err) => {
          const code = ((err as { cause?: { code?: unknown } } | undefined)?.cause)?.code;
          return err instanceof QmpConnectionError && (code === 'ENOENT' || code === 'ECONNREFUSED');
        },
        remembered: (): DurableIdentity | undefined => (this.rememberedKey !== undefined ? { key: this.rememberedKey } : undefined),
        seen: (identity) => {
          if (identity.key === this.rememberedKey) return;
          this.rememberedKey = identity.key;
          this.o.onSeen?.(identity.key);
        },
      },
    });
  }

  vms(): readonly QmpVmDriver[] {
    return [this.driver];
  }

  onVmsChanged(): () => void {
    return () => undefined; // always the one VM at this endpoint
  }

  start(): void {
    this.driver.link.start();
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}
