import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LayerWritebacks } from './layer-writeback';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('LayerWritebacks', () => {
  it('per disk: nothing before it ran, success for a file that synced, the sync error for one that failed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-layer-writeback-'));
    dirs.push(dir);
    const good = path.join(dir, 'vda.qcow2.partial');
    fs.writeFileSync(good, Buffer.alloc(1024 * 1024, 1));
    const w = new LayerWritebacks();
    expect(w.of('vda')).toBeUndefined();
    w.start([['vda', good], ['vdb', '/dev/null']]);
    await new Promise((r) => setTimeout(r, 20));
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
