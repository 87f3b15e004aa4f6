import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256File } from './checksum';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-checksum-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function fileOf(name: string, data: Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  return f;
}

describe('sha256File', () => {
  it('hashes every byte of a file spanning several read buffers, the last one partial', async () => {
    const data = randomBytes(17 * 1024 * 1024 + 5);
    const r = await sha256File(fileOf('big', data));
    expect(r).toEqual({ sha256: createHash('sha256').update(data).digest('hex'), size: data.length });
  });

  it('an empty file and a file of exactly one buffer', async () => {
    expect(await sha256File(fileOf('empty', Buffer.alloc(0)))).toEqual({ sha256: createHash('sha256').digest('hex'), size: 0 });
    const one = randomBytes(8 * 1024 * 1024);
    expect((await sha256File(fileOf('one', one))).sha256).toBe(createHash('sha256').update(one).digest('hex'));
  });

  it('one flipped byte in the second buffer changes the sum', async () => {
    const data = randomBytes(9 * 1024 * 1024);
    const before = (await sha256File(fileOf('flip', data))).sha256;
    data[8 * 1024 * 1024 + 3]! ^= 0x01;
    expect((await sha256File(fileOf('flip', data))).sha256).not.toBe(before);
  });

  it('stops with the signal\'s reason when cancelled, and a missing file is an error', async () => {
    const ac = new AbortController();
    ac.abort(new Error('cancelled by the test'));
    await expect(sha256File(fileOf('c', randomBytes(1024)), { signal: ac.signal })).rejects.toThrow('cancelled by the test');
    await expect(sha256File(path.join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
  });
});
