// lab start|stop|status|write: the demo VM (a real QEMU without guest OS) and its write simulator.

import type { JobInfo, LabInfo, WritePattern } from '../../../shared/contract';
import { positiveNumber, UsageError } from '../args';
import { JSON_OPTION, type Command } from '../command';
import type { CliContext } from '../context';
import { formatBytes, formatInfo, formatTable } from '../format';
import { healthWarnings } from '../health';

function labText(lab: LabInfo): string {
  const head = formatInfo([
    ['State', lab.running ? 'running' : 'shut off'],
    ['QMP (app)', lab.qmp],
    ['QMP (tools)', lab.qmpSecondary],
  ]);
  if (lab.disks.length === 0) return head;
  const rows = lab.disks.map((d) => [d.name, formatBytes(d.sizeBytes), d.legacy ? 'no (qcow2 v2)' : 'yes', d.image]);
  return `${head}\n${formatTable(['Target', 'Size', 'Bitmaps', 'Image'], rows)}`;
}

const start: Command = {
  name: 'lab start',
  resident: false,
  summary: 'Start the demo VM (QEMU with qcow2 disks, no guest OS)',
  description:
    'Starts a real QEMU (TCG, no guest OS) under STATE/lab with disks vda (1 GiB), vdb (512 MiB) and\n' +
    'vdc (64 MiB, qcow2 v2: cannot hold bitmaps), reusing the disks of an earlier run. It runs on after\n' +
    'this command returns; other commands reach it without --connect. Problems with existing\n' +
    'checkpoints (e.g. inconsistent bitmaps after QEMU was killed) are printed as warnings.',
  positionals: [],
  options: [JSON_OPTION],
  async run(ctx, args) {
    const lab = await ctx.call('lab:start');
    // After an unclean stop the checkpoints' bitmaps come back inconsistent: say so now.
    const health = await ctx.call('vm:health', ctx.demoVmId).catch((e: Error) => e);
    if (health instanceof Error) ctx.io.stderr(`warning: cannot check the checkpoints: ${health.message}\n`);
    else ctx.io.stderr(healthWarnings(health.issues));
    if (args.flags.has('json')) return ctx.json(lab);
    ctx.virshOut(`Demo VM started\n\n${labText(lab)}`);
  },
};

const stop: Command = {
  name: 'lab stop',
  resident: false,
  summary: 'Stop the demo VM (QMP quit, so bitmaps are stored)',
  description: 'Stops the demo VM with QMP quit, which writes its persistent bitmaps to the images\n(SIGTERM, then SIGKILL, if QEMU does not answer). Running jobs are cancelled first.',
  positionals: [],
  options: [JSON_OPTION],
  async run(ctx, args) {
    const was = await ctx.call('lab:status');
    const lab = await ctx.call('lab:stop');
    if (args.flags.has('json')) return ctx.json(lab);
    ctx.virshOut(was.running ? 'Demo VM stopped\n' : 'Demo VM is not running\n');
  },
};

const status: Command = {
  name: 'lab status',
  summary: 'Show whether the demo VM runs, its sockets and disks',
  description: 'QMP (app) is the socket the desktop app and the web host use; QMP (tools) the one the CLI\nuses, so both can act at once.',
  positionals: [],
  options: [JSON_OPTION],
  async run(ctx, args) {
    const lab = await ctx.call('lab:status');
    if (args.flags.has('json')) return ctx.json(lab);
    ctx.virshOut(labText(lab));
  },
};

/** Starts the job and waits for its end; shows progress on a terminal. */
async function runJob(ctx: CliContext, start: () => Promise<JobInfo>, showProgress: boolean): Promise<JobInfo> {
  const updates: JobInfo[] = [];
  let wake: () => void = () => undefined;
  const off = ctx.service.events.on('job:update', (j) => {
    updates.push(j);
    wake();
  });
  const onSigint = () => void ctx.call('job:cancel', job.id).catch(() => undefined);
  let job!: JobInfo;
  let offInterrupt = () => undefined as void;
  try {
    job = await start();
    offInterrupt = ctx.onInterrupt(onSigint);
    let last = job;
    for (;;) {
      const mine = updates.filter((u) => u.id === job.id);
      last = mine[mine.length - 1] ?? last;
      if (showProgress) {
        const done = last.progress.reduce((n, p) => n + p.done, 0);
        const total = last.progress.reduce((n, p) => n + p.total, 0);
        const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
        ctx.io.stderr(`\r${last.title}: ${formatBytes(done)} / ${formatBytes(total)} (${pct}%)\u001b[K`);
      }
      if (last.state !== 'running') {
        if (showProgress) ctx.io.stderr('\n');
        return last;
      }
      updates.length = 0;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    off();
    offInterrupt();
  }
}

const write: Command = {
  name: 'lab write',
  summary: 'Write to a demo VM disk like a guest would (dirties bitmaps)',
  description:
    'Writes through the disk\'s own BlockBackend (HMP qemu-io), so dirty bitmaps count the writes as\n' +
    'guest writes; overwrites the disk\'s data (demo VM only). Progress is shown on a terminal;\n' +
    'Ctrl-C cancels.',
  positionals: [],
  options: [
    { name: 'disk', kind: 'value', metavar: 'DISK', help: 'disk to write to, e.g. vda', required: true },
    { name: 'pattern', kind: 'value', metavar: 'random|sequential|hotspot', help: 'where the writes land (default: random)' },
    { name: 'mib', kind: 'value', metavar: 'N', help: 'how much to write, in MiB (whole number)', required: true },
    { name: 'rate', kind: 'value', metavar: 'MIB_PER_S', help: 'throttle to this rate (default: as fast as QEMU takes it)' },
    JSON_OPTION,
  ],
  async run(ctx, args) {
    const disk = args.values.get('disk')!;
    const pattern = args.values.get('pattern') ?? 'random';
    if (!['random', 'sequential', 'hotspot'].includes(pattern)) throw new UsageError(`--pattern must be random, sequential or hotspot, got ${JSON.stringify(pattern)}`);
    const mib = positiveNumber(args, 'mib', { integer: true })!;
    const rate = positiveNumber(args, 'rate');
    const json = args.flags.has('json');
    const job = await runJob(
      ctx,
      () => ctx.call('lab:write', ctx.demoVmId, { disk, pattern: pattern as WritePattern, mib, ...(rate !== undefined ? { rateMibPerS: rate } : {}) }),
      ctx.io.isTTY && !json,
    );
    if (job.state === 'cancelled') throw new Error(`write simulation cancelled after ${formatBytes(job.progress[0]?.done ?? 0)}`);
    if (job.state === 'failed') throw new Error(job.error ?? 'write simulation failed');
    if (json) return ctx.json(job);
    ctx.virshOut(`Wrote ${mib} MiB to ${disk} (${pattern})`);
  },
};

export const labCommands: Command[] = [start, stop, status, write];
