// vm:* — the VM list (add, remove) and one VM's description and health.

import type { Handlers } from '../../../shared/contract';
import type { HostContext } from './context';

export function vmHandlers(ctx: HostContext): Pick<Handlers, 'vm:list' | 'vm:add' | 'vm:remove' | 'vm:info' | 'vm:health'> {
  const { registry } = ctx;
  return {
    async 'vm:list'() {
      return registry.summaries();
    },
    async 'vm:add'(endpointText, label) {
      const { connection, added } = registry.addEndpoint(endpointText, { ...(label !== undefined ? { label } : {}), persist: true });
      if (added) {
        try {
          registry.save();
        } catch (err) {
          registry.remove(connection.id);
          throw err;
        }
        ctx.pushVmList();
        if (ctx.eager) connection.start();
      }
      return connection.driver.summary();
    },
    async 'vm:remove'(vmId) {
      const entry = registry.entry(vmId);
      if (!entry) throw new Error(`no VM with id ${JSON.stringify(vmId)} (see vm:list)`);
      if (entry.connection.kind === 'demo') throw new Error('the demo VM cannot be removed from the list (stop it with lab:stop)');
      if (!entry.endpoint) throw new Error(`VM ${vmId} belongs to a connection that is not an endpoint; it cannot be removed on its own`);
      await ctx.jobs.cancelAll(vmId);
      await entry.connection.close();
      registry.remove(vmId);
      if (!entry.transient) {
        try {
          registry.save();
        } catch (err) {
          registry.reinstate(vmId, entry.connection, entry.endpoint, entry.transient);
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
