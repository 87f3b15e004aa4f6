import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { spyOnDatasync } from './datasync-spy';
import { MAX_EARLY_SYNCS, startEarlyWriteback } from './early-writeback';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Files in a fresh folder, and FileHandle's datasync made slow (`holdMs`) and counted while in flight. */
async function slowSyncs(n: number, holdMs: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-writeback-'));
  dirs.push(dir);
  const files = Array.from({ length: n }, (_, i) => path.join(dir, `d${i}.qcow2.partial`));
  for (const f of files) fs.writeFileSync(f, 'x');
  const seen = { inFlight: 0, most: 0, fds: new Set<number>() };
  await spyOnDatasync(async (handle) => {
    seen.inFlight++;
    seen.most = Math.max(seen.most, seen.inFlight);
    seen.fds.add(handle.fd);
    await new Promise((r) => setTimeout(r, holdMs));
    seen.inFlight--;
  });
  return { files, seen };
}

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

/** FileHandle's real datasync, watched: `ended` settles once the first call (on any file) has ended, well or not. */
async function watchFirstSync(): Promise<{ ended: Promise<void> }> {
  let done!: () => void;
  const ended = new Promise<void>((r) => (done = r));
  await spyOnDatasync((_handle, realDatasync) => realDatasync().finally(done));
  return { ended };
}

describe('startEarlyWriteback', () => {
  it('syncs a file while it is written and, once stopped, reports no error and leaves no descriptor open', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-writeback-'));
    dirs.push(dir);
    const file = path.join(dir, 'layer.qcow2.partial');
    fs.writeFileSync(file, '');
    const firstSync = await watchFirstSync();
    const w = startEarlyWriteback(file, 1);
    for (let i = 0; i < 20; i++) {
      fs.appendFileSync(file, Buffer.alloc(256 * 1024, i));
      await new Promise((r) => setTimeout(r, 2));
    }
    // Its descriptor is checked once it has synced: a fixed wait raced the open on a loaded machine.
    await firstSync.ended;
    expect(openDescriptors(file)).toBe(1);
    const ended = w.stop();
    expect(w.stop()).toBe(ended);
    expect(await ended).toBeUndefined();
    expect(openDescriptors(file)).toBe(0);
    expect(fs.statSync(file).size).toBe(20 * 256 * 1024);
  });

  it('hands back a sync error naming the file instead of swallowing it', async () => {
    // fdatasync on a character device fails (EINVAL), as a failing disk would fail it (EIO).
    // Stopped only once the first sync has failed: a fixed wait raced the open on a loaded machine
    // (CI stopped it before any sync, and rightly got no error).
    const firstSync = await watchFirstSync();
    const w = startEarlyWriteback('/dev/null', 1);
    await firstSync.ended;
    const err = await w.stop();
    expect(err?.message).toBe('writing /dev/null to disk failed: EINVAL');
  });

  it('runs at most MAX_EARLY_SYNCS syncs at once across files, and every file gets its turn', async () => {
    const { files, seen } = await slowSyncs(5, 15);
    const ws = files.map((f) => startEarlyWriteback(f, 1));
    while (seen.fds.size < files.length) await new Promise((r) => setTimeout(r, 5));
    expect(await Promise.all(ws.map((w) => w.stop()))).toEqual(files.map(() => undefined));
    expect(seen.most).toBe(MAX_EARLY_SYNCS);
    expect(seen.inFlight).toBe(0);
  });

  it('a writeback stopped while it waits for a place ends at once, without waiting for the syncs in flight', async () => {
    const { files, seen } = await slowSyncs(MAX_EARLY_SYNCS + 1, 300);
    const ws = files.map((f) => startEarlyWriteback(f, 1));
    while (seen.inFlight < MAX_EARLY_SYNCS) await new Promise((r) => setTimeout(r, 5));
    // One of them has no place. Stopped together, it ends first, while both syncs are still in flight.
    const inFlightAtEachEnd: number[] = [];
    const ended = await Promise.all(ws.map((w) => w.stop().then((e) => (inFlightAtEachEnd.push(seen.inFlight), e))));
    expect(ended).toEqual(files.map(() => undefined));
    expect(inFlightAtEachEnd[0]).toBe(MAX_EARLY_SYNCS);
    expect(seen.inFlight).toBe(0);
  });

  it('a file it cannot open is no error: the later sync does all of it', async () => {
    const w = startEarlyWriteback(path.join(os.tmpdir(), 'tm-writeback-missing', 'x'), 1);
    expect(await w.stop()).toBeUndefined();
  });
});
