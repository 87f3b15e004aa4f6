// Side-by-side bench (figures, never pass/fail): Tidemark through its CLI against the peers that do
// the same job on this machine — virsh / libvirt (push, checkpoints), libvirt pull + a plain libnbd
// dirty-extent reader, virtnbdbackup / virtnbdrestore — and qemu-img convert as the physical
// reference. Same data for everyone: vda 1 GiB of random data (+ vdb 512 MiB for the 2-disk
// checkpoint, + vdc 1 TiB sparse), 64 MiB dirty as 256 × 256 KiB (4 MiB stride on vda, 4 GiB on vdc).
// Tidemark drives its lab VM over QMP, the peers a guest-less TCG libvirt domain with identical disks.
// Tools are interleaved within each round, in an order of its own (shuffled, seeded by the round, so
// no step always follows the same one); writeback is settled before each timed step; each row prints
// every tool's median [min..max] and Tidemark's paired median ratio to each peer and to the reference.
// The incremental rows also time QEMU's own steps of the same backup, by hand over QMP (peers/floor.ts):
// the floor under every tool, and on the 1 TiB disk the floor of the "cost follows dirty bytes" goal.
// A peer that is not installed is skipped with a line saying so.
// Run: npx tsx bench/peers.ts [--rounds N] [--rows checkpoint,full,incremental,restore] [--json] [--host]
// --host: Tidemark's commands run in a resident `tidemark host` (as virsh's in libvirtd), started before the rows;
// bin/tidemark then hands them to it through the native thin client (bin/tidemark-client.c), when built
// --no-extra-ca: `node -e 0` and the resident host run without NODE_EXTRA_CA_CERTS, which Node parses at every start
// (proc.ts nodeEnv); the CLI, run as a program, always starts Node without it (bin/tidemark.js's shebang)
// BENCH_BASELINE=<another checkout, built> adds that checkout's CLI to the checkpoint, full push and restore rows
// as one more tool, interleaved (an A/B of a change inside one run).

import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkpointXml } from './peers/libvirt';
import { DISKS, Machines, VDC_STRIDE, vdcStrideTitle } from './peers/machines';
import { findOnPath } from '../electron/os/find-on-path';
import { load, nodeEnv, nodeEnvNote, pythonHas, run, runNodeWithoutExtraCa, settle, tidemarkCommand, warmPoolNote } from './peers/proc';
import { formatRow, median, pairedByRound, Row, shuffled, writeJson, type Tool } from './peers/report';
import { startHost, type RunningHost } from './peers/host';
import { Steps, URI, type Timed } from './peers/steps';
import { QemuFloor } from './peers/floor';

const ROWS = ['checkpoint', 'full', 'incremental', 'restore'] as const;
type RowName = (typeof ROWS)[number];

function options(argv: string[]): { rounds: number; rows: RowName[]; json: boolean; host: boolean; noExtraCa: boolean } {
  let rounds = 5;
  let noExtraCa = false;
  let rows: RowName[] = [...ROWS];
  let json = false;
  let host = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--rounds') rounds = Number(argv[++i]);
    else if (a === '--rows') rows = argv[++i]!.split(',') as RowName[];
    else if (a === '--json') json = true;
    else if (a === '--host') host = true;
    else if (a === '--no-extra-ca') noExtraCa = true;
    else throw new Error(`unknown argument ${a} (use --rounds N, --rows ${ROWS.join(',')}, --json, --host, --no-extra-ca)`);
  }
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  for (const r of rows) if (!ROWS.includes(r)) throw new Error(`unknown row ${r} (rows: ${ROWS.join(', ')})`);
  if (host && process.env.BENCH_BASELINE) throw new Error('--host and BENCH_BASELINE do not mix: the host holds the lab VM\'s tool socket the baseline CLI would connect to');
  return { rounds, rows, json, host, noExtraCa };
}

