// backup-pull (pull-mode backup into the repository, or --export-only: print NBD URIs and hold
// the exports open until backup-end), backup-end, and dirty-map. Like every command they go
// through the contract.

import type { PullExportOptions } from '../../../shared/contract';
import { exclusive, positiveNumber, UsageError, type ParsedArgs } from '../args';
import { BACKUP_POINT_OPTIONS, QUIESCE_OPTIONS, quiesceOf, REPO_OPTION, repoOf } from '../backup-options';
import { JSON_OPTION, type Command } from '../command';
import type { CliContext } from '../context';
import { followOwnJob } from '../own-job';
import { formatBytes, formatTable } from '../format';


/** Shows the pull job's per-disk progress on a terminal; Ctrl-C cancels the job. */
async function withPullProgress<T>(ctx: CliContext, show: boolean, call: () => Promise<T>): Promise<T> {
  let shown = false;
  const own = followOwnJob(ctx, 'pull', (j) => {
    if (!show || j.state !== 'running' || j.progress.length === 0) return;
    ctx.io.stderr(`\r${j.progress.map((p) => `${p.disk} ${formatBytes(p.done)}/${formatBytes(p.total)}`).join('  ')}\u001b[K`);
    shown = true;
  });
  const onSigint = () => {
    const job = own.current();
    if (job) void ctx.call('job:cancel', job.id).catch(() => undefined);
  };
  const offInterrupt = ctx.onInterrupt(onSigint);
  try {
    return await call();
  } finally {
    own.off();
    offInterrupt();
    if (shown) ctx.io.stderr('\r\u001b[K');
  }
}

/** Options that only pull mode has; `backup-begin --mode pull` accepts them too. */
export const PULL_ONLY_OPTIONS: Command['options'] = [
  { name: 'export-only', kind: 'flag', help: 'pull mode: copy nothing; print NBD URIs and wait for backup-end' },
  { name: 'tcp', kind: 'value', metavar: 'HOST:PORT', help: 'with --export-only: listen on TCP (needs --tls-dir)' },
  { name: 'tls-dir', kind: 'value', metavar: 'DIR', help: 'ca-cert.pem, server-cert.pem, server-key.pem for --tcp' },
  { name: 'fleece-dir', kind: 'value', metavar: 'DIR', help: 'pull mode: where fleecing images go (default: STATE/run/fleece)' },
  { name: 'fleece-max', kind: 'value', metavar: 'MIB', help: 'pull mode: give up when the fleecing images exceed this size' },
];

const pull: Command = {
  name: 'backup-pull',
  summary: 'Pull-mode backup: export a point in time over NBD and copy only the dirty extents',
  description:
    'One QMP transaction fixes the point in time (a sync=none fleecing job per disk), creates the temporary\n' +
    '"changes since" bitmaps and the new checkpoint. Each disk is exported read-only over NBD with its bitmap;\n' +
    'Tidemark copies the dirty extents (or, for a full, the allocated ones) into the same qcow2 chains as\n' +
    'backup-begin. The checkpoint counts only once the copy succeeded; any failure rolls everything back.\n' +
    'With --export-only nothing is copied: the NBD URIs are printed (nbdinfo --map=CONTEXT URI, nbdcopy URI\n' +
    'FILE, qemu-img read them) and the exports stay open until `tidemark backup-end --success|--failure`.\n' +
    'Exports listen on a unix socket in the state directory; --tcp needs --tls-dir (QEMU tls-creds-x509).',
  positionals: [],
  options: [
    REPO_OPTION,
    ...BACKUP_POINT_OPTIONS,
    ...PULL_ONLY_OPTIONS,
    ...QUIESCE_OPTIONS,
    JSON_OPTION,
  ],
  run: runPull,
};

