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

/** virsh's words for libvirt's domain states. */
const STATE_WORDS: Record<string, string> = {
  nostate: 'no state', running: 'running', blocked: 'idle', paused: 'paused', shutdown: 'in shutdown',
  shutoff: 'shut off', crashed: 'crashed', pmsuspended: 'pmsuspended',
};
const ACTIVE = new Set(['running', 'blocked', 'paused', 'shutdown', 'pmsuspended']);

const list: Command = {
  name: 'list',
  summary: 'the domains of a libvirt connection with their state (or the VMs Tidemark knows)',
  description:
    'With --connect URI (a libvirt URI): the domains there, as virsh list: running ones, or every one\n' +
    'with --all, each with its UUID and state. Without a libvirt --connect: every VM Tidemark knows (the\n' +
    'demo VM, the endpoints and libvirt connections the app added) with its connection state.\n' +
    '--json prints id (the VM id other tools and the app use), name, uuid, state and connection.',
  positionals: [],
  options: [{ name: 'all', kind: 'flag', help: 'also inactive domains' }, JSON_OPTION],
  async run(ctx, args) {
    const rows = await ctx.call('vm:list');
    if (ctx.libvirt) {
      const conn = ctx.libvirtConnectionId();
      const doms = rows
        .filter((r) => r.connectionId === conn && r.id !== conn)
        .filter((r) => args.flags.has('all') || ACTIVE.has(r.domainState ?? ''))
        .map((r) => ({ id: r.id, name: r.label, uuid: r.id.slice(r.id.lastIndexOf('#') + 1), state: r.domainState ?? 'unknown', connection: r.connection }));
      if (args.flags.has('json')) return ctx.json(doms);
      return ctx.virshOut(formatTable(['UUID', 'Name', 'State'], doms.map((d) => [d.uuid, d.name, STATE_WORDS[d.state] ?? d.state])));
    }
    const vms = rows.map((r) => ({
      id: r.id, name: r.label, kind: r.kind, endpoint: r.endpoint, connection: r.connection,
      ...(r.domainState !== undefined ? { state: r.domainState } : {}), ...(r.detail !== undefined ? { detail: r.detail } : {}),
    }));
    if (args.flags.has('json')) return ctx.json(vms);
    ctx.virshOut(formatTable(['Id', 'Name', 'Kind', 'State'], vms.map((v) => [v.id, v.name, v.kind, v.state !== undefined ? `${STATE_WORDS[v.state] ?? v.state} (${v.connection})` : v.connection])));
  },
};

export const domainCommands: Command[] = [domainInfo, list];
