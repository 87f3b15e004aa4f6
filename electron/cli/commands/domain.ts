// domain-info: what the VM is and which disks it has (virsh dominfo + domblklist in one).

import { JSON_OPTION, type Command } from '../command';
import { formatBytes, formatInfo, formatTable } from '../format';

const domainInfo: Command = {
  name: 'domain-info',
  summary: 'VM identity, state and disks',
  positionals: [],
  options: [JSON_OPTION],
  async run(ctx, args) {
    const vmId = ctx.vmId();
    const [vm, current] = await Promise.all([ctx.call('vm:info', vmId), ctx.call('checkpoint:current', vmId)]);
    if (args.flags.has('json')) return ctx.json(vm);
    const head = formatInfo([
      ['Name', vm.name ?? '-'],
      ['UUID', vm.uuid ?? '-'],
      ['State', vm.status],
      ['QEMU', vm.qemuVersion],
      ['Endpoint', vm.endpoint],
      ['Checkpoint', current?.name ?? '-'],
    ]);
    const rows = vm.disks.map((d) => [
      d.name,
      d.format,
      formatBytes(d.virtualSize),
      d.bitmapCapable ? String(d.bitmaps.filter((b) => b.name !== undefined).length) : `no: ${d.bitmapIncapableReason ?? 'cannot hold bitmaps'}`,
      d.imageFile,
    ]);
    ctx.virshOut(`${head}\n${formatTable(['Target', 'Format', 'Size', 'Bitmaps', 'Source'], rows)}`);
  },
};

export const domainCommands: Command[] = [domainInfo];