/** Runs a pull-mode backup (also reached as `backup-begin --mode pull`). */
export async function runPull(ctx: CliContext, args: ParsedArgs): Promise<void> {
  {
    exclusive(args, 'full', 'since');
    exclusive(args, 'checkpoint', 'no-checkpoint');
    const json = args.flags.has('json');
    const exportOnly = args.flags.has('export-only');
    if (!exportOnly && (args.values.has('tcp') || args.values.has('tls-dir'))) throw new UsageError('--tcp and --tls-dir only apply with --export-only');
    const fleeceMax = positiveNumber(args, 'fleece-max');
    const quiesce = quiesceOf(args, ctx.cwd);
    const vmId = ctx.vmId();
    const options: PullExportOptions = {
      ...(repoOf(args, ctx.cwd) !== undefined ? { repo: repoOf(args, ctx.cwd) } : {}),
      ...(args.flags.has('full') ? { full: true } : {}),
      ...(args.values.has('since') ? { since: args.values.get('since')! } : {}),
      ...(args.values.has('checkpoint') ? { checkpoint: args.values.get('checkpoint')! } : {}),
      ...(args.flags.has('no-checkpoint') ? { noCheckpoint: true } : {}),
      ...(args.lists.has('disk') ? { disks: args.lists.get('disk')! } : {}),
      ...(args.values.has('fleece-dir') ? { fleeceDir: ctx.path(args.values.get('fleece-dir')!) } : {}),
      ...(fleeceMax !== undefined ? { fleeceMaxMiB: fleeceMax } : {}),
      ...(quiesce ? { quiesce } : {}),
    };
    if (!exportOnly) {
      const r = await withPullProgress(ctx, ctx.io.isTTY && !json, () => ctx.call('pull:begin', vmId, options));
      if (json) return ctx.json(r);
      const b = r.backup;
      const rows = b.disks.map((d) => [d.name, d.kind, d.since ?? '-', d.base ?? '-', formatBytes(d.virtualSize), formatBytes(d.bytesCopied), formatBytes(d.fileSize)]);
      ctx.virshOut(`Pull backup ${b.id} done: ${b.kind}${b.checkpoint ? `, checkpoint ${b.checkpoint}` : ', no checkpoint'}; fleecing peak ${formatBytes(r.fleecePeakBytes)}\n\n${formatTable(['Disk', 'Kind', 'Since', 'Base', 'Size', 'Copied', 'Layer'], rows)}`);
      return;
    }
    const tcp = args.values.get('tcp');
    if (tcp !== undefined) {
      const m = /^(.+):(\d+)$/.exec(tcp);
      if (!m) throw new UsageError(`--tcp ${JSON.stringify(tcp)} is not HOST:PORT`);
      const tlsDir = args.values.get('tls-dir');
      if (!tlsDir) throw new UsageError('--tcp needs --tls-dir: TCP exports are served with TLS only');
      options.tcp = { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), tlsDir: ctx.path(tlsDir) };
    }
    const r = await ctx.call('pull:export', vmId, options);
    if (json) ctx.out(`${JSON.stringify(r)}\n`);
    else {
      ctx.out(`${formatTable(['Disk', 'Kind', 'URI', 'Changes context'], r.exports.map((e) => [e.disk, e.kind, e.uri, e.dirtyContext ?? '-']))}\n\n`);
      ctx.out('Exports open. Read them (e.g. nbdinfo --map=CONTEXT URI), then run: tidemark backup-end --success (or --failure)\n');
    }
    const onSigint = () => void ctx.call('job:cancel', r.jobId).catch(() => undefined);
    const offInterrupt = ctx.onInterrupt(onSigint);
    try {
      const job = await ctx.call('pull:wait', vmId);
      if (json) return ctx.json(job);
      if (job.state !== 'succeeded') throw new Error(job.error ?? `the pull ended: ${job.state}`);
      ctx.virshOut(`Pull ended: success${job.log.length ? ` (${job.log[job.log.length - 1]})` : ''}`);
    } finally {
      offInterrupt();
    }
  }
}

const end: Command = {
  name: 'backup-end',
  summary: 'End an export-only pull: --success records its checkpoint, --failure rolls it back',
  positionals: [],
  description:
    'Signals the waiting `backup-begin --mode pull --export-only` process through the repository (pull:end),\n' +
    'so it needs no QMP connection (the waiting process may hold the VM\'s only free QMP socket).',
  options: [REPO_OPTION, { name: 'success', kind: 'flag', help: 'the outside copy succeeded' }, { name: 'failure', kind: 'flag', help: 'the outside copy failed' }],
  async run(ctx, args) {
    exclusive(args, 'success', 'failure');
    if (!args.flags.has('success') && !args.flags.has('failure')) throw new UsageError('say how the copy went: --success or --failure');
    const r = await ctx.call('pull:end', ctx.vmId({ recorded: true }), args.flags.has('success') ? 'success' : 'failure', repoOf(args, ctx.cwd));
    ctx.virshOut(`Pull ${r.backupId} ended`);
  },
};

const dirtyMap: Command = {
  name: 'dirty-map',
  summary: 'Where a disk changed since a checkpoint (extents and a heatmap)',
  positionals: [
    { name: 'disk', required: true, help: 'disk name' },
    { name: 'checkpoint', required: true, help: 'baseline checkpoint' },
  ],
  options: [{ name: 'buckets', kind: 'value', metavar: 'N', help: 'heatmap cells (default 64 here)' }, JSON_OPTION],
  async run(ctx, args) {
    const buckets = positiveNumber(args, 'buckets', { integer: true }) ?? 64;
    const [disk, since] = args.positionals as [string, string];
    const m = await ctx.call('dirtymap:get', ctx.vmId(), disk, since, buckets);
    if (args.flags.has('json')) return ctx.json(m);
    const shades = ' .:-=+*#%@';
    const strip = m.buckets.map((f) => (f === 0 ? ' ' : shades[Math.min(9, 1 + Math.floor(f * 9))])).join('');
    const dirty = m.extents.filter((e) => e.dirty);
    ctx.virshOut(
      `${disk}: ${formatBytes(m.dirtyBytes)} dirty since ${since} in ${dirty.length} extent(s), granularity ${formatBytes(m.granularity)}, ` +
        `read in ${m.elapsedMs.toFixed(0)} ms\n|${strip}|  (${m.buckets.length} cells of ${formatBytes(m.bucketBytes)})\n\n` +
        formatTable(['Offset', 'Length'], dirty.slice(0, 50).map((e) => [String(e.offset), formatBytes(e.length)])) +
        (dirty.length > 50 ? `\n… ${dirty.length - 50} more (see --json)` : ''),
    );
  },
};

export const pullCommands: Command[] = [pull, end, dirtyMap];
