// One timed step per tool of the side-by-side bench. Each settles writeback first, then times
// exactly the tool's own work (untimed clean-up after it). Tidemark runs through its CLI, end to end
// (`bin/tidemark …` run as a program, as an admin's `tidemark`: with a resident host, the native thin
// client; else bin/tidemark.js, whose shebang starts Node without NODE_EXTRA_CA_CERTS); with --host
// also handed straight to the resident host (timedInHost), the
// footing of the libvirt helper's in-process pull.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { timedInHost } from './host';
import { checkpointXml, pullXml, pushXml } from './libvirt';
import { DISKS, type Machines } from './machines';
import { nodeEnv, run, settle, tidemarkCommand, type Ran } from './proc';

export const URI = 'qemu:///system';
const BIN = tidemarkCommand(path.join(__dirname, '..', '..'));
const ALL = [...DISKS];
const PEER_SCRIPT = path.join(__dirname, 'libvirt_peer.py');

export interface Timed {
  ms: number;
  detail?: unknown;
}

export class Steps {
  constructor(readonly m: Machines) {}

  /** `tidemark --state-dir STATE --connect <lab's second QMP socket> ARGS`, timed from spawn to exit;
   *  `bin`: another checkout's command (the baseline of an A/B run). */
  tidemark(args: string[], bin = BIN): Promise<Ran> {
    return run(bin, ['--state-dir', this.m.p('state'), '--connect', this.m.lab!.cliEndpoint, ...args], { env: nodeEnv({ TIDEMARK_DEBUG: '' }) });
  }

  async timedTidemark(args: string[], bin = BIN): Promise<Timed> {
    settle();
    const r = await this.tidemark(args, bin);
    return { ms: r.ms, detail: args.includes('--json') ? idOf(r.stdout) : undefined };
  }

  /** The same command handed to the resident host without a CLI process (bench --host only). */
  async timedInHost(args: string[]): Promise<Timed> {
    settle();
    const r = await timedInHost(['--state-dir', this.m.p('state'), '--connect', this.m.lab!.cliEndpoint, ...args]);
    return { ms: r.ms };
  }

  virsh(args: string[]): Promise<Ran> {
    return run('virsh', ['-q', '-c', URI, ...args]);
  }

  private get lv() {
    if (!this.m.lv) throw new Error('internal: no libvirt domain');
    return this.m.lv;
  }

  // ------------------------------------------------------------------ checkpoint create

  /** `bin`: another checkout's CLI for the timed create (the delete runs with this one). */
  async tmCheckpoint(name: string, bin = BIN): Promise<Timed> {
    const t = await this.timedTidemark(['checkpoint-create-as', name, '--diskspec', 'vda', '--diskspec', 'vdb', '--diskspec', 'vdc,checkpoint=no'], bin);
    await this.tidemark(['checkpoint-delete', name]);
    return t;
  }

  /** A full push of vda with checkpoint `name` into its own repository, then both removed (untimed). */
  async tmFullPush(name: string, bin = BIN): Promise<Timed> {
    const repo = this.m.p('out', name);
    const t = await this.timedTidemark(['backup-begin', '--full', '--repo', repo, '--disk', 'vda', '--checkpoint', name], bin);
    await this.tidemark(['checkpoint-delete', name]);
    await run('rm', ['-rf', repo]);
    return t;
  }

  async virshCheckpoint(name: string): Promise<Timed> {
    settle();
    const r = await this.virsh(['checkpoint-create-as', this.lv.name, name, '--diskspec', 'vda', '--diskspec', 'vdb', '--diskspec', 'vdc,checkpoint=no']);
    await this.lv.helper.call('checkpoint_delete', { names: [name] });
    return { ms: r.ms };
  }

  // ------------------------------------------------------------------ push

