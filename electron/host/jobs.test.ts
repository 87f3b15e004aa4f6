import { describe, expect, it } from 'vitest';
import type { JobInfo } from '../../shared/contract';
import { JobRunner } from './jobs';

const spec = { kind: 'write-sim' as const, vmId: 'demo', title: 'Write 1 MiB', progress: [{ disk: 'vda', total: 100 }] };

function runner() {
  const updates: JobInfo[] = [];
  return { jobs: new JobRunner((j) => updates.push(j)), updates };
}

describe('JobRunner', () => {
  it('runs a job to success, with progress, log and a final update', async () => {
    const { jobs, updates } = runner();
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    const { job } = jobs.start(spec, async (ctx) => {
      ctx.progress('vda', 40);
      ctx.log('halfway');
      await gate;
      ctx.progress('vda', 100);
      return '2 writes';
    });
    expect(job.state).toBe('running');
    expect(jobs.get(job.id).progress).toEqual([{ disk: 'vda', done: 40, total: 100 }]);
    finish();
    await new Promise((r) => setTimeout(r, 10));
    const done = jobs.get(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.endedAt).toBeGreaterThanOrEqual(done.startedAt);
    expect(done.progress).toEqual([{ disk: 'vda', done: 100, total: 100 }]);
    expect(done.log.map((l) => l.replace(/^\S+ /, ''))).toEqual(['started: Write 1 MiB', 'halfway', 'succeeded: 2 writes']);
    expect(updates[updates.length - 1]!.state).toBe('succeeded');
    // updates are snapshots, not the live object
    expect(updates[0]!.state).toBe('running');
  });

  it('a failing job records the error message', async () => {
    const { jobs } = runner();
    const { job } = jobs.start(spec, async () => {
      throw new Error('write to vda at offset 0 failed: Permission conflict');
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(jobs.get(job.id)).toMatchObject({ state: 'failed', error: 'write to vda at offset 0 failed: Permission conflict' });
  });

  it('cancel aborts the signal and waits until the job stopped', async () => {
    const { jobs } = runner();
    let sawAbort = false;
    const { job } = jobs.start(spec, (ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => {
      sawAbort = true;
      setTimeout(() => reject(new Error('stopped')), 20);
    })));
    const cancelled = await jobs.cancel(job.id);
    expect(sawAbort).toBe(true);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.error).toBeUndefined();
    // cancelling a finished job returns it unchanged
    expect((await jobs.cancel(job.id)).state).toBe('cancelled');
  });

  it('throttles progress updates but never drops the state changes', async () => {
    const { jobs, updates } = runner();
    const { job } = jobs.start(spec, async (ctx) => {
      for (let i = 1; i <= 1000; i++) ctx.progress('vda', i);
    });
    await jobs.cancel(job.id).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 150));
    expect(updates.length).toBeLessThan(10);
    expect(updates[0]!.state).toBe('running');
    expect(updates[updates.length - 1]!.state).not.toBe('running');
  });

  it('lists by VM and names an unknown job', async () => {
    const { jobs } = runner();
    jobs.start(spec, async () => undefined);
    jobs.start({ ...spec, vmId: 'ep-1' }, async () => undefined);
    expect(jobs.list().map((j) => j.vmId).sort()).toEqual(['demo', 'ep-1']);
    expect(jobs.list('ep-1')).toHaveLength(1);
    expect(() => jobs.get('nope')).toThrow('no job with id "nope"');
    await expect(jobs.cancel('nope')).rejects.toThrow('no job with id "nope"');
  });

  it('run() resolves with the work\'s result and the final job, without polling', async () => {
    const { jobs, updates } = runner();
    const { job, result } = await jobs.run(spec, async (ctx) => {
      ctx.log('copying');
      ctx.progress('vda', 100);
      return { backupId: 'B1', bytes: 100 };
    }, (r) => `backup ${r.backupId}`);
    expect(result).toEqual({ backupId: 'B1', bytes: 100 });
    expect(job.state).toBe('succeeded');
    expect(job.log.map((l) => l.replace(/^\S+ /, ''))).toEqual(['started: Write 1 MiB', 'copying', 'succeeded: backup B1']);
    // the final job is the one the last update carried
    expect(updates.at(-1)).toEqual(job);
  });

  it('run() rejects with the work\'s own error; `ended` still gives the final job', async () => {
    const { jobs } = runner();
    class Special extends Error {}
    const started = jobs.start(spec, async () => {
      throw new Special('disk full');
    });
    await expect(started.result).rejects.toBeInstanceOf(Special);
    const final = await started.ended;
    expect(final).toMatchObject({ id: started.job.id, state: 'failed', error: 'disk full' });
    // a job whose result nobody awaits does not leave an unhandled rejection behind
    jobs.start(spec, async () => {
      throw new Error('ignored');
    });
    await new Promise((r) => setTimeout(r, 10));
  });

  it('a cancelled job\'s result rejects and its final state is cancelled', async () => {
    const { jobs } = runner();
    const started = jobs.start(spec, (ctx) => new Promise<number>((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))));
    await jobs.cancel(started.job.id);
    await expect(started.result).rejects.toThrow('stopped');
    expect((await started.ended).state).toBe('cancelled');
  });
});
