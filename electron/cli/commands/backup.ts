// backup-* and restore: push backups into a repository of plain qcow2 chains, and restores from it.
// Long commands show per-disk progress on a terminal (stderr) and stay quiet with --json; Ctrl-C cancels.

import { shortChecksum, type BackupRecord, type JobInfo, type RestoreRequest } from '../../../shared/contract';
import { exclusive, positiveNumber, UsageError } from '../args';
import { JSON_OPTION, type Command } from '../command';
import type { CliContext } from '../context';
import { followOwnJob } from '../own-job';
import { formatBytes, formatInfo, formatTable, formatTime } from '../format';
import { PULL_ONLY_OPTIONS, runPull } from './pull';
import { BACKUP_POINT_OPTIONS, QUIESCE_OPTIONS, quiesceOf, REPO_OPTION, repoOf } from '../backup-options';


function when(ms: number): string {
  return formatTime(Math.floor(ms / 1000));
}

/** Runs `call` while showing the progress of the job of `kind` it starts (terminal only); Ctrl-C runs `cancel`. */
async function withProgress<T>(ctx: CliContext, kind: JobInfo['kind'], show: boolean, call: () => Promise<T>, cancel: (job: JobInfo | undefined) => Promise<unknown>): Promise<T> {
  let shown = false;
  const own = followOwnJob(ctx, kind, (j) => {
    if (!show || j.state !== 'running' || j.progress.length === 0) return;
    const parts = j.progress.map((p) => `${p.disk} ${formatBytes(p.done)}/${formatBytes(p.total)}${p.total > 0 ? ` (${Math.floor((p.done / p.total) * 100)}%)` : ''}`);
    ctx.io.stderr(`\r${parts.join('  ')}\u001b[K`);
    shown = true;
  });
  let cancelling = false;
  const onSigint = () => {
    if (cancelling) return;
    cancelling = true;
    if (show) ctx.io.stderr('\ncancelling…\n');
    void cancel(own.current()).catch(() => undefined);
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

function diskRows(b: BackupRecord): string[][] {
  return b.disks.map((d) => [
    d.name,
    d.kind,
    d.since ?? '-',
    d.base ?? '-',
    formatBytes(d.virtualSize),
    formatBytes(d.bytesCopied),
    d.fallbackReason ? `full because ${d.fallbackReason}` : '',
  ]);
}
const DISK_HEADER = ['Disk', 'Kind', 'Since', 'Base', 'Size', 'Copied', 'Note'];

const begin: Command = {
  name: 'backup-begin',
  summary: 'Back up the VM\'s disks into a repository (push, plain qcow2 chains)',
  description:
    'Full, incremental (changes since the newest checkpoint that has a backup: the default) or differential\n' +
    '(--since an older checkpoint). All disks go in one QMP transaction with a new checkpoint that marks the\n' +
    'backup\'s point in time; all jobs finish together or are cancelled together. A disk whose base is\n' +
    'unusable (bitmap missing or inconsistent, new or resized disk, base backup gone) is backed up in full,\n' +
    'and the reason is shown. A failed or cancelled backup (Ctrl-C, backup-cancel) rolls back its checkpoint\n' +
    'and deletes its partial images.\n' +
    '--mode pull exports the point in time over NBD and copies only the dirty extents instead (see\n' +
    '`tidemark help backup-pull`); with --export-only an outside tool does the copy.\n' +
    '--quiesce freezes the guest\'s file systems (QEMU guest agent) for the transaction only, not the copy.\n' +
    'Exit status 75 when a backup, prune or merge of the VM is already running.',
  positionals: [],
  options: [
    REPO_OPTION,
    ...BACKUP_POINT_OPTIONS,
    { name: 'speed', kind: 'value', metavar: 'MIB_PER_S', help: 'push mode: speed limit per disk' },
    { name: 'mode', kind: 'value', metavar: 'push|pull', help: 'push (QEMU copies; default) or pull (NBD export, Tidemark or an outside tool copies)' },
    ...PULL_ONLY_OPTIONS,
    ...QUIESCE_OPTIONS,
    JSON_OPTION,
  ],
  async run(ctx, args) {
    const mode = args.values.get('mode') ?? 'push';
    if (mode !== 'push' && mode !== 'pull') throw new UsageError(`--mode ${JSON.stringify(mode)}: use push or pull`);
    const pullOnly = PULL_ONLY_OPTIONS.map((o) => o.name).filter((n) => args.flags.has(n) || args.values.has(n));
    if (mode === 'pull') {
      if (args.values.has('speed')) throw new UsageError('--speed applies to push mode only');
      return runPull(ctx, args);
    }
    if (pullOnly.length > 0) throw new UsageError(`--${pullOnly[0]} needs --mode pull`);
    exclusive(args, 'full', 'since');
    exclusive(args, 'checkpoint', 'no-checkpoint');
    const speed = positiveNumber(args, 'speed');
    const quiesce = quiesceOf(args, ctx.cwd);
    const json = args.flags.has('json');
    const repo = repoOf(args, ctx.cwd);
    const vmId = ctx.vmId();
    const r = await withProgress(
      ctx, 'backup', ctx.io.isTTY && !json,
      () => ctx.call('backup:begin', vmId, {
        ...(repo !== undefined ? { repo } : {}),
        ...(args.flags.has('full') ? { full: true } : {}),
        ...(args.values.has('since') ? { since: args.values.get('since')! } : {}),
        ...(args.values.has('checkpoint') ? { checkpoint: args.values.get('checkpoint')! } : {}),
        ...(args.flags.has('no-checkpoint') ? { noCheckpoint: true } : {}),
        ...(args.lists.has('disk') ? { disks: args.lists.get('disk')! } : {}),
        ...(speed !== undefined ? { speedMiBps: speed } : {}),
        ...(quiesce ? { quiesce } : {}),
      }),
      () => ctx.call('backup:cancel', vmId, repo),
    );
    if (json) return ctx.json(r.backup);
    const b = r.backup;
    const head = `Backup ${b.id} done: ${b.kind}${b.since ? ` since ${b.since}` : ''}${b.checkpoint ? `, checkpoint ${b.checkpoint}` : ', no checkpoint'}`;
    ctx.virshOut(`${head}\n\n${formatTable(DISK_HEADER, diskRows(b))}`);
  },
};

const list: Command = {
  name: 'backup-list',
  summary: 'List the backups in a repository',
  positionals: [],
  options: [REPO_OPTION, { name: 'vm', kind: 'value', metavar: 'VM', help: 'only backups of this VM (id, name or uuid)' }, JSON_OPTION],
  async run(ctx, args) {
    const listing = await ctx.call('backup:list', repoOf(args, ctx.cwd), args.values.get('vm'));
    for (const p of listing.problems) ctx.io.stderr(`warning: ${p.message}\n`);
    if (args.flags.has('json')) return ctx.json(listing.backups);
    const rows = listing.backups.map((b) => [
      b.id,
      b.kind,
      b.since ?? '-',
      b.checkpoint ?? '-',
      when(b.startedAt),
      b.vm.name ?? b.vm.id,
      b.disks.map((d) => `${d.name}:${d.kind === b.kind ? '' : `${d.kind}:`}${formatBytes(d.bytesCopied)}`).join(' '),
    ]);
    ctx.virshOut(formatTable(['Id', 'Kind', 'Since', 'Checkpoint', 'Time', 'VM', 'Disks (copied)'], rows));
  },
};

const info: Command = {
  name: 'backup-info',
  summary: 'Show one backup: disks, chains, dependents, log',
  positionals: [{ name: 'ID', required: true, help: 'backup id (see backup-list)' }],
  options: [REPO_OPTION, { name: 'log', kind: 'flag', help: 'also print the job log' }, JSON_OPTION],
  async run(ctx, args) {
    const d = await ctx.call('backup:info', args.positionals[0]!, repoOf(args, ctx.cwd));
    if (args.flags.has('json')) return ctx.json(d);
    const b = d.backup;
    let s = formatInfo([
      ['Id', b.id],
      ['VM', `${b.vm.name ?? '-'} (${b.vm.id})`],
      ['Kind', b.kind],
      ['Since', b.since ?? '-'],
      ['Checkpoint', b.checkpoint ?? '-'],
      ['Layout', b.layout ?? '-'],
      ['Started', when(b.startedAt)],
      ['Completed', when(b.completedAt)],
      ['Duration', `${((b.completedAt - b.startedAt) / 1000).toFixed(2)} s`],
      ['QEMU', b.qemuVersion],
      ['Repository', d.repo],
      ['Dependents', d.dependents.join(', ') || '-'],
    ]);
    s += `\n${formatTable(DISK_HEADER, diskRows(b))}`;
    s += `\n${formatTable(['Disk', 'Layer file', 'Checksum', 'Chain (top first)'], b.disks.map((x) => [x.name, x.image, shortChecksum(x), d.chains.find((c) => c.disk === x.name)?.layers.join(' <- ') ?? '']))}`;
    if (args.flags.has('log')) s += `\n${d.log.join('\n')}\n`;
    ctx.virshOut(s);
  },
};

const verify: Command = {
  name: 'backup-verify',
  summary: 'Check every layer against its manifest (checksums, headers, qemu-img check)',
  description: 'Without ID: every backup in the repository, and files no manifest refers to. Exit status 1 when anything is wrong.',
  positionals: [{ name: 'ID', required: false, help: 'only this backup (and the layers it builds on)' }],
  options: [REPO_OPTION, JSON_OPTION],
  async run(ctx, args) {
    const ids = args.positionals[0] !== undefined ? [args.positionals[0]] : undefined;
    const report = await ctx.call('backup:verify', repoOf(args, ctx.cwd), ids);
    const bad = report.backups.filter((b) => !b.ok).length + report.problems.length;
    if (args.flags.has('json')) ctx.json(report);
    else {
      const rows: string[][] = [];
      for (const b of report.backups) {
        for (const d of b.disks) {
          const problems = [...d.problems, ...d.layers.flatMap((l) => l.problems.map((p) => `layer ${l.backup}: ${p}`))];
          rows.push([b.id, d.disk, String(d.layers.length), d.ok ? 'ok' : 'FAILED', problems.join('; ')]);
        }
      }
      let s = formatTable(['Backup', 'Disk', 'Layers', 'Result', 'Problem'], rows);
      for (const p of report.problems) s += `problem: ${p.file}: ${p.message}\n`;
      s += `\n${report.ok ? `All ${report.backups.length} backup(s) verified` : `${bad} problem(s) found`}\n`;
      ctx.virshOut(s);
    }
    if (!report.ok) throw new Error(`backup-verify found ${bad} problem(s)`);
  },
};

const del: Command = {
  name: 'backup-delete',
  summary: 'Delete a backup (refuses to break a chain unless --with-dependents)',
  positionals: [{ name: 'ID', required: true, help: 'backup id' }],
  options: [REPO_OPTION, { name: 'with-dependents', kind: 'flag', help: 'also delete the backups that build on it' }, JSON_OPTION],
  async run(ctx, args) {
    const r = await ctx.call('backup:delete', args.positionals[0]!, {
      ...(repoOf(args, ctx.cwd) !== undefined ? { repo: repoOf(args, ctx.cwd)! } : {}),
      ...(args.flags.has('with-dependents') ? { withDependents: true } : {}),
    });
    if (args.flags.has('json')) return ctx.json(r);
    ctx.virshOut(r.deleted.map((id) => `Backup ${id} deleted\n`).join(''));
  },
};

const status: Command = {
  name: 'backup-status',
  summary: 'Show the running backup of the VM (as virsh domjobinfo)',
  positionals: [],
  options: [REPO_OPTION, JSON_OPTION],
  async run(ctx, args) {
    const st = await ctx.call('backup:status', ctx.vmId(), repoOf(args, ctx.cwd));
    if (args.flags.has('json')) return ctx.json(st);
    if (!st.backupId) return ctx.virshOut('No backup is running');
    const done = st.progress.reduce((n, p) => n + p.done, 0);
    const total = st.progress.reduce((n, p) => n + p.total, 0);
    let s = formatInfo([
      ['Backup', st.backupId],
      ['State', st.running ? `running (${st.phase})` : 'unfinished: its process is gone (backup-cancel or the next backup cleans up)'],
      ['Kind', `${st.kind ?? '-'}${st.since ? ` since ${st.since}` : ''}`],
      ['Checkpoint', st.checkpoint ?? '-'],
      ['Started', st.startedAt ? when(st.startedAt) : '-'],
      ['Process', st.pid ?? '-'],
      ['Copied', `${formatBytes(done)} of ${formatBytes(total)}`],
    ]);
    if (st.progress.length) s += `\n${formatTable(['Disk', 'Copied', 'To copy'], st.progress.map((p) => [p.disk, formatBytes(p.done), formatBytes(p.total)]))}`;
    ctx.virshOut(s);
  },
};

const cancel: Command = {
  name: 'backup-cancel',
  summary: 'Cancel the running backup of the VM (its checkpoint is rolled back)',
  positionals: [],
  options: [REPO_OPTION, JSON_OPTION],
  async run(ctx, args) {
    const r = await ctx.call('backup:cancel', ctx.vmId(), repoOf(args, ctx.cwd));
    if (args.flags.has('json')) return ctx.json(r);
    ctx.virshOut(r.how === 'cancelled' ? `Backup ${r.backupId} cancelled` : `Unfinished backup ${r.backupId} cleaned up`);
  },
};

const restore: Command = {
  name: 'restore',
  summary: 'Restore a disk from a backup point: to a new image, or in place (VM stopped)',
  description:
    '--to PATH writes a new sparse image (qcow2, or raw for .raw/.img or --format raw), verified against the\n' +
    'manifest\'s checksums and compared with the backup; it never overwrites a file.\n' +
    '--in-place IMAGE overwrites the image of a stopped VM; the old image is kept as IMAGE.pre-restore-<time>\n' +
    'unless --no-safety-copy. Repeat --disk/--in-place pairs to restore several disks; restoring every\n' +
    'checkpointed disk of the backup opens a new branch under its checkpoint (the next incremental continues\n' +
    'from this backup); restoring only some marks them as needing a full backup.',
  positionals: [],
  options: [
    REPO_OPTION,
    { name: 'backup', kind: 'value', metavar: 'ID', help: 'the backup point' },
    { name: 'disk', kind: 'list', metavar: 'DISK', help: 'disk to restore (repeatable with --in-place)' },
    { name: 'to', kind: 'value', metavar: 'PATH', help: 'new image file' },
    { name: 'format', kind: 'value', metavar: 'qcow2|raw', help: 'format of the new image (with --to)' },
    { name: 'in-place', kind: 'list', metavar: 'IMAGE', help: 'image to overwrite, one per --disk (VM stopped)' },
    { name: 'no-safety-copy', kind: 'flag', help: 'in place: do not keep the old image' },
    JSON_OPTION,
  ],
  async run(ctx, args) {
    const backup = args.values.get('backup');
    if (backup === undefined) throw new UsageError('restore needs --backup ID');
    const disks = args.lists.get('disk') ?? [];
    if (disks.length === 0) throw new UsageError('restore needs --disk DISK');
    const to = args.values.get('to');
    const inPlace = args.lists.get('in-place');
    if ((to === undefined) === (inPlace === undefined)) throw new UsageError('restore needs exactly one of --to PATH or --in-place IMAGE');
    const format = args.values.get('format');
    if (format !== undefined && format !== 'qcow2' && format !== 'raw') throw new UsageError(`--format must be qcow2 or raw, got ${JSON.stringify(format)}`);
    if (format !== undefined && to === undefined) throw new UsageError('--format only applies to --to');
    if (args.flags.has('no-safety-copy') && inPlace === undefined) throw new UsageError('--no-safety-copy only applies to --in-place');
    const req: RestoreRequest = { backup };
    const repo = repoOf(args, ctx.cwd);
    if (repo !== undefined) req.repo = repo;
    if (to !== undefined) {
      if (disks.length !== 1) throw new UsageError('--to restores one disk: give --disk once');
      req.to = { disk: disks[0]!, path: ctx.path(to), ...(format ? { format: format as 'qcow2' | 'raw' } : {}) };
    } else {
      if (inPlace!.length !== disks.length) throw new UsageError(`give one --in-place IMAGE per --disk (${disks.length} disk(s), ${inPlace!.length} image(s))`);
      req.inPlace = disks.map((d, i) => ({ disk: d, image: ctx.path(inPlace![i]!) }));
      if (args.flags.has('no-safety-copy')) req.noSafetyCopy = true;
    }
    const json = args.flags.has('json');
    const r = await withProgress(ctx, 'restore', ctx.io.isTTY && !json, () => ctx.call('restore:run', req), (job) => (job ? ctx.call('job:cancel', job.id) : Promise.resolve()));
    if (json) return ctx.json(r);
    let s = r.restored.map((x) => `Restored ${x.disk} from backup ${r.backup} to ${x.path} (${x.format}, ${formatBytes(x.virtualSize)})${x.safetyCopy ? `; previous image kept as ${x.safetyCopy}` : ''}\n`).join('');
    if (r.branch) s += `New branch: checkpoint ${r.branch.checkpoint} under ${r.branch.parent}; the next incremental builds on backup ${r.backup}\n`;
    for (const [d, why] of Object.entries(r.needsFull)) s += `The next backup of ${d} will be full: ${why}\n`;
    ctx.virshOut(s);
  },
};

export const backupCommands: Command[] = [begin, list, info, verify, del, status, cancel, restore];
