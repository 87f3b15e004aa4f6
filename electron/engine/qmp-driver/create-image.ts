// New qcow2 images (push targets, pull fleece images) formatted by the VM's own QEMU with
// `blockdev-create` instead of a `qemu-img create` process (a process costs 50–200 ms under load;
// these are ~4 QMP round trips). QEMU 7.2 (notes §4, G11): the file must exist (we create it,
// exclusive and 0600, so QEMU's 0644-minus-umask never applies), `blockdev-add` a file node on it,
// `blockdev-create` the qcow2 on that node (a job: created → … → concluded, dismissed by hand; the
// stable command since QEMU 4.0, `x-blockdev-create` before), then the file node is removed again:
// blockdev-create formats the image, it opens nothing, and the caller opens it as it needs.
// Same image as `qemu-img create -f qcow2 -o compat=1.1 [-b BACKING -F qcow2]`: version v3, QEMU's
// default cluster size (64 KiB) unless one is given, the backing path written as given.

import * as fs from 'node:fs';
import { PRIVATE_FILE_MODE } from '../../os/atomic-file';
import type { QmpClient } from '../../qmp/client';
import { QmpError } from '../../qmp/errors';
import type { QmpJob } from './jobs';

export interface Qcow2Spec {
  file: string;
  sizeBytes: number;
  /** Backing file as written into the header (relative stays relative); its format is qcow2. */
  backing?: string;
  clusterSize?: number;
}

/** The QEMU names a creation uses for `node` (≤ 31 characters for a node of ≤ 27). */
export function creationNames(node: string): { fileNode: string; jobId: string } {
  return { fileNode: `${node}-f`, jobId: `${node}-mk` };
}

/**
 * Creates `spec.file` (exclusive: it must not exist) as a qcow2 image through QEMU. On failure
 * the file, which this call created, is removed again, and so is what it put into QEMU.
 */
export async function createQcow2InQemu(client: QmpClient, node: string, spec: Qcow2Spec, timeoutMs = 60_000): Promise<void> {
  const { fileNode, jobId } = creationNames(node);
  fs.closeSync(fs.openSync(spec.file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, PRIVATE_FILE_MODE));
  let fileAdded = false;
  let jobStarted = false;
  try {
    await client.execute('blockdev-add', { driver: 'file', 'node-name': fileNode, filename: spec.file });
    fileAdded = true;
    const statuses: string[] = [];
    const concluded = client.waitForEvent((e) => {
      if (e.event !== 'JOB_STATUS_CHANGE' || e.data.id !== jobId) return false;
      statuses.push(String(e.data.status));
      return e.data.status === 'concluded';
    }, timeoutMs, `the creation of ${spec.file}`);
    concluded.catch(() => undefined); // awaited below; a failed execute must not leave it unhandled
    await client.execute('blockdev-create', {
      'job-id': jobId,
      options: {
        driver: 'qcow2', file: fileNode, size: spec.sizeBytes, version: 'v3',
        ...(spec.clusterSize ? { 'cluster-size': spec.clusterSize } : {}),
        ...(spec.backing ? { 'backing-file': spec.backing, 'backing-fmt': 'qcow2' } : {}),
      },
    });
    jobStarted = true;
    await concluded;
    // A successful create job passes `pending` (auto-finalize); a failed one goes aborting → concluded.
    if (!statuses.includes('pending') || statuses.includes('aborting')) {
      const job = (await client.execute<QmpJob[]>('query-jobs')).find((j) => j.id === jobId);
      throw new Error(job?.error ?? 'the creation job ended without finishing');
    }
    jobStarted = false;
    await client.execute('job-dismiss', { id: jobId });
    fileAdded = false;
    await client.execute('blockdev-del', { 'node-name': fileNode });
  } catch (e) {
    if (jobStarted) await dismissWhenConcluded(client, jobId);
    if (fileAdded) await client.execute('blockdev-del', { 'node-name': fileNode }).catch(() => undefined);
    fs.rmSync(spec.file, { force: true });
    const why = e instanceof QmpError ? e.desc : (e as Error).message;
    throw new Error(`cannot create image ${spec.file}: ${why}`, { cause: e });
  }
}

/** Best effort: cancels a creation job still running, and dismisses it once it concluded. */
async function dismissWhenConcluded(client: QmpClient, jobId: string): Promise<void> {
  if (!client.isOpen) return;
  for (let i = 0; i < 50; i++) {
    const job = (await client.execute<QmpJob[]>('query-jobs').catch(() => [] as QmpJob[])).find((j) => j.id === jobId);
    if (!job) return;
    if (job.status === 'concluded') {
      await client.execute('job-dismiss', { id: jobId }).catch(() => undefined);
      return;
    }
    if (i === 0) await client.execute('job-cancel', { id: jobId }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
  }
}
