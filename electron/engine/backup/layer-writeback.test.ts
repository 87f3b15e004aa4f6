import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { spyOnDatasync } from '../../os/datasync-spy';
import { LayerWritebacks } from './layer-writeback';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * FileHandle's datasync, still the real one, with a promise for the first call that succeeded and one
 * for the first that failed. The test stops the writebacks only after both: a fixed wait raced their
 * open in the thread pool on a loaded machine (as in os/early-writeback.test.ts, fixed in 45a5e95).
 */
async function watchedSyncs(): Promise<{ firstOk: Promise<void>; firstFailed: Promise<void> }> {
  let ok!: () => void;
  let failed!: () => void;
  const firstOk = new Promise<void>((r) => (ok = r));
  const firstFailed = new Promise<void>((r) => (failed = r));
  await spyOnDatasync((_handle, realDatasync) => realDatasync().then(ok, (e: unknown) => {
    failed();
    throw e;
  }));
  return { firstOk, firstFailed };
}

describe('LayerWritebacks', () => {
  it('per disk: nothing before it ran, success for a file that synced, the sync error for one that failed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-layer-writeback-'));
    dirs.push(dir);
    const good = path.join(dir, 'vda.qcow2.partial');
    fs.writeFileSync(good, Buffer.alloc(1024 * 1024, 1));
    const syncs = await watchedSyncs();
    const w = new LayerWritebacks();
    expect(w.of('vda')).toBeUndefined();
    w.start([['vda', good], ['vdb', '/dev/null']]);
    // vda has synced once, vdb's sync has failed (fdatasync on a character device: EINVAL)
    await Promise.all([syncs.firstOk, syncs.firstFailed]);
    w.stop();
    await expect(w.of('vda')).resolves.toBeUndefined();
    await expect(w.of('vdb')).rejects.toThrow('writing /dev/null to disk failed: EINVAL');
    expect(w.of('vdc')).toBeUndefined();
  });

  it('settle stops what runs and ignores errors (a rollback deletes the files next)', async () => {
    const w = new LayerWritebacks();
    w.start([['vdb', '/dev/null']]);
    await expect(w.settle()).resolves.toBeUndefined();
  });
});
