// The demo VM: a real QEMU with no guest OS and a few qcow2 disks under STATE/lab. It runs
// detached from the process that started it, so `tidemark lab start` can return, and it exposes
// two QMP sockets so a tool can act while the app holds the first.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { mkdirPrivate, writeFileAtomic } from '../../os/atomic-file';
import { isProcessAlive, processCommandLine } from '../../os/process-liveness';
import { QmpClient } from '../../qmp/client';

export interface LabDiskSpec {
  /** Guest device id; also the disk's name in Tidemark. */
  name: string;
  sizeBytes: number;
  /** qcow2 v2 (compat=0.10): cannot hold persistent bitmaps (shown as such). */
  legacy?: boolean;
  clusterSize?: number;
}

export interface LabOptions {
  /** Directory for disks, sockets, pid and log (STATE/lab by convention). */
  dir: string;
  /** VM name reported by query-name. */
  name?: string;
  disks?: LabDiskSpec[];
  /** Milliseconds to wait for QMP to come up. */
  startTimeoutMs?: number;
}

export interface LabStatus {
  running: boolean;
  dir: string;
  name: string;
  uuid: string;
  pid?: number;
  /** Primary QMP endpoint (the app's). */
  qmp: string;
  /** Second QMP endpoint, for tools that act while the app holds the first. */
  qmpSecondary: string;
  log: string;
  disks: { name: string; image: string; drive: string; sizeBytes: number; legacy: boolean }[];
}

const MiB = 1024 * 1024;
export const DEFAULT_LAB_DISKS: LabDiskSpec[] = [
  { name: 'vda', sizeBytes: 1024 * MiB },
  { name: 'vdb', sizeBytes: 512 * MiB },
  { name: 'vdc', sizeBytes: 64 * MiB, legacy: true },
];

interface LabRecord {
  name: string;
  uuid: string;
  pid?: number;
  disks: LabStatus['disks'];
}

const UNIX_PATH_MAX = 107;

function recordPath(dir: string) {
  return path.join(dir, 'lab.json');
}

function readRecord(dir: string): LabRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordPath(dir), 'utf8')) as LabRecord;
  } catch {
    return undefined;
  }
}

function writeRecord(dir: string, rec: LabRecord): void {
  writeFileAtomic(recordPath(dir), JSON.stringify(rec, null, 2));
}

/** True when `pid` is a live QEMU process (not a zombie, not a recycled pid of something else). */
export function isQemuAlive(pid: number | undefined): boolean {
  if (!pid || !isProcessAlive(pid)) return false;
  const cmd = processCommandLine(pid);
  return cmd === '' || cmd.includes('qemu-system');
}

export function labStatus(dir: string): LabStatus {
  const rec = readRecord(dir);
  const name = rec?.name ?? 'tidemark-demo';
  return {
    running: isQemuAlive(rec?.pid),
    dir,
    name,
    uuid: rec?.uuid ?? '',
    pid: rec?.pid,
    qmp: `unix:${path.join(dir, 'qmp.sock')}`,
    qmpSecondary: `unix:${path.join(dir, 'qmp2.sock')}`,
    log: path.join(dir, 'qemu.log'),
    disks: rec?.disks ?? [],
  };
}

