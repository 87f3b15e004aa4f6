// lab:* — the demo VM: start, stop, status, and the write simulator (demo VM only: it writes over
// disk data).

import type { Handlers } from '../../../shared/contract';
import { DEMO_VM_ID, labInfo } from '../../engine/lab/demo';
import type { HostContext } from './context';

export function labHandlers(ctx: HostContext, labDir: string): Pick<Handlers, 'lab:status' | 'lab:start' | 'lab:stop' | 'lab:write'> {
  const { demo } = ctx;
  return {
    async 'lab:status'() {
      return labInfo(labDir);
    },
    async 'lab:start'() {
      await demo.startLab();
      return labInfo(labDir);
    },
    async 'lab:stop'() {
      await ctx.jobs.cancelAll(DEMO_VM_ID);
      await demo.stopLab();
      return labInfo(labDir);
    },
    async 'lab:write'(vmId, opts) {
      const vm = ctx.registry.vm(vmId);
      if (vm !== demo.driver) throw new Error(`write simulation only runs on the demo VM: it writes over disk data, which would corrupt ${vm.summary().label}`);
      const disk = await demo.writableDisk(opts.disk);
      const total = opts.mib * 1024 * 1024;
      const rate = opts.rateMibPerS ? ` at ${opts.rateMibPerS} MiB/s` : '';
      return ctx.jobs.start(
        { kind: 'write-sim', vmId, title: `Write ${opts.mib} MiB (${opts.pattern}) to ${disk.name}${rate}`, progress: [{ disk: disk.name, total }] },
        async (reporter) => {
          const writes = await demo.simulateWrites(disk, opts, reporter);
          ctx.pollNow(vmId);
          return `${writes} writes, ${total} bytes`;
        },
      ).job;
    },
  };
}
