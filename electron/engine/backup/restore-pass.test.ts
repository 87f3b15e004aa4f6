// convertWhileVerifying's early writeback, with the copy's end in the test's hands (qemu-img's real
// copies are in restore-pass.itest.ts): a sync error seen only by the early writeback fails the
// restore even when the copy and the verification both succeeded.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { spyOnDatasync } from '../../os/datasync-spy';
import { convertWhileVerifying } from './restore-pass';

const copy = vi.hoisted(() => ({ finish: (): void => undefined }));
vi.mock('./qemuimg', () => ({
  convertImage: (_src: string, dst: string) => {
    fs.writeFileSync(dst, 'copy', { mode: 0o600 });
    return new Promise<void>((resolve) => (copy.finish = resolve));
  },
}));

let dir: string;
let layer: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-restorepass-'));
  layer = path.join(dir, 'full.qcow2');
  fs.writeFileSync(layer, 'layer');
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** FileHandle's datasync failing with `code`; `firstCall` resolves once it has been called. */
async function failingSyncs(code: string): Promise<{ firstCall: Promise<void> }> {
  let called!: () => void;
  const firstCall = new Promise<void>((r) => (called = r));
  await spyOnDatasync(() => {
    called();
    return Promise.reject(Object.assign(new Error(`${code}: i/o error, fdatasync`), { code }));
  });
  return { firstCall };
}

describe('convertWhileVerifying and the copy\'s early writeback', () => {
  it('an early sync\'s write error fails the restore, though the copy and the verification succeeded', async () => {
    const synced = await failingSyncs('EIO');
    const tmp = path.join(dir, 'restore.tmp');
    const pass = convertWhileVerifying([layer], tmp, async () => undefined, { format: 'qcow2' });
    await synced.firstCall;
    copy.finish();
    await expect(pass).rejects.toThrow(`writing ${tmp} to disk failed: EIO`);
  });

  it('with every early sync fine, the pass succeeds', async () => {
    const tmp = path.join(dir, 'restore.tmp');
    const pass = convertWhileVerifying([layer], tmp, async () => undefined, { format: 'qcow2' });
    await new Promise((r) => setTimeout(r, 30));
    copy.finish();
    await expect(pass).resolves.toBeUndefined();
  });
});