function createImage(file: string, spec: LabDiskSpec): void {
  const opts = [`compat=${spec.legacy ? '0.10' : '1.1'}`];
  if (spec.clusterSize) opts.push(`cluster_size=${spec.clusterSize}`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', opts.join(','), file, String(spec.sizeBytes)], { stdio: 'pipe' });
}

/** Starts the demo VM (reusing its disks if they exist). Resolves once QMP answers. */
export async function startLab(options: LabOptions): Promise<LabStatus> {
  const dir = path.resolve(options.dir);
  mkdirPrivate(path.join(dir, 'disks'));
  const existing = labStatus(dir);
  if (existing.running) throw new Error(`the demo VM is already running (pid ${existing.pid}, QMP ${existing.qmp})`);
  for (const sock of ['qmp.sock', 'qmp2.sock']) {
    const p = path.join(dir, sock);
    if (Buffer.byteLength(p) > UNIX_PATH_MAX) throw new Error(`state directory path is too long for a unix socket (${p}); use a shorter --state-dir`);
    fs.rmSync(p, { force: true });
  }
  const old = readRecord(dir);
  const specs = old?.disks.length
    ? old.disks.map((d) => ({ name: d.name, sizeBytes: d.sizeBytes, legacy: d.legacy }))
    : (options.disks ?? DEFAULT_LAB_DISKS);
  for (const d of specs) {
    if (!/^[a-z][a-z0-9_-]{0,30}$/.test(d.name)) throw new Error(`lab disk name "${d.name}" must be lower-case letters, digits, "-" or "_"`);
  }
  const disks = specs.map((d) => ({
    name: d.name,
    image: path.join(dir, 'disks', `${d.name}.qcow2`),
    drive: `drive-${d.name}`,
    sizeBytes: d.sizeBytes,
    legacy: Boolean(d.legacy),
  }));
  for (const [i, d] of disks.entries()) {
    if (!fs.existsSync(d.image)) createImage(d.image, specs[i]!);
  }
  const rec: LabRecord = { name: old?.name ?? options.name ?? 'tidemark-demo', uuid: old?.uuid ?? randomUUID(), disks };
  const status = labStatus(dir);
  const args = [
    '-oL', 'qemu-system-x86_64',
    '-name', rec.name,
    '-uuid', rec.uuid,
    '-machine', 'pc,accel=tcg',
    '-m', '32',
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
    '-qmp', `unix:${path.join(dir, 'qmp.sock')},server=on,wait=off`,
    '-qmp', `unix:${path.join(dir, 'qmp2.sock')},server=on,wait=off`,
    '-pidfile', path.join(dir, 'qemu.pid'),
  ];
  for (const d of disks) {
    args.push('-drive', `if=none,id=${d.drive},file=${d.image},format=qcow2,node-name=${d.name}-fmt,file.node-name=${d.name}-file,discard=unmap`);
    args.push('-device', `virtio-blk-pci,drive=${d.drive},id=${d.name}`);
  }
  const log = fs.openSync(status.log, 'a');
  fs.writeSync(log, `--- ${new Date().toISOString()} starting: stdbuf ${args.join(' ')}\n`);
  const child = spawn('stdbuf', args, { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.once('error', () => undefined);
  child.unref();
  rec.pid = child.pid;
  writeRecord(dir, rec);

  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  let lastError = '';
  let gone = false;
  void exited.then(() => (gone = true));
  while (Date.now() < deadline) {
    if (gone) break;
    try {
      const c = await QmpClient.connect(status.qmpSecondary, { connectTimeoutMs: 2_000 });
      await c.close();
      return labStatus(dir);
    } catch (e) {
      lastError = (e as Error).message;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const tail = fs.existsSync(status.log) ? fs.readFileSync(status.log, 'utf8').split('\n').slice(-6).join('\n') : '';
  if (isQemuAlive(child.pid)) process.kill(child.pid!, 'SIGKILL');
  throw new Error(`the demo VM did not start: ${gone ? 'QEMU exited' : lastError}\n${tail}`);
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isQemuAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !isQemuAlive(pid);
}

/**
 * Stops the demo VM cleanly (QMP quit, which stores persistent bitmaps), falling back to
 * SIGTERM and then SIGKILL. Returns how it stopped.
 */
export async function stopLab(dir: string, timeoutMs = 10_000): Promise<'not-running' | 'quit' | 'terminated' | 'killed'> {
  const st = labStatus(dir);
  if (!st.running || !st.pid) return 'not-running';
  for (const ep of [st.qmpSecondary, st.qmp]) {
    try {
      const c = await QmpClient.connect(ep, { connectTimeoutMs: 1_500 });
      await c.execute('quit').catch(() => undefined);
      await c.close();
      if (await waitForExit(st.pid, timeoutMs)) return 'quit';
      break;
    } catch {
      // try the other socket
    }
  }
  process.kill(st.pid, 'SIGTERM');
  if (await waitForExit(st.pid, 3_000)) return 'terminated';
  process.kill(st.pid, 'SIGKILL');
  await waitForExit(st.pid, 3_000);
  return 'killed';
}

/** Sends a signal to the demo VM's QEMU (tests use SIGKILL to simulate a crash). */
export async function killLab(dir: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const st = labStatus(dir);
  if (!st.pid || !st.running) return;
  process.kill(st.pid, signal);
  await waitForExit(st.pid, 5_000);
}

/** Connects to whichever of the lab's QMP sockets is free (secondary first unless `prefer` says otherwise). */
export async function connectLab(dir: string, prefer: 'primary' | 'secondary' = 'secondary'): Promise<QmpClient> {
  const st = labStatus(dir);
  if (!st.running) throw new Error(`the demo VM is not running (start it with: tidemark lab start)`);
  const order = prefer === 'primary' ? [st.qmp, st.qmpSecondary] : [st.qmpSecondary, st.qmp];
  let last: Error | undefined;
  for (const ep of order) {
    try {
      return await QmpClient.connect(ep, { connectTimeoutMs: 1_500 });
    } catch (e) {
      last = e as Error;
    }
  }
  throw new Error(`cannot reach the demo VM's QMP sockets (both busy?): ${last?.message}`);
}
