// vm:* — the VM list (add, remove) and one VM's description and health.

import type { Handlers } from '../../../shared/contract';
import { looksLikeLibvirtUri } from '../registry';
import type { HostContext } from './context';

export function vmHandlers(ctx: HostContext): Pick<Handlers, 'vm:list' | 'vm:add' | 'vm:remove' | 'vm:info' | 'vm:health'> {
  const { registry } = ctx;
  return {
    async 'vm:list'() {
      if (!ctx.eager) await registry.refreshLibvirt();
      return registry.summaries();
    },
    async 'vm:add'(endpointText, label) {
      const opts = { ...(label !== undefined ? { label } : {}), persist: true };
      /** Saves endpoints.json with the new connection (undone if the save fails), then announces and starts it. */
      const keep = (connection: { id: string; start(): void }, added: boolean) => {
        if (!added) return;
        try {
          registry.save();
        } catch (err) {
          registry.remove(connection.id);
          throw err;
        }
        ctx.pushVmList();
        if (ctx.eager) connection.start();
      };
      if (looksLikeLibvirtUri(endpointText)) {
        const { connection, added } = registry.addLibvirt(endpointText, opts);
        keep(connection, added);
        return registry.summaries().find((s) => s.connectionId === connection.id) ?? connection.summary();
      }
      const { connection, added } = registry.addEndpoint(endpointText, opts);
      keep(connection, added);
      return connection.driver.summary();
    },
    async 'vm:remove'(vmId) {
      // A libvirt domain is removed with its connection (the URI): pass the connection's id.
      const entry = registry.entry(vmId);
      if (!entry) throw new Error(`no VM with id ${JSON.stringify(vmId)} (see vm:list)`);
      if (entry.connection.kind === 'demo') throw new Error('the demo VM cannot be removed from the list (stop it with lab:stop)');
      if (!entry.endpoint && !entry.libvirt) throw new Error(`VM ${vmId} belongs to a connection that is not an endpoint; it cannot be removed on its own`);
      await ctx.jobs.cancelAll(vmId);
      await entry.connection.close();
      registry.remove(vmId);
      if (!entry.transient) {
        try {
          registry.save();
        } catch (err) {
          registry.reinstate(vmId, entry);
          throw err;
        }
      }
      ctx.pushVmList();
    },
    async 'vm:info'(vmId) {
      return registry.vm(vmId).info();
    },
    async 'vm:health'(vmId) {
      return registry.vm(vmId).health();
    },
  };
}
