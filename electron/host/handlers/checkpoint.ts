// checkpoint:* — libvirt's checkpoint verbs on one VM, through its driver.

import type { Handlers } from '../../../shared/contract';
import type { HostContext } from './context';

type CheckpointChannels =
  'checkpoint:list' | 'checkpoint:get' | 'checkpoint:current' | 'checkpoint:create' | 'checkpoint:delete' |
  'checkpoint:changes' | 'checkpoint:dumpxml' | 'checkpoint:create-xml';

export function checkpointHandlers(ctx: HostContext): Pick<Handlers, CheckpointChannels> {
  const cps = (vmId: string) => ctx.registry.vm(vmId).checkpoints;
  return {
    async 'checkpoint:list'(vmId, filter) {
      return cps(vmId).list(filter);
    },
    async 'checkpoint:get'(vmId, name) {
      return cps(vmId).get(name);
    },
    async 'checkpoint:current'(vmId) {
      return (await cps(vmId).current()) ?? null;
    },
    async 'checkpoint:create'(vmId, opts) {
      const cp = await cps(vmId).create(opts);
      await ctx.changed(vmId);
      return cp;
    },
    async 'checkpoint:delete'(vmId, name, mode) {
      const result = await cps(vmId).delete(name, mode);
      await ctx.changed(vmId);
      return result;
    },
    async 'checkpoint:changes'(vmId, name) {
      return cps(vmId).changesSince(name);
    },
    async 'checkpoint:dumpxml'(vmId, name, opts) {
      return cps(vmId).dumpXml(name, opts ?? {});
    },
    async 'checkpoint:create-xml'(vmId, xml, opts) {
      const validate = opts?.validate !== undefined ? { validate: opts.validate } : {};
      const cp = opts?.redefine ? await cps(vmId).redefine(xml, validate) : await cps(vmId).createFromXml(xml, validate);
      await ctx.changed(vmId);
      return cp;
    },
  };
}
