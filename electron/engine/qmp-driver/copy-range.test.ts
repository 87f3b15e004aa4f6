import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canReflink, hasCopyRange, useCopyRange } from './copy-range';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-reflink-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('copy-range', () => {
  it('x-perf use-copy-range from QEMU 6.0 on', () => {
    expect(hasCopyRange({ major: 5, minor: 2 })).toBe(false);
    expect(hasCopyRange({ major: 6, minor: 0 })).toBe(true);
    expect(hasCopyRange({ major: 7, minor: 2 })).toBe(true);
  });

  it('reads the version discovery reports; an unknown version never uses it', () => {
    const reflink = canReflink(dir);
    expect(useCopyRange('7.2.0', dir)).toBe(!reflink);
    expect(useCopyRange('5.2.0', dir)).toBe(false);
    expect(useCopyRange('unknown', dir)).toBe(false);
  });

  it('the reflink probe answers what the kernel says, and leaves nothing behind', () => {
    const answer = canReflink(dir);
    expect(typeof answer).toBe('boolean');
    expect(fs.readdirSync(dir)).toEqual([]);
    // the same answer as a clone tried by hand in the same folder
    fs.writeFileSync(path.join(dir, 'a'), 'x');
    let byHand = true;
    try {
      fs.copyFileSync(path.join(dir, 'a'), path.join(dir, 'b'), fs.constants.COPYFILE_FICLONE_FORCE);
    } catch {
      byHand = false;
    }
    expect(answer).toBe(byHand);
  });

  it('a folder it cannot write to is an error, not a guess', () => {
    expect(() => canReflink(path.join(dir, 'missing'))).toThrow(/ENOENT/);
  });
});
