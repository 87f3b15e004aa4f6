import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startEarlyWriteback } from './early-writeback';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** How many of this process's descriptors are open on `file`. */
function openDescriptors(file: string): number {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;
}

describe('startEarlyWriteback', () => {
  it('syncs a file while it is written and, once stopped, reports no error and leaves no descriptor open', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-writeback-'));
    dirs.push(dir);
    const file = path.join(dir, 'layer.qcow2.partial');
    fs.writeFileSync(file, '');
    const w = startEarlyWriteback(file, 1);
    for (let i = 0; i < 20; i++) {
      fs.appendFileSync(file, Buffer.alloc(256 * 1024, i));
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(openDescriptors(file)).toBe(1);
    const ended = w.stop();
    expect(w.stop()).toBe(ended);
    expect(await ended).toBeUndefined();
    expect(openDescriptors(file)).toBe(0);
    expect(fs.statSync(file).size).toBe(20 * 256 * 1024);
  });

  it('hands back a sync error naming the file instead of swallowing it', async () => {
    // fdatasync on a character device fails (EINVAL), as a failing disk would fail it (EIO).
    const w = startEarlyWriteback('/dev/null', 1);
    await new Promise((r) => setTimeout(r, 20));
    const err = await w.stop();
    expect(err?.message).toBe('writing /dev/null to disk failed: EINVAL');
  });

  it('a file it cannot open is no error: the later sync does all of it', async () => {
    const w = startEarlyWriteback(path.join(os.tmpdir(), 'tm-writeback-missing', 'x'), 1);
    expect(await w.stop()).toBeUndefined();
  });
});
