// Thin, typed wrappers around the `qemu-img` commands backups and restores need. Every failure
// becomes an Error that names the command, the file and qemu-img's own message.

import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { PRIVATE_FILE_MODE } from '../../os/atomic-file';
import { emptyQcow2Layout, writeEmptyQcow2 } from '../qcow2/format';
import { tiedProgramMissing, tiedToThisProcess } from '../../os/tied-child';

export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  /** Bytes the file occupies on disk (allocated blocks). */
  actualSize?: number;
  clusterSize?: number;
  /** Backing file exactly as written in the header (may be relative). */
  backingFile?: string;
  /** Backing file resolved by qemu-img (absolute). */
  fullBackingFile?: string;
  backingFormat?: string;
  /** qcow2 compat level ("1.1" or "0.10"). */
  compat?: string;
  bitmaps: { name: string; flags: string[]; granularity: number }[];
}

interface RawInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'cluster-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { type: string; data?: { compat?: string; bitmaps?: { name: string; flags: string[]; granularity: number }[] } };
}

/** What every qemu-img caller says when the program is missing (not found, or setpriv could not start it). */
export const QEMU_IMG_MISSING = 'qemu-img is not installed (install qemu-utils)';

export class QemuImgError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'QemuImgError';
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs qemu-img; resolves with the exit code and output (never rejects on a non-zero exit). */
export function runQemuImg(args: string[], options: { signal?: AbortSignal } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile('qemu-img', args, { maxBuffer: 64 * 1024 * 1024, signal: options.signal }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') return reject(new Error(QEMU_IMG_MISSING));
        if (e.code === 'ABORT_ERR') return reject(new Error(`qemu-img ${args[0]} was cancelled`));
        return reject(new Error(`qemu-img ${args[0]} could not run: ${e.message}`));
      }
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** qemu-img's own message: the last `lines` lines of its output without the "qemu-img: " prefix, on one line. */
export function qemuImgMessage(text: string, lines = 3): string {
  return text.trim().replace(/^qemu-img: /gm, '').split('\n').filter(Boolean).slice(-lines).join('; ');
}

async function mustRun(args: string[], what: string, options: { signal?: AbortSignal } = {}): Promise<RunResult> {
  const r = await runQemuImg(args, options);
  if (r.code !== 0) throw new QemuImgError(`${what}: ${qemuImgMessage(r.stderr || r.stdout) || `qemu-img exited with ${r.code}`}`, r.code, r.stderr);
  return r;
}

/** `qemu-img info` of one image (not its chain). `shared` adds -U for images a running QEMU holds. */
export async function imageInfo(file: string, options: { shared?: boolean; format?: string } = {}): Promise<ImageInfo> {
  const args = ['info', '--output=json'];
  if (options.shared) args.push('-U');
  if (options.format) args.push('-f', options.format);
  args.push(file);
  const r = await mustRun(args, `cannot read image ${file}`);
  const raw = JSON.parse(r.stdout) as RawInfo;
  return {
    filename: raw.filename,
    format: raw.format,
    virtualSize: raw['virtual-size'],
    actualSize: raw['actual-size'],
    clusterSize: raw['cluster-size'],
    backingFile: raw['backing-filename'],
    fullBackingFile: raw['full-backing-filename'],
    backingFormat: raw['backing-filename-format'],
    compat: raw['format-specific']?.data?.compat,
    bitmaps: raw['format-specific']?.data?.bitmaps ?? [],
  };
}

/**
 * Creates a qcow2 image; with `backing`, a layer over it (the path is written as given, so relative
 * stays relative). Written by Node where it lays out what qemu-img would (`engine/qcow2/format.ts`), else by qemu-img.
 */
export async function createQcow2(file: string, sizeBytes: number, options: { backing?: string; compat?: string; clusterSize?: number; l2Tables?: readonly number[] } = {}): Promise<void> {
  // L2 tables allocated ahead only speed QEMU up: when they do not fit the layout, the image goes without.
  const layout = (options.compat ?? '1.1') === '1.1' ? (emptyQcow2Layout(sizeBytes, options) ?? emptyQcow2Layout(sizeBytes, { ...options, l2Tables: undefined })) : undefined;
  if (layout) {
    try {
      return await writeEmptyQcow2(file, layout, options.backing);
    } catch (e) {
      throw new Error(`cannot create image ${file}: ${(e as Error).message}`);
    }
  }
  const opts = [`compat=${options.compat ?? '1.1'}`];
  if (options.clusterSize) opts.push(`cluster_size=${options.clusterSize}`);
  const args = ['create', '-q', '-f', 'qcow2', '-o', opts.join(',')];
  if (options.backing) args.push('-b', options.backing, '-F', 'qcow2');
  args.push(file, String(sizeBytes));
  createPrivateFile(file);
  await mustRun(args, `cannot create image ${file}`);
}

/**
 * Makes `file` exist, empty and 0600, before qemu-img writes it: qemu-img creates with 0644 minus
 * the umask, but keeps the mode of a file that exists, so the guest's data is never readable by others.
 */
export function createPrivateFile(file: string): void {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, PRIVATE_FILE_MODE));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    fs.chmodSync(file, PRIVATE_FILE_MODE);
  }
}

