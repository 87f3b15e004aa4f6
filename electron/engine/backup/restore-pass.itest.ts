// convertWhileVerifying with real qemu-img: the copy is the chain's content, a failed verification
// stops the copy and is the error, a failed copy is the error (its early writeback stopped), and a
// layer changed while the two run is refused.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertWhileVerifying } from './restore-pass';

let dir: string;
let base: string;
let top: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-onepass-'));
  base = path.join(dir, 'base.qcow2');
  top = path.join(dir, 'top.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 8M', base], { stdio: 'ignore' });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x22 4M 8M', top], { stdio: 'ignore' });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('convertWhileVerifying', () => {
  it('leaves a copy with the chain\'s content when the verification passes', async () => {
    const tmp = path.join(dir, 'ok.raw');
    let verified = false;
    await convertWhileVerifying([top, base], tmp, async () => {
      verified = true;
    }, { format: 'raw' });
    expect(verified).toBe(true);
    expect(execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', tmp, top], { encoding: 'utf8' })).toMatch(/identical/);
  });

  it('a failed verification is the error, whatever the copy did', async () => {
    const tmp = path.join(dir, 'bad.qcow2');
    await expect(convertWhileVerifying([top, base], tmp, () => Promise.reject(new Error('layer base: content changed')), { format: 'qcow2' }))
      .rejects.toThrow('layer base: content changed');
  });

  it('a copy qemu-img cannot make is the error, with its early writeback ended, and the next copy works', async () => {
    const garbage = path.join(dir, 'garbage.qcow2');
    fs.writeFileSync(garbage, Buffer.alloc(4096, 0x5a));
    await expect(convertWhileVerifying([garbage], path.join(dir, 'g.qcow2'), async () => undefined, { format: 'qcow2' }))
      .rejects.toThrow(/cannot copy .*garbage\.qcow2/);
    const tmp = path.join(dir, 'after.qcow2');
    await convertWhileVerifying([top, base], tmp, async () => undefined, { format: 'qcow2' });
    expect(execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', tmp, top], { encoding: 'utf8' })).toMatch(/identical/);
  });

  it('a layer changed while the copy and the verification ran is refused', async () => {
    const tmp = path.join(dir, 'raced.qcow2');
    const other = path.join(dir, 'raced-base.qcow2');
    fs.copyFileSync(base, other);
    const raced = path.join(dir, 'raced-top.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'raced-base.qcow2', '-F', 'qcow2', raced]);
    await expect(convertWhileVerifying([raced, other], tmp, async () => {
      // as if something wrote to the base layer after the checksum read it
      const fd = fs.openSync(other, 'r+');
      fs.writeSync(fd, Buffer.from([0]), 0, 1, fs.fstatSync(fd).size - 1);
      fs.closeSync(fd);
    }, { format: 'qcow2' })).rejects.toThrow(/raced-base\.qcow2 changed while it was being restored/);
  });
});
