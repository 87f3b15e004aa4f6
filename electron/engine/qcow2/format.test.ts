// The Node-written empty qcow2 must be qemu-img's own image, byte for byte, for every geometry it
// lays out; for others it must decline so that qemu-img runs. Real qemu-img is the reference.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyQcow2Layout, l2TablesOf, qcow2HeadFacts, writeEmptyQcow2 } from './format';
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

  it('with L2 tables allocated ahead: QEMU writes through them, and qemu-img finds the image clean', async () => {
    const f = path.join(dir, 'ahead.qcow2');
    const tables = l2TablesOf([{ offset: 0, length: 64 * KiB }, { offset: 4 * GiB, length: 256 * KiB }, { offset: 1 * TiB - 512 * MiB, length: 1 }], 64 * KiB);
    expect(tables).toEqual([0, 8, 2047]);
    const layout = emptyQcow2Layout(1 * TiB, { backing: 'base.qcow2', l2Tables: tables })!;
    await writeEmptyQcow2(f, layout, 'base.qcow2');
    // header, refcount table and block, the 16 KiB L1 table in a cluster of its own, then the three tables
    expect(fs.statSync(f).size).toBe((4 + 3) * 64 * KiB);
    expect(execFileSync('qemu-img', ['check', f]).toString()).toContain('No errors were found on the image.');
    expect(JSON.parse(execFileSync('qemu-img', ['map', '--output=json', f]).toString()).every((m: { data: boolean }) => !m.data)).toBe(true);
    // Writes inside the tables and outside them (QEMU allocates that table itself), then read back.
    const io = (cmd: string) => execFileSync('qemu-io', ['-f', 'qcow2', '-c', cmd, f]).toString();
    for (const [at, pattern] of [[0, 1], [4 * GiB + 64 * KiB, 2], [1 * TiB - 64 * KiB, 3], [100 * GiB, 4]] as const) io(`write -P ${pattern} ${at} 64k`);
    const check = execFileSync('qemu-img', ['check', '--output=json', f]).toString();
    const c = JSON.parse(check) as { 'check-errors': number; leaks?: number; corruptions?: number };
    expect([c['check-errors'], c.leaks ?? 0, c.corruptions ?? 0]).toEqual([0, 0, 0]);
    for (const [at, pattern] of [[0, 1], [4 * GiB + 64 * KiB, 2], [1 * TiB - 64 * KiB, 3], [100 * GiB, 4], [4 * GiB, 0]] as const) {
      expect(io(`read -P ${pattern} ${at} 64k`)).not.toContain('Pattern verification failed');
    }
  });

  it('lists each L2 table of a set of ranges once, in order, and refuses tables out of order or past the disk', () => {
    const span = 512 * MiB; // 64 KiB clusters: 8,192 entries of 64 KiB each
    expect(l2TablesOf([], 64 * KiB)).toEqual([]);
    expect(l2TablesOf([{ offset: span - 1, length: 2 }, { offset: 0, length: 1 }, { offset: 10, length: 0 }], 64 * KiB)).toEqual([0, 1]);
    expect(l2TablesOf([{ offset: 3 * span, length: 2 * span }], 64 * KiB)).toEqual([3, 4]);
    expect(l2TablesOf([{ offset: 2 * MiB * (2 * MiB / 8), length: 1 }], 2 * MiB)).toEqual([1]);
    expect(() => emptyQcow2Layout(1 * GiB, { l2Tables: [1, 0] })).toThrow(RangeError);
    expect(() => emptyQcow2Layout(1 * GiB, { l2Tables: [2] })).toThrow('below 2');
    expect(() => emptyQcow2Layout(1 * GiB, { l2Tables: [0, 0] })).toThrow(RangeError);
    // More tables than one refcount block counts: declined (the caller writes the image without them).
    expect(emptyQcow2Layout(64 * TiB, { l2Tables: [...Array(40_000).keys()] })).toBeUndefined();
  });
});

describe("a qcow2 header's facts read by Node (qcow2HeadFacts)", () => {
  it('match what qemu-img info reports: compat 1.1 and 0.10, with and without a backing name, long names too', async () => {
    const files: string[] = [];
    const make = (name: string, args: string[]) => {
      const f = path.join(dir, name);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...args, f, String(3 * GiB + 512)], { cwd: dir, stdio: 'pipe' });
      files.push(f);
    };
    make('facts-plain.qcow2', ['-o', 'compat=1.1']);
    make('facts-v2.qcow2', ['-o', 'compat=0.10', '-b', 'base.qcow2', '-F', 'qcow2']);
    make('facts-long.qcow2', ['-b', `sub/${'b'.repeat(200)}.qcow2`, '-F', 'qcow2', '-o', 'cluster_size=4096']);
    const node = path.join(dir, 'facts-node.qcow2');
    await createQcow2(node, 64 * GiB, { backing: 'base.qcow2' });
    files.push(node);
    for (const f of files) {
      const info = await imageInfo(f, { format: 'qcow2' });
      expect(await qcow2HeadFacts(f)).toEqual({ virtualSize: info.virtualSize, ...(info.backingFile ? { backingFile: info.backingFile } : {}) });
    }
    expect((await qcow2HeadFacts(path.join(dir, 'facts-long.qcow2'))).backingFile).toBe(`sub/${'b'.repeat(200)}.qcow2`);
  });

  it('refuse, naming the file, what is not a qcow2 header or puts its backing name where qemu-img never does', async () => {
    const raw = path.join(dir, 'facts-raw.img');
    fs.writeFileSync(raw, Buffer.alloc(4096, 0x41));
    await expect(qcow2HeadFacts(raw)).rejects.toThrow(`${raw} is not a qcow2 image`);
    const far = path.join(dir, 'facts-far.qcow2');
    fs.copyFileSync(path.join(dir, 'base.qcow2'), far);
    const fd = fs.openSync(far, 'r+');
    const field = Buffer.alloc(12);
    field.writeBigUInt64BE(1024n * 1024n, 0); // backing name offset: 1 MiB, outside the header cluster
    field.writeUInt32BE(10, 8);
    fs.writeSync(fd, field, 0, 12, 8);
    fs.closeSync(fd);
    await expect(qcow2HeadFacts(far)).rejects.toThrow(`${far}: its header's backing name (10 bytes at 1048576) is not where qemu-img writes one`);
    await expect(qcow2HeadFacts(path.join(dir, 'facts-missing.qcow2'))).rejects.toThrow(/ENOENT/);
  });
});
