// The two VMs of the side-by-side bench, holding identical disks: Tidemark's lab VM (QMP) and a
// guest-less TCG libvirt domain for the peers. vda: 1 GiB of random data; vdb: 512 MiB, empty;
// vdc: 1 TiB sparse with 64 MiB of data at 100 GiB. Guest writes go to both through the devices'
// BlockBackends (HMP qemu-io), from one 256 KiB file of random bytes per round, so both VMs get
// the very same bytes. Everything lives under one work directory that close() removes.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startLab, stopLab } from '../../electron/engine/lab/labvm';
import { QmpClient } from '../../electron/qmp/client';
import { domainXml, LibvirtHelper } from './libvirt';
import { pidsMentioning, run } from './proc';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
export const DISKS = ['vda', 'vdb', 'vdc'] as const;
export const SIZES: Record<string, number> = { vda: GiB, vdb: 512 * MiB, vdc: 1024 * GiB };
/**
 * 256 × 256 KiB: at a 4 MiB stride on vda, at a 4 GiB stride over the whole of the 1 TiB vdc.
 * BENCH_VDC_STRIDE=BYTES sets vdc's stride (a multiple of 1 MiB; 256 strides must fit in 1 TiB): at 4 MiB its
 * changes land where vda's do, in the same two L2 tables, so the 1 TiB rows then show what the disk's size
 * costs apart from how far apart the changes are; at 512 MiB they touch as many L2 tables as at 4 GiB (256)
 * within a tenth of the disk.
 */
export const DIRTY_WRITES = 256;
export const DIRTY_BYTES = 256 * KiB;
const DEFAULT_VDC_STRIDE = 4 * GiB;
export const VDC_STRIDE = vdcStride(process.env.BENCH_VDC_STRIDE);
/** What vdc's rows add to their titles: the stride where BENCH_VDC_STRIDE changed it, so a result says what it measured. */
export function vdcStrideTitle(stride: number): string {
  return stride === DEFAULT_VDC_STRIDE ? '' : `, ${stride / MiB} MiB apart`;
}
export function dirtyOffset(disk: string, k: number): number {
  return disk === 'vdc' ? vdcOffset(VDC_STRIDE, k) : k * 4 * MiB;
}
/** Change k of vdc at this stride: 1 MiB into its stride, but at 4 MiB exactly where vda's change k is. */
export function vdcOffset(stride: number, k: number): number {
  return k * stride + (stride > 4 * MiB ? MiB : 0);
}
/** BENCH_VDC_STRIDE read: unset or empty is the default 4 GiB. */
export function vdcStride(text: string | undefined): number {
  if (text === undefined || text === '') return DEFAULT_VDC_STRIDE;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 4 * MiB || n % MiB !== 0 || n * DIRTY_WRITES > SIZES.vdc!) {
    throw new Error(`BENCH_VDC_STRIDE must be a multiple of 1 MiB from 4 MiB to ${SIZES.vdc! / DIRTY_WRITES} bytes, got ${JSON.stringify(text)}`);
  }
  return n;
}

export interface Domain {
  helper: LibvirtHelper;
  name: string;
  disks: string[];
  /** disk → device alias (virtio-disk0…), for qemu-io -d /machine/peripheral/ALIAS/virtio-backend */
  alias: Record<string, string>;
}

export class Machines {
  lab?: { dir: string; qmp: QmpClient; cliEndpoint: string; image(disk: string): string };
  lv?: Domain;
  vnb?: Domain;
  private patternNo = 0;

  private constructor(readonly root: string) {}

  /** The work directory: under /tmp, traversable by libvirt's QEMU (user libvirt-qemu). */
  static create(): Machines {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmperf-'));
    fs.chmodSync(root, 0o755);
    for (const d of ['lab/disks', 'lv', 'run', 'out', 'state']) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.chmodSync(path.join(root, 'lv'), 0o755);
    // QEMU under libvirt binds the pull sockets and writes scratch and push targets here.
    fs.chmodSync(path.join(root, 'run'), 0o1777);
    return new Machines(root);
  }

