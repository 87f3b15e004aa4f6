// Shared setup for the checkpoint engine's integration tests: a real lab VM in a fresh temp dir.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QmpClient } from '../../qmp/client';
import { startLab, stopLab, type LabDiskSpec, type LabStatus } from '../lab/labvm';
import { CheckpointEngine } from './engine';

export interface Rig {
  root: string;
  labDir: string;
  stateDir: string;
  lab: LabStatus;
  client: QmpClient;
  engine: CheckpointEngine;
}

export interface LiveBitmapRow {
  name?: string;
  recording: boolean;
  persistent: boolean;
  busy: boolean;
  inconsistent?: boolean;
  count: number;
  granularity: number;
}

const MiB = 1024 * 1024;
/** Small disks keep the shared machine light; vdc is qcow2 v2 as in the default lab. */
export const SMALL_DISKS: LabDiskSpec[] = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 32 * MiB },
  { name: 'vdc', sizeBytes: 16 * MiB, legacy: true },
];

export async function startRig(opts: { disks?: LabDiskSpec[]; root?: string; lockWaitMs?: number } = {}): Promise<Rig> {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tmck-'));
  const labDir = path.join(root, 'lab');
  const stateDir = path.join(root, 'state');
  const lab = await startLab({ dir: labDir, disks: opts.disks ?? SMALL_DISKS });
  const client = await QmpClient.connect(lab.qmp);
  const engine = await CheckpointEngine.open(client, { endpoint: lab.qmp, stateDir, lockWaitMs: opts.lockWaitMs });
  return { root, labDir, stateDir, lab, client, engine };
}

export async function stopRig(rig: Rig | undefined, opts: { keepRoot?: boolean } = {}): Promise<void> {
  if (!rig) return;
  await rig.client.close().catch(() => undefined);
  await stopLab(rig.labDir);
  if (!opts.keepRoot) fs.rmSync(rig.root, { recursive: true, force: true });
}

/** A simulated guest write through the device's BlockBackend (dirties bitmaps like a guest). */
export async function write(client: QmpClient, disk: string, offset: number, length: number, pattern = 0xab): Promise<void> {
  const out = await client.hmp(`qemu-io drive-${disk} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
  if (out.trim() !== '') throw new Error(`qemu-io on ${disk}: ${out}`);
}

export async function bitmaps(client: QmpClient, disk: string): Promise<LiveBitmapRow[]> {
  const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: LiveBitmapRow[] }[]>('query-named-block-nodes', { flat: true });
  return nodes.find((n) => n['node-name'] === `${disk}-fmt`)?.['dirty-bitmaps'] ?? [];
}

export async function bitmap(client: QmpClient, disk: string, name: string): Promise<LiveBitmapRow | undefined> {
  return (await bitmaps(client, disk)).find((b) => b.name === name);
}

export async function sha256(client: QmpClient, disk: string, name: string): Promise<string> {
  const r = await client.execute<{ sha256: string }>('x-debug-block-dirty-bitmap-sha256', { node: `${disk}-fmt`, name });
  return r.sha256;
}

/** {name → [recording, count]} of the named bitmaps on a disk, for compact assertions. */
export async function summary(client: QmpClient, disk: string): Promise<Record<string, [boolean, number]>> {
  const out: Record<string, [boolean, number]> = {};
  for (const b of await bitmaps(client, disk)) if (b.name) out[b.name] = [b.recording, b.count];
  return out;
}

export const KiB = 1024;
export { MiB };
