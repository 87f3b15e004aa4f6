// Image checks for libvirt tests: compare two images' guest-visible content, read an NBD export.

import { execFile } from 'node:child_process';

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * `qemu-img compare -U` (shared locks: works while QEMU has the image open; flush the guest disk
 * first). True when identical, false when the content differs; throws when qemu-img fails.
 */
export async function imagesIdentical(a: string, b: string, formats: { a?: string; b?: string } = {}): Promise<boolean> {
  const args = ['compare', '-U', ...(formats.a ? ['-f', formats.a] : []), ...(formats.b ? ['-F', formats.b] : []), a, b];
  const r = await run('qemu-img', args);
  if (r.code === 0) return true;
  if (r.code === 1) return false;
  throw new Error(`qemu-img ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
}

/** Copies a whole NBD export (nbd+unix:///EXPORT?socket=…) into a raw file. */
export async function copyExport(uri: string, file: string): Promise<void> {
  const r = await run('nbdcopy', [uri, file]);
  if (r.code !== 0) throw new Error(`nbdcopy ${uri} ${file} failed: ${r.stderr.trim()}`);
}

/** `nbdinfo --size URI`. */
export async function exportSize(uri: string): Promise<number> {
  const r = await run('nbdinfo', ['--size', uri]);
  if (r.code !== 0) throw new Error(`nbdinfo --size ${uri} failed: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}

/** `nbdinfo --map=CONTEXT --totals URI` → bytes with the flag set (e.g. the dirty bytes of qemu:dirty-bitmap:…). */
export async function mapTotal(uri: string, context: string, type: number): Promise<number> {
  const r = await run('nbdinfo', [`--map=${context}`, '--totals', uri]);
  if (r.code !== 0) throw new Error(`nbdinfo --map=${context} --totals ${uri} failed: ${r.stderr.trim()}`);
  let total = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(\d+)\s+\S+\s+(\d+)\b/.exec(line);
    if (m && Number(m[2]) === type) total += Number(m[1]);
  }
  return total;
}

export function nbdUnixUri(socket: string, exportName: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socket}`;
}
