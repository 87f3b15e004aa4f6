// The Node-written empty qcow2 must be qemu-img's own image, byte for byte, for every geometry it
// lays out; for others it must decline so that qemu-img runs. Real qemu-img is the reference.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyQcow2Layout, writeEmptyQcow2 } from './format';
import { createQcow2, imageInfo } from '../backup/qemuimg';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-qcow2-empty-'));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', path.join(dir, 'base.qcow2'), String(GiB)]);
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.copyFileSync(path.join(dir, 'base.qcow2'), path.join(dir, 'sub', `${'b'.repeat(200)}.qcow2`));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function qemuImgCreate(file: string, size: number, clusterSize: number, backing?: string): void {
  const args = ['create', '-q', '-f', 'qcow2', '-o', `compat=1.1,cluster_size=${clusterSize}`];
  if (backing) args.push('-b', backing, '-F', 'qcow2');
  execFileSync('qemu-img', [...args, file, String(size)], { stdio: 'pipe' });
}

describe('an empty qcow2 written by Node', () => {
  const sizes = [512, 1 * MiB, 1 * GiB, 1 * GiB + 512, 10 * GiB + 4 * KiB, 1 * TiB, 16 * TiB, 256 * TiB];
  const backings = [undefined, 'base.qcow2', `sub/${'b'.repeat(200)}.qcow2`];
  let n = 0;
  for (const cs of [64 * KiB, 128 * KiB, 256 * KiB, 1 * MiB, 2 * MiB]) {
    it(`is qemu-img's image, byte for byte, with ${cs / KiB} KiB clusters (8 sizes up to 256 TiB, 3 backings)`, async () => {
      for (const size of sizes) {
        for (const backing of backings) {
          const layout = emptyQcow2Layout(size, { clusterSize: cs, backing });
          expect(layout, `${size} bytes, backing ${backing}`).toBeDefined();
          const ref = path.join(dir, `ref${n}.qcow2`);
          const mine = path.join(dir, `mine${n++}.qcow2`);
          qemuImgCreate(ref, size, cs, backing);
          await writeEmptyQcow2(mine, layout!, backing);
          expect(fs.readFileSync(mine).equals(fs.readFileSync(ref)), `${size} bytes, backing ${backing}`).toBe(true);
          expect(fs.statSync(mine).mode & 0o777).toBe(0o600);
          fs.rmSync(ref);
          fs.rmSync(mine);
        }
      }
    });
  }

  it('lays out every geometry the backups use (64 KiB clusters, up to 16 TiB)', () => {
    for (const size of [1 * GiB, 1 * TiB, 16 * TiB]) expect(emptyQcow2Layout(size, { backing: 'base.qcow2' })).toBeDefined();
  });

  it('declines what it does not lay out, so qemu-img runs instead', () => {
    expect(emptyQcow2Layout(1 * GiB, { clusterSize: 4 * KiB })).toBeUndefined(); // qemu-img drops the feature table
    expect(emptyQcow2Layout(1 * GiB, { clusterSize: 3 * 65536 })).toBeUndefined();
    expect(emptyQcow2Layout(1000, {})).toBeUndefined();
    expect(emptyQcow2Layout(0, {})).toBeUndefined();
    expect(emptyQcow2Layout(1 * GiB, { backing: 'x'.repeat(1024) })).toBeUndefined();
    expect(emptyQcow2Layout(1 * GiB, { backing: 'a\0b' })).toBeUndefined();
    expect(emptyQcow2Layout(1 * GiB, { backing: '' })).toBeUndefined();
  });

  it('createQcow2 still makes the geometries it declines, through qemu-img', async () => {
    const f = path.join(dir, 'small-clusters.qcow2');
    await createQcow2(f, 1 * GiB, { clusterSize: 4 * KiB, backing: 'base.qcow2' });
    const info = await imageInfo(f);
    expect(info.clusterSize).toBe(4 * KiB);
    expect(info.backingFile).toBe('base.qcow2');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });

  it('refuses a backing image that is missing or not qcow2, as qemu-img does, and writes nothing', async () => {
    const missing = path.join(dir, 'no-backing.qcow2');
    await expect(createQcow2(missing, 1 * GiB, { backing: 'gone.qcow2' })).rejects.toThrow(
      `cannot create image ${missing}: Could not open backing image 'gone.qcow2'`,
    );
    expect(fs.existsSync(missing)).toBe(false);
    fs.writeFileSync(path.join(dir, 'raw.img'), Buffer.alloc(4096));
    await expect(createQcow2(path.join(dir, 'over-raw.qcow2'), 1 * GiB, { backing: 'raw.img' })).rejects.toThrow("backing image 'raw.img' is not a qcow2 image");
  });

  it('replaces an image left at the path, private again, and qemu-img checks it clean', async () => {
    const f = path.join(dir, 'left.qcow2');
    fs.writeFileSync(f, Buffer.alloc(5 * MiB, 0xab), { mode: 0o644 });
    await createQcow2(f, 1 * TiB, { backing: 'base.qcow2' });
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(fs.statSync(f).size).toBe(3 * 64 * KiB + 2048 * 8);
    execFileSync('qemu-img', ['check', '-q', f]);
    const info = await imageInfo(f);
    expect([info.virtualSize, info.backingFile, info.backingFormat, info.compat]).toEqual([1 * TiB, 'base.qcow2', 'qcow2', '1.1']);
  });

  it('says which image it could not create when the folder is not there', async () => {
    const f = path.join(dir, 'nowhere', 'x.qcow2');
    await expect(createQcow2(f, 1 * GiB)).rejects.toThrow(`cannot create image ${f}: ENOENT`);
  });
});