/** Which peers can run here; each missing one is named with what it needs. */
async function availablePeers(): Promise<{ libvirt: boolean; virtnbd: boolean; skipped: string[] }> {
  const skipped: string[] = [];
  let libvirt = Boolean(findOnPath('virsh')) && pythonHas('libvirt', 'libvirt_qemu', 'nbd');
  if (!libvirt) skipped.push('virsh and libvirt pull: need virsh, and python3-libvirt + python3-libnbd for /usr/bin/python3 (apt-get install libvirt-clients python3-libvirt python3-libnbd)');
  if (libvirt) {
    const up = await run('virsh', ['-c', URI, 'version']).then(() => true, () => false);
    if (!up) {
      libvirt = false;
      skipped.push('virsh and libvirt pull: libvirtd does not answer on qemu:///system (no systemd here: as root, `virtlogd --daemon; virtlockd --daemon; libvirtd --daemon`)');
    }
  }
  const virtnbd = libvirt && Boolean(findOnPath('virtnbdbackup')) && Boolean(findOnPath('virtnbdrestore'));
  if (libvirt && !virtnbd) skipped.push('virtnbdbackup / virtnbdrestore: not installed (apt-get install virtnbdbackup)');
  return { libvirt, virtnbd, skipped };
}

async function main(): Promise<void> {
  const opt = options(process.argv.slice(2));
  runNodeWithoutExtraCa(opt.noExtraCa);
  const peers = await availablePeers();
  // Tidemark's CLI runs its bundle (out/cli) when it is fresh, else out/node or tsx: build it, as a user's build would.
  execFileSync('npm', ['run', '--silent', 'build:node'], { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const m = Machines.create();
  let stopping: Promise<void> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    console.error(`\n${sig}: removing the bench's domain, VM and files…`);
    stopping = m.close().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const rows: Row[] = [];
  let resident: RunningHost | undefined;
  try {
    console.log(`Tidemark side by side with its peers: ${opt.rounds} rounds, rows ${opt.rows.join(', ')}; ${os.cpus().length} CPUs, load ${load()}`);
    for (const s of peers.skipped) console.log(`skipped: ${s}`);
    console.log(warmPoolNote());
    console.log(nodeEnvNote());
    m.makeImages(peers.libvirt);
    await m.startLab();
    if (opt.host) {
      resident = await startHost(m.p('state'));
      hostLabel = ' (resident host)';
    }
    if (peers.libvirt) await m.startLibvirt(peers.virtnbd);
    const s = new Steps(m);
    const ctx: Ctx = { m, s, rounds: opt.rounds, host: opt.host, noExtraCa: opt.noExtraCa, libvirt: peers.libvirt, virtnbd: peers.virtnbd };
    if (opt.rows.includes('checkpoint')) rows.push(await checkpointRow(ctx));
    if (opt.rows.includes('full')) rows.push(await fullRow(ctx));
    let chain: Chain | undefined;
    if (opt.rows.includes('incremental')) {
      const inc = await incrementalRows(ctx);
      rows.push(...inc.rows);
      chain = inc.chain;
    }
    if (opt.rows.includes('restore')) rows.push(await restoreRow(ctx, chain));
  } finally {
    // what was measured is kept, also when a later row failed
    if (opt.json && rows.length > 0) {
      const file = writeJson({ when: new Date().toISOString(), rounds: opt.rounds, cpus: os.cpus().length, node: process.version, skipped: peers.skipped, rowsAsked: opt.rows, residentHost: opt.host, warmPool: warmPoolNote(), nodeEnv: nodeEnvNote() }, rows);
      console.log(`\nresults: ${file}`);
    }
    await resident?.stop().catch(() => undefined);
    // After Ctrl-C the step that was running fails too (its tool got the signal): wait for the clean-up
    // the signal started, or main's rejection would exit before the lab VM is stopped.
    if (stopping) await stopping;
    else await m.close();
  }
}

interface Ctx {
  m: Machines;
  s: Steps;
  rounds: number;
  /** --host: a resident host runs, and the pull rows also hand it their command directly. */
  host: boolean;
  /** --no-extra-ca (proc.ts nodeEnv) */
  noExtraCa: boolean;
  libvirt: boolean;
  virtnbd: boolean;
}

/** Runs each round's steps in an order of its own (shuffled with the round as seed) and files every result into its row. */
async function interleave(ctx: Ctx, rows: Row[], steps: { row: Row; tool: string; fn: (r: number) => Promise<Timed> }[], before?: (r: number) => Promise<void>): Promise<void> {
  for (let r = 0; r < ctx.rounds; r++) {
    await before?.(r);
    for (const st of shuffled(steps, r + 1)) {
      const t = await st.fn(r);
      st.row.add(st.tool, r, t.ms, t.detail);
    }
    for (const row of rows) row.loads.push(load());
    process.stderr.write(`  round ${r + 1}/${ctx.rounds} done (load ${load()})\n`);
  }
}

/** ' (resident host)' when --host runs one: the Tidemark rows are labelled so. */
let hostLabel = '';
const TM = (label = 'tidemark CLI'): Tool => ({ key: 'tidemark', label: `${label}${hostLabel}`, role: 'tidemark' });
/**
 * The pull rows' tools on two footings (report.ts): the libvirt peer in its long-lived helper
 * (resident) and as a fresh script (process); with --host, Tidemark's command also straight to the
 * host (resident). The CLI keeps no footing, so its ratio to the helper stays comparable with
 * earlier runs.
 */
function pullTools(ctx: Ctx): Tool[] {
  return [
    TM(),
    ...(ctx.host ? [{ key: 'tidemark-in-host', label: 'tidemark, request straight to the resident host', role: 'tidemark' as const, footing: 'resident' as const }] : []),
    ...(ctx.libvirt
      ? [
          { key: 'libvirt', label: 'libvirt pull + libnbd reader, in the helper', role: 'peer' as const, footing: 'resident' as const },
          { key: 'libvirt-script', label: 'libvirt pull + libnbd reader, as a script', role: 'peer' as const, footing: 'process' as const },
        ]
      : []),
  ];
}
/** QEMU's own steps of a row's backup, by hand (peers/floor.ts): the floor beside Tidemark and the peers. */
const QEMU_STEPS: Tool = { key: 'qemu-steps', label: "QEMU's own steps alone, by hand over QMP", role: 'reference' };
/** BENCH_BASELINE: another built checkout whose CLI runs as one more tool in the same rounds. */
const BASELINE = process.env.BENCH_BASELINE;
const BASELINE_BIN = BASELINE ? tidemarkCommand(BASELINE) : undefined;
const baselineTools = (): Tool[] => (BASELINE ? [{ key: 'baseline', label: `tidemark CLI of ${BASELINE}`, role: 'peer' }] : []);

async function checkpointRow(ctx: Ctx): Promise<Row> {
  const row = new Row('checkpoint create, 2 disks (CLI end to end)', [
    TM(),
    ...(ctx.libvirt ? [{ key: 'virsh', label: 'virsh checkpoint-create-as', role: 'peer' as const }] : []),
    ...baselineTools(),
    // not a peer: the floor any Node CLI starts from
    { key: 'node', label: 'node -e 0 (Node start-up alone)', role: 'reference' },
    // what the variable costs every Node start, measured in the same rounds
    ...(process.env.NODE_EXTRA_CA_CERTS ? [{ key: 'node-ca', label: `node -e 0, NODE_EXTRA_CA_CERTS ${ctx.noExtraCa ? 'as the machine sets it' : 'unset'}`, role: 'reference' as const }] : []),
  ]);
  const steps = [
    { row, tool: 'tidemark', fn: (r: number) => ctx.s.tmCheckpoint(`ck${r}`) },
    { row, tool: 'node', fn: async () => ({ ms: (await run('node', ['-e', '0'], { env: nodeEnv() })).ms }) },
  ];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const other = nodeEnv({}, !ctx.noExtraCa); // the footing this run does not use
    steps.push({ row, tool: 'node-ca', fn: async () => ({ ms: (await run('node', ['-e', '0'], { env: other })).ms }) });
  }
  if (ctx.libvirt) steps.push({ row, tool: 'virsh', fn: (r) => ctx.s.virshCheckpoint(`ck${r}`) });
  if (BASELINE_BIN) {
    steps.push({ row, tool: 'baseline', fn: (r) => ctx.s.tmCheckpoint(`base${r}`, BASELINE_BIN) });
    await ctx.s.tmCheckpoint('base-warm-up', BASELINE_BIN); // writes its code cache
  }
  await ctx.s.tmCheckpoint('warm-up'); // the first run of a fresh state directory records the VM
  await interleave(ctx, [row], steps);
  console.log(formatRow(row));
  return row;
}

async function fullRow(ctx: Ctx): Promise<Row> {
  const { m, s } = ctx;
  const row = new Row('full push backup, vda 1 GiB of random data', [
    TM(),
    ...(ctx.libvirt ? [{ key: 'virsh', label: 'virsh backup-begin', role: 'peer' as const }] : []),
    ...baselineTools(),
    { key: 'qemu-img', label: 'qemu-img convert -U -t writeback', role: 'reference' },
  ]);
  const steps = [
    { row, tool: 'tidemark', fn: (r: number) => s.tmFullPush(`full${r}`) },
    { row, tool: 'qemu-img', fn: () => s.qemuImgConvert(m.lab!.image('vda'), true) },
  ];
  if (BASELINE_BIN) steps.push({ row, tool: 'baseline', fn: (r: number) => s.tmFullPush(`base${r}`, BASELINE_BIN) });
  if (ctx.libvirt) {
    steps.push({ row, tool: 'virsh', fn: async (r: number) => {
      const t = await s.virshPush('vda', `vfull${r}`);
      await m.lv!.helper.call('checkpoint_delete', { names: [`vfull${r}`] });
      return t;
    } });
  }
  await interleave(ctx, [row], steps);
  console.log(formatRow(row));
  return row;
}

interface Chain {
  /** Backup ids of the push repository of vda, oldest (the full) first. */
  ids: string[];
  /** Rounds of dirty data the chain holds (= virtnbdbackup incrementals). */
  incs: number;
}

async function incrementalRows(ctx: Ctx): Promise<{ rows: Row[]; chain: Chain }> {
  const { m, s } = ctx;
  const peer = (key: string, label: string): Tool => ({ key, label, role: 'peer' });
  const push = new Row('incremental push, vda, 64 MiB dirty', [TM(), ...(ctx.libvirt ? [peer('virsh', 'virsh backup-begin')] : []), { key: 'qemu-img', label: 'qemu-img convert -t writeback of the 64 MiB alone', role: 'reference' }, QEMU_STEPS]);
  const pull = new Row('incremental pull, vda, 64 MiB dirty', [...pullTools(ctx), ...(ctx.virtnbd ? [{ ...peer('virtnbdbackup', 'virtnbdbackup -l inc'), footing: 'process' as const }] : []), QEMU_STEPS]);
  const spread = vdcStrideTitle(VDC_STRIDE);
  const bigPush = new Row(`incremental push, vdc 1 TiB sparse, 64 MiB dirty${spread}`, [TM(), ...(ctx.libvirt ? [peer('virsh', 'virsh backup-begin')] : []), QEMU_STEPS]);
  const bigPull = new Row(`incremental pull, vdc 1 TiB sparse, 64 MiB dirty${spread}`, [...pullTools(ctx), QEMU_STEPS]);
  const floor = new QemuFloor(m);
  if (ctx.virtnbd) bigPull.notes.push('virtnbdbackup is left out here: it keeps one backup chain per domain (notes §5.1 I3); its domain holds vda only');

  // Untimed bases: Tidemark's full backups (one repository per mode and disk), the peers' first checkpoints.
  process.stderr.write('  setting up the chains (full backups, first checkpoints)…\n');
  const repo = (mode: string, disk: string) => m.p('out', `repo-${mode}-${disk}`);
  const ids: string[] = [];
  for (const disk of ['vda', 'vdc']) {
    const full = await s.tidemark(['backup-begin', '--full', '--repo', repo('push', disk), '--disk', disk, '--json']);
    if (disk === 'vda') ids.push((JSON.parse(full.stdout) as { id: string }).id);
    await s.tidemark(['backup-begin', '--mode', 'pull', '--full', '--repo', repo('pull', disk), '--disk', disk]);
    if (ctx.host) await s.tidemark(['backup-begin', '--mode', 'pull', '--full', '--repo', repo('pull-in-host', disk), '--disk', disk]);
  }
  const cp = (prefix: string, disk: string, r: number) => `${prefix}-${disk}-${r}`;
  if (ctx.libvirt) {
    for (const disk of ['vda', 'vdc']) {
      for (const prefix of ['vpush', 'lvpull', 'lvscript']) await m.lv!.helper.call('checkpoint_create', { xml: checkpointXml(cp(prefix, disk, 0), [disk], [...DISKS]) });
    }
  }
  if (ctx.virtnbd) await s.virtnbdbackup('full');

  const dirtyOnly = m.dirtyOnlyImage();
  type Step = { row: Row; tool: string; fn: (r: number) => Promise<Timed> };
  const steps: Step[] = [
    ...([['vda', push, pull], ['vdc', bigPush, bigPull]] as const).flatMap(([disk, pushRow, pullRow]) => [
      { row: pushRow, tool: QEMU_STEPS.key, fn: (r: number) => floor.steps('push', disk, r) },
      { row: pullRow, tool: QEMU_STEPS.key, fn: (r: number) => floor.steps('pull', disk, r) },
    ]),
    { row: push, tool: 'tidemark', fn: async () => {
      const t = await s.timedTidemark(['backup-begin', '--repo', repo('push', 'vda'), '--disk', 'vda', '--json']);
      ids.push(t.detail as string);
      return t;
    } },
    { row: push, tool: 'qemu-img', fn: () => s.qemuImgConvert(dirtyOnly, false) },
    { row: pull, tool: 'tidemark', fn: () => s.timedTidemark(['backup-begin', '--mode', 'pull', '--repo', repo('pull', 'vda'), '--disk', 'vda']) },
    { row: bigPush, tool: 'tidemark', fn: () => s.timedTidemark(['backup-begin', '--repo', repo('push', 'vdc'), '--disk', 'vdc']) },
    { row: bigPull, tool: 'tidemark', fn: () => s.timedTidemark(['backup-begin', '--mode', 'pull', '--repo', repo('pull', 'vdc'), '--disk', 'vdc']) },
  ];
  if (ctx.libvirt) {
    for (const [disk, pushRow, pullRow] of [['vda', push, pull], ['vdc', bigPush, bigPull]] as const) {
      steps.push({ row: pushRow, tool: 'virsh', fn: (r) => s.virshPush(disk, cp('vpush', disk, r + 1), cp('vpush', disk, r)) });
      steps.push({ row: pullRow, tool: 'libvirt', fn: (r) => s.libvirtPull(disk, cp('lvpull', disk, r + 1), cp('lvpull', disk, r)) });
      steps.push({ row: pullRow, tool: 'libvirt-script', fn: (r) => s.libvirtPull(disk, cp('lvscript', disk, r + 1), cp('lvscript', disk, r), true) });
    }
  }
  if (ctx.host) {
    for (const [disk, pullRow] of [['vda', pull], ['vdc', bigPull]] as const) {
      steps.push({ row: pullRow, tool: 'tidemark-in-host', fn: () => s.timedInHost(['backup-begin', '--mode', 'pull', '--repo', repo('pull-in-host', disk), '--disk', disk]) });
    }
  }
  if (ctx.virtnbd) steps.push({ row: pull, tool: 'virtnbdbackup', fn: () => s.virtnbdbackup('inc') });
  const rows = [push, pull, bigPush, bigPull];
  await interleave(ctx, rows, steps, async (r) => {
    await floor.mark('vda', r);
    await floor.mark('vdc', r);
    await m.dirty('vda');
    await m.dirty('vdc');
  });
  // Cost must follow dirty bytes, not disk size: each tool's 1 TiB time over its 1 GiB time, paired by round.
  for (const [big, small] of [[bigPush, push], [bigPull, pull]] as const) {
    for (const t of big.tools) {
      const paired = pairedByRound(big.samples.get(t.key) ?? [], small.samples.get(t.key) ?? []);
      if (paired.length) big.notes.push(`${t.label}: 1 TiB ÷ 1 GiB = ${median(paired.map(([x, y]) => x / y)).toFixed(2)}×, ${median(paired.map(([x, y]) => x - y)).toFixed(0)} ms more (paired medians)`);
    }
  }
  for (const row of rows) console.log(formatRow(row));
  return { rows, chain: { ids, incs: ctx.rounds } };
}

async function restoreRow(ctx: Ctx, chain: Chain | undefined): Promise<Row> {
  const { m, s } = ctx;
  const repo = m.p('out', 'repo-push-vda');
  if (!chain) {
    const full = await s.tidemark(['backup-begin', '--full', '--repo', repo, '--disk', 'vda', '--json']);
    chain = { ids: [(JSON.parse(full.stdout) as { id: string }).id], incs: 0 };
    if (ctx.virtnbd) await s.virtnbdbackup('full');
  }
  // full + 5 incrementals, whatever the number of rounds before
  for (; chain.incs < 5; chain.incs++) {
    await m.dirty('vda');
    const inc = await s.tidemark(['backup-begin', '--repo', repo, '--disk', 'vda', '--json']);
    chain.ids.push((JSON.parse(inc.stdout) as { id: string }).id);
    if (ctx.virtnbd) await s.virtnbdbackup('inc');
  }
  const top = chain.ids[5]!;
  const vmsDir = path.join(repo, 'vms');
  const row = new Row('restore of full + 5 incrementals, vda', [
    TM(),
    ...(ctx.virtnbd ? [{ key: 'virtnbdrestore', label: 'virtnbdrestore', role: 'peer' as const }] : []),
    { key: 'qemu-img', label: 'qemu-img convert -t writeback of the chain', role: 'reference' },
    ...baselineTools(),
  ]);
  const layer = (await run('find', [vmsDir, '-name', `${top}.qcow2`])).stdout.trim();
  if (!layer) throw new Error(`no layer file for backup ${top} under ${vmsDir}`);
  const restore = (tool: string, bin?: string) => ({ row, tool, fn: async (r: number) => {
    const to = m.p('out', `restored-${tool}-${r}.qcow2`);
    const t = await s.timedTidemark(['restore', '--repo', repo, '--backup', top, '--disk', 'vda', '--to', to], bin);
    await run('rm', ['-f', to]);
    return t;
  } });
  const steps = [restore('tidemark'), { row, tool: 'qemu-img', fn: () => s.qemuImgConvert(layer, false) }];
  if (BASELINE_BIN) steps.push(restore('baseline', BASELINE_BIN));
  if (ctx.virtnbd) steps.push({ row, tool: 'virtnbdrestore', fn: () => s.virtnbdrestore('virtnbdbackup.5') });
  settle();
  await interleave(ctx, [row], steps);
  console.log(formatRow(row));
  return row;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
