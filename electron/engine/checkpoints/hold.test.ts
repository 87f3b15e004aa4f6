// The engine's lock holds: one at a time, re-entrant within a call chain, the final step always run.
import { describe, expect, it } from 'vitest';
import { LockHolds } from './hold';

function recorder() {
  const log: string[] = [];
  const holds = new LockHolds({
    acquire: async (command) => {
      log.push(`acquire ${command}`);
      return () => log.push(`release ${command}`);
    },
    beforeRelease: async () => void log.push('before release'),
  });
  return { log, holds };
}
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('LockHolds', () => {
  it('runs holds one after another, each with acquire, work, final step, release', async () => {
    const { log, holds } = recorder();
    const a = holds.run('a', async () => {
      log.push('a starts');
      await tick();
      log.push('a ends');
      return 1;
    });
    const b = holds.run('b', async () => void log.push('b runs'));
    expect(await a).toBe(1);
    await b;
    expect(log).toEqual(['acquire a', 'a starts', 'a ends', 'before release', 'release a', 'acquire b', 'b runs', 'before release', 'release b']);
  });

  it('is re-entrant within one call chain: a nested run does not wait for itself or take the lock again', async () => {
    const { log, holds } = recorder();
    const out = await holds.run('outer', async () => holds.run('inner', async () => 'nested'));
    expect(out).toBe('nested');
    expect(log).toEqual(['acquire outer', 'before release', 'release outer']);
  });

  it('a failing hold still runs its final step and releases; the next hold runs', async () => {
    const { log, holds } = recorder();
    await expect(holds.run('a', async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    await holds.run('b', async () => undefined);
    expect(log).toEqual(['acquire a', 'before release', 'release a', 'acquire b', 'before release', 'release b']);
  });

  it('a lock that cannot be taken fails that hold only', async () => {
    let first = true;
    const holds = new LockHolds({
      acquire: async () => {
        if (first) {
          first = false;
          throw new Error('metadata of VM demo is locked by pid 1');
        }
        return () => undefined;
      },
      beforeRelease: async () => undefined,
    });
    await expect(holds.run('a', async () => 'a')).rejects.toThrow('locked by pid 1');
    expect(await holds.run('b', async () => 'b')).toBe('b');
  });

  it('idle() waits for the holds started so far', async () => {
    const { log, holds } = recorder();
    void holds.run('a', async () => {
      await tick();
      log.push('a done');
    });
    await holds.idle();
    expect(log).toContain('release a');
  });
});
