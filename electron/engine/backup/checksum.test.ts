import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blake3Implementation, checksumFile, layerChecksumAlgorithm, recordedChecksum, shortChecksum, withChecksum } from './checksum';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-checksum-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function fileOf(name: string, data: Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  return f;
}

// BLAKE3's published test vectors (github.com/BLAKE3-team/BLAKE3, test_vectors.json): input byte i is i % 251.
const vectorInput = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
const BLAKE3_EMPTY = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
const BLAKE3_1024 = '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7';

describe('checksumFile', () => {
  it('new layers get BLAKE3 from the native package on this platform', () => {
    expect(blake3Implementation()).toBe('native');
    expect(layerChecksumAlgorithm()).toBe('blake3');
  });

  it('BLAKE3 matches the published vectors, native and wasm alike', async () => {
    for (const implementation of ['native', 'wasm'] as const) {
      expect((await checksumFile(fileOf('v0', vectorInput(0)), 'blake3', { implementation })).digest).toBe(BLAKE3_EMPTY);
      expect((await checksumFile(fileOf('v1024', vectorInput(1024)), 'blake3', { implementation })).digest).toBe(BLAKE3_1024);
    }
  });

  it('hashes every byte of a file spanning several read buffers, the last one partial; native equals wasm', async () => {
    const data = randomBytes(17 * 1024 * 1024 + 5);
    const f = fileOf('big', data);
    expect(await checksumFile(f, 'sha256')).toEqual({ algorithm: 'sha256', digest: createHash('sha256').update(data).digest('hex'), size: data.length });
    const native = await checksumFile(f);
    expect(native.algorithm).toBe('blake3');
    expect(native.size).toBe(data.length);
    expect((await checksumFile(f, 'blake3', { implementation: 'wasm' })).digest).toBe(native.digest);
  });

  it('a file of exactly one buffer', async () => {
    const one = randomBytes(8 * 1024 * 1024);
    expect((await checksumFile(fileOf('one', one), 'sha256')).digest).toBe(createHash('sha256').update(one).digest('hex'));
  });

  it('one flipped byte in the second buffer changes the sum, with either algorithm', async () => {
    const data = randomBytes(9 * 1024 * 1024);
    const before = [(await checksumFile(fileOf('flip', data))).digest, (await checksumFile(fileOf('flip', data), 'sha256')).digest];
    data[8 * 1024 * 1024 + 3]! ^= 0x01;
    const after = [(await checksumFile(fileOf('flip', data))).digest, (await checksumFile(fileOf('flip', data), 'sha256')).digest];
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
  });

  it('a file ending exactly at a read-buffer boundary (1 MiB × n) is hashed whole', async () => {
    for (const n of [16 * 1024 * 1024, 3 * 1024 * 1024]) {
      const data = randomBytes(n);
      const sum = await checksumFile(fileOf(`exact-${n}`, data), 'sha256');
      expect(sum).toEqual({ algorithm: 'sha256', digest: createHash('sha256').update(data).digest('hex'), size: n });
    }
  });

  it('a cancel while hashing stops the hash with the signal\'s reason', async () => {
    const ac = new AbortController();
    const f = fileOf('cancelled', randomBytes(40 * 1024 * 1024));
    const pending = checksumFile(f, 'blake3', { signal: ac.signal });
    setImmediate(() => ac.abort(new Error('cancelled while hashing')));
    await expect(pending).rejects.toThrow('cancelled while hashing');
  });

  it("stops with the signal's reason when cancelled, and a missing file is an error", async () => {
    const ac = new AbortController();
    ac.abort(new Error('cancelled by the test'));
    await expect(checksumFile(fileOf('c', randomBytes(1024)), 'blake3', { signal: ac.signal })).rejects.toThrow('cancelled by the test');
    await expect(checksumFile(path.join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
  });
});

describe('checksums in manifest entries', () => {
  it('reads the one field an entry has, and replaces it by the other algorithm', () => {
    const d = { name: 'vda', sha256: 'a'.repeat(64) };
    expect(recordedChecksum(d)).toEqual({ algorithm: 'sha256', digest: 'a'.repeat(64) });
    const n = withChecksum(d, { algorithm: 'blake3', digest: 'b'.repeat(64) });
    expect(n).toEqual({ name: 'vda', blake3: 'b'.repeat(64) });
    expect(shortChecksum(n, 4)).toBe('blake3 bbbb');
    expect(() => recordedChecksum({})).toThrow('records no checksum');
  });
});
