// Tests only: FileHandle.datasync replaced for every handle of the process, to see or fail the syncs
// that code under test makes in the thread pool (os/early-writeback.ts and its callers).

import * as fs from 'node:fs';
import { vi } from 'vitest';

type FileHandle = fs.promises.FileHandle;

/**
 * Every FileHandle's datasync runs `impl` instead, which gets the handle and its real datasync to call
 * (or not). FileHandle's class is not exported by node:fs, so its prototype comes from a handle opened
 * on /dev/null. Undone by vi.restoreAllMocks().
 */
export async function spyOnDatasync(impl: (handle: FileHandle, realDatasync: () => Promise<void>) => Promise<void>): Promise<void> {
  const probe = await fs.promises.open('/dev/null', 'r');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const real = proto.datasync;
  vi.spyOn(proto, 'datasync').mockImplementation(function (this: FileHandle) {
    return impl(this, () => real.call(this));
  });
}
