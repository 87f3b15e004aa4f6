// job:* — the host's jobs (write simulations, backups, pulls, restores).

import type { Handlers } from '../../../shared/contract';
import type { HostContext } from './context';

export function jobHandlers(ctx: HostContext): Pick<Handlers, 'job:list' | 'job:cancel'> {
  return {
    async 'job:list'(vmId) {
      return ctx.jobs.list(vmId);
    },
    async 'job:cancel'(jobId) {
      return ctx.jobs.cancel(jobId);
    },
  };
}