  /** `virsh backup-begin` (libvirt creates the target) until libvirt reports the job gone. */
  async virshPush(disk: string, checkpoint: string, since?: string): Promise<Timed> {
    const target = this.m.p('run', `virsh-${checkpoint}-${disk}.qcow2`);
    const bx = this.m.p('out', `${checkpoint}.backup.xml`);
    const cx = this.m.p('out', `${checkpoint}.checkpoint.xml`);
    fs.writeFileSync(bx, pushXml(disk, target, ALL, since));
    fs.writeFileSync(cx, checkpointXml(checkpoint, [disk], ALL));
    settle();
    const r = await this.lv.helper.call<{ ms: number; startMs: number }>('run_job', { argv: ['virsh', '-q', '-c', URI, 'backup-begin', this.lv.name, '--backupxml', bx, '--checkpointxml', cx] });
    fs.rmSync(target, { force: true });
    return { ms: r.ms, detail: { virshMs: r.startMs } };
  }

  /** qemu-img convert with a flush at the end (-t writeback): the physical reference. */
  async qemuImgConvert(src: string, shared: boolean): Promise<Timed> {
    const out = this.m.p('out', 'convert.qcow2');
    settle();
    const r = await run('qemu-img', ['convert', ...(shared ? ['-U'] : []), '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', src, out]);
    fs.rmSync(out, { force: true });
    return { ms: r.ms };
  }

  // ------------------------------------------------------------------ pull

  /** libvirt pull + a plain libnbd reader of the dirty extents (in the helper, one libvirt connection). */
  /**
   * libvirt pull + libnbd reader. In the long-lived helper by default (timed inside it: no process
   * start, the connection open); `script`: a fresh `/usr/bin/python3 libvirt_peer.py --once`, timed
   * from spawn to exit, as an admin's script runs (Python's start, imports, connection included).
   */
  async libvirtPull(disk: string, checkpoint: string, since: string, script = false): Promise<Timed> {
    const out = this.m.p('out', `lvpull-${disk}.raw`);
    const request = {
      op: 'pull',
      backupXml: pullXml(disk, this.m.p('run', 'lvpull.sock'), this.m.p('run', `scratch-${checkpoint}.qcow2`), ALL, since),
      checkpointXml: checkpointXml(checkpoint, [disk], ALL),
      socket: this.m.p('run', 'lvpull.sock'),
      export: disk,
      context: `qemu:dirty-bitmap:backup-${disk}`,
      out,
    };
    type Pulled = { ms: number; bytes: number; extents: number; steps: Record<string, number> };
    settle();
    let r: Pulled;
    let ms: number;
    if (script) {
      const ran = await run('/usr/bin/python3', [PEER_SCRIPT, '--once', JSON.stringify({ ...request, domain: this.lv.name })]);
      r = JSON.parse(ran.stdout) as Pulled;
      ms = ran.ms;
    } else {
      r = await this.lv.helper.call<Pulled>('pull', request);
      ms = r.ms;
    }
    fs.rmSync(out, { force: true });
    return { ms, detail: { bytes: r.bytes, extents: r.extents, steps: r.steps, ...(script ? { inScriptMs: r.ms } : {}) } };
  }

  async virtnbdbackup(level: 'full' | 'inc'): Promise<Timed> {
    if (!this.m.vnb) throw new Error('internal: no domain for virtnbdbackup');
    settle();
    const r = await run('virtnbdbackup', ['-d', this.m.vnb.name, '-l', level, '-i', 'vda', '-o', this.m.p('vnb'), '-S', this.m.p('run'), '-f', this.m.p('run', 'vnb.sock'), '-n']);
    return { ms: r.ms };
  }

  async virtnbdrestore(until: string): Promise<Timed> {
    const out = this.m.p('out', 'vnbrestore');
    settle();
    const r = await run('virtnbdrestore', ['-i', this.m.p('vnb'), '-o', out, '-u', until, '-d', 'vda', '-n', '-f', this.m.p('run', 'vnbr.sock'), '-L', this.m.p('out', 'vnbrestore.log')]);
    fs.rmSync(out, { recursive: true, force: true });
    return { ms: r.ms };
  }
}

/** The backup id in `backup-begin --json` output (for the restore row). */
function idOf(stdout: string): string | undefined {
  try {
    return (JSON.parse(stdout) as { id?: string }).id;
  } catch {
    return undefined;
  }
}
