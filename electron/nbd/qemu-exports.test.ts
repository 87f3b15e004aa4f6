import { describe, expect, it } from 'vitest';
import type { QmpClient } from '../qmp/client';
import { ExportManager } from './qemu-exports';

describe('ExportManager', () => {
  it('refuses a writable export on TCP before asking QEMU anything', async () => {
    const calls: string[] = [];
    const qmp = { execute: (cmd: string) => (calls.push(cmd), Promise.reject(new Error(`unexpected ${cmd}`))) } as unknown as QmpClient;
    const m = ExportManager.for(qmp, '/tmp/tidemark-unused.sock');
    await expect(m.add({ nodeName: 'layer', writable: true }, { kind: 'tcp', host: '127.0.0.1', port: 10809, tlsCreds: 'tls0' })).rejects.toThrow(/a writable export is served on the unix socket only, not on tcp/);
    expect(calls).toEqual([]);
  });
});
