// A command follows only the job it started, though a resident host runs other commands' jobs of the
// same kind on the same service at the same time.

import { describe, expect, it, vi } from 'vitest';
import type { JobInfo } from '../../shared/contract';
import type { CliContext } from './context';
import { followOwnJob } from './own-job';

function job(id: string, kind: JobInfo['kind'], startedAt: number, done = 0): JobInfo {
  return { id, kind, vmId: 'vm', state: 'running', title: id, startedAt, progress: [{ disk: 'vda', done, total: 10 }], log: [] };
}

function fakeContext(): { ctx: CliContext; emit(j: JobInfo): void; listeners(): number } {
  const ls = new Set<(j: JobInfo) => void>();
  const ctx = { service: { events: { on: (_: string, l: (j: JobInfo) => void) => (ls.add(l), () => ls.delete(l)) } } } as unknown as CliContext;
  return { ctx, emit: (j) => ls.forEach((l) => l(j)), listeners: () => ls.size };
}

describe('followOwnJob', () => {
  it('takes the first job of its kind that started after it, and then only that one', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const f = fakeContext();
      const seen: string[] = [];
      const own = followOwnJob(f.ctx, 'backup', (j) => seen.push(`${j.id}:${j.progress[0]!.done}`));
      f.emit(job('older', 'backup', 999_999, 5)); // another command's, started before
      f.emit(job('pull', 'pull', 1_000_000)); // another kind
      expect(own.current()).toBeUndefined();
      f.emit(job('mine', 'backup', 1_000_000, 1));
      f.emit(job('later', 'backup', 1_000_001, 7)); // another command's, started after mine
      f.emit(job('mine', 'backup', 1_000_000, 2));
      expect(seen).toEqual(['mine:1', 'mine:2']);
      expect(own.current()?.progress[0]!.done).toBe(2);
      own.off();
      expect(f.listeners()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
