// domain-info: what the VM is, which disks it has, and what is wrong with its checkpoints
// (virsh dominfo + domblklist, plus Tidemark's health check).

import { JSON_OPTION, type Command } from '../command';
import { formatBytes, formatInfo, formatTable } from '../format';
import { formatHealth, healthSummary } from '../health';

const domainInfo: Command = {
  name: 'domain-info',
  summary: 'VM identity, state, disks and checkpoint health',
  description:
    'Name, UUID, state, QEMU version, the QMP endpoint, the bitmap layout and the current checkpoint,\n' +
    'then the disks (Bitmaps: how many named bitmaps the disk holds, or "no" when it cannot hold any),\n' +
    'then every health problem, worst first, with what it means: bitmaps missing or inconsistent (e.g.\n' +
    'after QEMU was killed), not recording, foreign bitmaps, disks that cannot hold bitmaps, and bitmaps\n' +
    'of a checkpoint that a backup (maybe in another process) is creating now or left behind when it died.\n' +
    '--json prints the VM with "layout", "currentCheckpoint" and "health" (the problems) added.',
  positionals: [],
  options: [JSON_OPTION],
  async run(ctx, args) {
    const vmId = ctx.vmId();
    const [vm, current, health, checkpoints] = await Promise.all([
      ctx.call('vm:info', vmId),
      ctx.call('checkpoint:current', vmId),
      ctx.call('vm:health', vmId),
      ctx.call('checkpoint:list', vmId),
    ]);
    // The layout is fixed at the first checkpoint; every checkpoint records it.
    const layout = current?.layout ?? checkpoints[0]?.layout;
    if (args.flags.has('json')) return ctx.json({ ...vm, layout: layout ?? null, currentCheckpoint: current?.name ?? null, health: health.issues });
    const head = formatInfo([
      ['Name', vm.name ?? '-'],
      ['UUID', vm.uuid ?? '-'],
      ['State', vm.status],
      ['QEMU', vm.qemuVersion],
      ['Endpoint', vm.endpoint],
      ['Layout', layout ?? '- (chosen at the first checkpoint)'],
      ['Checkpoint', current?.name ?? '-'],
      ['Health', healthSummary(health.issues)],
    ]);
    const rows = vm.disks.map((d) => [
      d.name,
      d.format,
      formatBytes(d.virtualSize),
      d.bitmapCapable ? String(d.bitmaps.filter((b) => b.name !== undefined).length) : 'no',
      d.imageFile,
    ]);
    let out = `${head}\n${formatTable(['Target', 'Format', 'Size', 'Bitmaps', 'Source'], rows)}`;
    if (health.issues.length > 0) out += `\nHealth:\n${formatHealth(health.issues)}`;
    ctx.virshOut(out);
  },
};

export const domainCommands: Command[] = [domainInfo];
