// A bare QEMU for the benches that time QEMU's own steps (push-tables.ts, push-floor.ts): empty qcow2
// disks of the given sizes in a fresh temporary folder, each a node named after its key, and a QMP
// connection. `stop()` kills QEMU and removes the folder.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { emptyQcow2Layout, writeEmptyQcow2 } from '../electron/engine/qcow2/format';
import { QmpClient } from '../electron/qmp/client';

export interface BareQemu {
  dir: string;
  client: QmpClient;
  stop(): void;
}

/** `machine`: QEMU's -machine arguments (default none: no guest, no devices). */
export async function startBareQemu(prefix: string, disks: Record<string, { size: number }>, machine = ['-machine', 'none']): Promise<BareQemu> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const stop = (qemu?: { kill(): unknown }) => {
    qemu?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const qmpPath = path.join(dir, 'qmp');
  try {
    for (const [name, d] of Object.entries(disks)) await writeEmptyQcow2(path.join(dir, `${name}.qcow2`), emptyQcow2Layout(d.size)!);
  } catch (e) {
    stop();
    throw e;
  }
  const qemu = spawn('qemu-system-x86_64', [...machine, '-nodefaults', '-display', 'none', '-qmp', `unix:${qmpPath},server=on,wait=off`,
    ...Object.keys(disks).flatMap((n) => ['-blockdev', `driver=qcow2,node-name=${n},file.driver=file,file.filename=${path.join(dir, `${n}.qcow2`)}`])], { stdio: 'ignore' });
  try {
    for (let t = 0; !fs.existsSync(qmpPath); t++) {
      if (t > 100) throw new Error('QEMU did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const client = await QmpClient.connect(qmpPath);
    return { dir, client, stop: () => stop(qemu) };
  } catch (e) {
    stop(qemu);
    throw e;
  }
}

const GiB = 1024 ** 3;
/** The two disks both benches compare: 1 GiB changed every 4 MiB, 1 TiB sparse changed every 4 GiB. */
export const STRIDED_DISKS = { small: { size: GiB, stride: 4 * 1024 * 1024 }, big: { size: 1024 * GiB, stride: 4 * GiB } } as const;
/** Each round changes 256 pieces of this size, one per stride. */
export const CHANGE = 256 * 1024;

/** The round's changes on a disk of this stride, as extents. */
export function changesAt(stride: number): { offset: number; length: number }[] {
  return Array.from({ length: 256 }, (_, k) => ({ offset: k * stride, length: CHANGE }));
}

/** Adds `bitmap` on `disk`, then writes the round's 256 changes through QEMU (HMP qemu-io), so the bitmap holds exactly them. */
export async function changeRound(client: QmpClient, disk: string, stride: number, bitmap: string): Promise<void> {
  await client.execute('block-dirty-bitmap-add', { node: disk, name: bitmap });
  for (const [k, c] of changesAt(stride).entries()) await client.execute('human-monitor-command', { 'command-line': `qemu-io ${disk} "write -P ${(k % 250) + 1} ${c.offset} ${c.length}"` });
}