export interface CheckResult {
  ok: boolean;
  /** What is wrong, in qemu-img's words, when not ok. */
  problems: string[];
}

/** `qemu-img check`: metadata consistency of one image (corruptions are errors, leaked clusters are not). */
export async function checkImage(file: string): Promise<CheckResult> {
  const r = await runQemuImg(['check', '--output=json', '-f', 'qcow2', file]);
  if (r.code === 0 || r.code === 3) return { ok: true, problems: [] };
  let problems: string[] = [];
  try {
    const j = JSON.parse(r.stdout) as { corruptions?: number; 'check-errors'?: number };
    if (j.corruptions) problems.push(`${j.corruptions} corruption(s)`);
    if (j['check-errors']) problems.push(`${j['check-errors']} check error(s)`);
  } catch {
    // not JSON: qemu-img could not open the image at all
  }
  const msg = qemuImgMessage(r.stderr);
  if (msg) problems.push(msg);
  if (problems.length === 0) problems = [`qemu-img check exited with ${r.code}`];
  return { ok: false, problems };
}

/**
 * Copies the content of `src` (following its backing chain) into a new image `dst`; sparse. The
 * destination is written with cache mode writeback (qemu-img's default for convert is unsafe: never
 * flushed), created 0600; the caller fsyncs it before it moves it into place.
 */
export function convertImage(
  src: string,
  dst: string,
  options: { format: 'qcow2' | 'raw'; compat?: string; clusterSize?: number; signal?: AbortSignal; onProgress?: (percent: number) => void },
): Promise<void> {
  const args = ['convert', '-p', '-t', 'writeback', '-f', 'qcow2', '-O', options.format];
  if (options.format === 'qcow2') {
    const o = [`compat=${options.compat ?? '1.1'}`];
    if (options.clusterSize) o.push(`cluster_size=${options.clusterSize}`);
    args.push('-o', o.join(','));
  }
  args.push(src, dst);
  createPrivateFile(dst);
  return new Promise((resolve, reject) => {
    // Dies with this process: a restore killed mid-copy leaves no writer behind (os/tied-child.ts).
    const run = tiedToThisProcess('qemu-img', args);
    const child = spawn(run.cmd, run.args, { stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      // -p prints "    (12.34/100%)" with carriage returns
      const all = [...chunk.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
      const last = all[all.length - 1];
      if (last) options.onProgress?.(Number(last[1]));
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new Error(QEMU_IMG_MISSING));
      else if (e.name === 'AbortError') reject(new Error(`copying ${src} to ${dst} was cancelled`));
      else reject(new Error(`qemu-img convert could not run: ${e.message}`));
    });
    child.once('close', (code, sig) => {
      if (code === 0) resolve();
      else if (tiedProgramMissing(code, stderr)) reject(new Error(QEMU_IMG_MISSING));
      else if (code !== null) reject(new QemuImgError(`cannot copy ${src} to ${dst}: ${qemuImgMessage(stderr) || `qemu-img exited with ${code}`}`, code, stderr));
      else reject(new Error(`copying ${src} to ${dst} stopped: qemu-img was killed (${sig})`));
    });
  });
}

/** Non-strict content comparison (allocation differences are ignored). */
export async function compareImages(a: string, aFormat: string, b: string, bFormat: string): Promise<{ identical: boolean; detail: string }> {
  const r = await runQemuImg(['compare', '-f', aFormat, '-F', bFormat, a, b]);
  if (r.code === 0) return { identical: true, detail: r.stdout.trim() };
  if (r.code === 1) return { identical: false, detail: r.stdout.trim() || qemuImgMessage(r.stderr) };
  throw new QemuImgError(`cannot compare ${a} with ${b}: ${qemuImgMessage(r.stderr) || `exit ${r.code}`}`, r.code, r.stderr);
}

/** Adds an enabled persistent bitmap to a qcow2 image no process holds. */
export async function addBitmap(file: string, name: string): Promise<void> {
  await mustRun(['bitmap', '--add', file, name], `cannot add bitmap ${JSON.stringify(name)} to ${file}`);
}