  p(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** Writes the disk images once, then copies them, so both VMs start from the same bytes. */
  makeImages(withLibvirt: boolean): void {
    const raw = this.p('random.raw');
    execFileSync('head', ['-c', String(GiB), '/dev/urandom'], { stdio: ['ignore', fs.openSync(raw, 'w'), 'inherit'] });
    const lab = (d: string) => this.p('lab', 'disks', `${d}.qcow2`);
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, lab('vda')]);
    fs.rmSync(raw);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', lab('vdb'), String(SIZES.vdb)]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', lab('vdc'), String(SIZES.vdc)]);
    const seed = this.pattern();
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -s ${seed} ${100 * GiB} ${64 * MiB}`, lab('vdc')], { stdio: 'ignore' });
    if (withLibvirt) for (const d of DISKS) fs.copyFileSync(lab(d), this.p('lv', `${d}.qcow2`));
  }

  /** Starts Tidemark's lab VM on the images (the bench keeps its first QMP socket; the CLI gets the second). */
  async startLab(): Promise<void> {
    const dir = this.p('lab');
    const st = await startLab({ dir, name: 'tmperf', disks: DISKS.map((d) => ({ name: d, sizeBytes: SIZES[d]! })) });
    this.lab = { dir, qmp: await QmpClient.connect(st.qmp), cliEndpoint: st.qmpSecondary, image: (d) => path.join(dir, 'disks', `${d}.qcow2`) };
  }

  /**
   * Defines and starts the peers' libvirt domains (named after this process, so runs never collide):
   * one with vda, vdb, vdc for virsh and libvirt pull, and, for virtnbdbackup, one with its own copy
   * of vda, because virtnbdbackup refuses a domain holding checkpoints it did not make (notes §5.1 I3).
   */
  async startLibvirt(withVirtnbd: boolean): Promise<void> {
    this.lv = await this.startDomain(`tmperf-${process.pid}`, [...DISKS]);
    if (withVirtnbd) {
      fs.mkdirSync(this.p('vnbdisk'), { mode: 0o755 });
      fs.copyFileSync(this.p('lv', 'vda.qcow2'), this.p('vnbdisk', 'vda.qcow2'));
      this.vnb = await this.startDomain(`tmperf-${process.pid}-vnb`, ['vda'], 'vnbdisk');
    }
  }

  private async startDomain(name: string, disks: string[], dir = 'lv'): Promise<Domain> {
    const helper = LibvirtHelper.start();
    const dom: Domain = { helper, name, disks, alias: {} };
    const { xml } = await helper.call<{ xml: string }>('start', { xml: domainXml(name, disks.map((d) => ({ dev: d, file: this.p(dir, `${d}.qcow2`) }))) });
    for (const m of xml.matchAll(/<target dev='(\w+)' bus='virtio'\/>\s*<alias name='([\w-]+)'\/>/g)) dom.alias[m[1]!] = m[2]!;
    for (const d of disks) if (!dom.alias[d]) throw new Error(`no device alias for ${d} in the live XML of ${name}`);
    return dom;
  }

  /** A new 256 KiB file of random bytes, readable by libvirt's QEMU; returns its path. */
  pattern(): string {
    const f = this.p(`pattern-${++this.patternNo}.bin`);
    fs.writeFileSync(f, randomBytes(DIRTY_BYTES), { mode: 0o644 });
    return f;
  }

  /** The same guest writes on `disk` of both VMs: 256 × 256 KiB from one new random file. */
  async dirty(disk: string): Promise<void> {
    const src = this.pattern();
    const cmds = Array.from({ length: DIRTY_WRITES }, (_, k) => `write -s ${src} ${dirtyOffset(disk, k)} ${DIRTY_BYTES}`);
    if (this.lab) {
      for (const c of cmds) {
        const out = await this.lab.qmp.hmp(`qemu-io drive-${disk} "${c}"`);
        if (out.trim()) throw new Error(`lab qemu-io ${c}: ${out.trim()}`);
      }
    }
    for (const dom of [this.lv, this.vnb]) {
      if (dom?.disks.includes(disk)) await dom.helper.call('hmp', { cmds: cmds.map((c) => `qemu-io -d /machine/peripheral/${dom.alias[disk]}/virtio-backend "${c}"`) });
    }
  }

  /** A standalone qcow2 holding only one round's dirty data of vda (the reference for an incremental). */
  dirtyOnlyImage(): string {
    const f = this.p('dirty-only.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, String(SIZES.vda)]);
    const src = this.pattern();
    const cmds = Array.from({ length: DIRTY_WRITES }, (_, k) => ['-c', `write -s ${src} ${dirtyOffset('vda', k)} ${DIRTY_BYTES}`]).flat();
    execFileSync('qemu-io', ['-f', 'qcow2', ...cmds, f], { stdio: 'ignore' });
    return f;
  }

  /** Removes every domain, process and file the bench made (also after a failure or Ctrl-C). */
  async close(): Promise<void> {
    for (const dom of [this.lv, this.vnb]) {
      if (!dom) continue;
      const stopped = await dom.helper.call('stop').then(() => true, (e: Error) => (console.error(`cleanup of ${dom.name}: ${e.message}; trying virsh`), false));
      await dom.helper.close();
      if (!stopped) {
        for (const args of [['destroy', dom.name], ['undefine', dom.name, '--checkpoints-metadata']]) await run('virsh', ['-c', 'qemu:///system', ...args]).catch((e: Error) => console.error(`cleanup: ${e.message}`));
      }
    }
    this.lv = this.vnb = undefined;
    if (this.lab) {
      await this.lab.qmp.close().catch(() => undefined);
      await stopLab(this.lab.dir);
      this.lab = undefined;
    }
    // virtnbdrestore can leave its qemu-nbd behind (notes §5.1 I2): those started on our files are ours.
    for (const pid of pidsMentioning(this.root, 'qemu-nbd')) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
