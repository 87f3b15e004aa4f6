// Parsers of virsh's text output, against what virsh 9.0 printed here.
import { describe, expect, it } from 'vitest';
import { inferCurrentCheckpoint } from './checkpoints';
import { domainArg, parseDomstatsStates } from './domains';
import { parseJobInfo } from './job-info';

// `virsh domjobinfo --rawstats` while a push backup ran, after it completed, and after a pull was aborted.
const RUNNING_PUSH = 'Job type: 2\n\noperation: 9\ntime_elapsed: 811\ndisk_total: 1073741824\ndisk_processed: 72351744\ndisk_remaining: 1001390080\n\n';
const COMPLETED_PUSH = 'Job type: 3\n\noperation: 9\ntime_elapsed: 3770\ndisk_total: 1073741824\ndisk_processed: 1073741824\ndisk_remaining: 0\nsuccess: 1\n\n';
const ABORTED_PULL = 'Job type: 3\n\noperation: 9\ntime_elapsed: 827\ndisk_temp_used: 0\ndisk_temp_total: 1073741824\nsuccess: 1\nerrmsg: Operation canceled\n\n';

describe('job info', () => {
  it('reads a running push backup', () => {
    expect(parseJobInfo(RUNNING_PUSH)).toEqual({
      type: 'unbounded', operation: 'backup', timeElapsedMs: 811, diskTotal: 1073741824, diskProcessed: 72351744, diskRemaining: 1001390080,
      raw: { operation: '9', time_elapsed: '811', disk_total: '1073741824', disk_processed: '72351744', disk_remaining: '1001390080' },
    });
  });

  it('reads completed jobs, success and the error message', () => {
    expect(parseJobInfo(COMPLETED_PUSH)).toMatchObject({ type: 'completed', diskProcessed: 1073741824, success: true });
    expect(parseJobInfo(ABORTED_PULL)).toMatchObject({ type: 'completed', success: true, errorMessage: 'Operation canceled', diskTempTotal: 1073741824, diskTempUsed: 0 });
    expect(parseJobInfo('Job type: 0\n\n')).toEqual({ type: 'none', raw: {} });
  });

  it('refuses output it does not understand', () => {
    expect(() => parseJobInfo('Job type:         None        \n')).toThrow(/expected "Job type: N"/);
    expect(() => parseJobInfo('Job type: 9\n')).toThrow(/unknown job type 9/);
    expect(() => parseJobInfo('Job type: 2\n\ndisk_total: lots\n')).toThrow(/not a count/);
    expect(() => parseJobInfo('Job type: 2\n\nno colon here\n')).toThrow(/not "key: value"/);
  });
});

describe('domain listing helpers', () => {
  it('reads domstats --state, names with spaces and quotes included', () => {
    const text = "Domain: 'tm-exp-1'\n  state.state=1\n  state.reason=1\n\nDomain: 'it's off'\n  state.state=5\n  state.reason=2\n\nDomain: 'odd'\n  state.state=42\n";
    expect([...parseDomstatsStates(text)]).toEqual([['tm-exp-1', 'running'], ["it's off", 'shutoff'], ['odd', 'unknown']]);
  });

  it('passes names and UUIDs as --domain=… and refuses what virsh would read as an ID', () => {
    expect(domainArg('5653c79d-d9d5-4fed-9638-e78588f947e8')).toBe('--domain=5653c79d-d9d5-4fed-9638-e78588f947e8');
    expect(domainArg('--weird')).toBe('--domain=--weird');
    expect(() => domainArg('42')).toThrow(/numeric domain ID; name it by its UUID/);
    expect(() => domainArg('')).toThrow(/empty/);
  });
});

describe('current checkpoint (inferred: libvirt has no API for it)', () => {
  it('is the only leaf', () => {
    expect(inferCurrentCheckpoint([])).toEqual({ ambiguous: false });
    expect(inferCurrentCheckpoint([{ name: 'a' }, { name: 'b', parent: 'a' }, { name: 'c', parent: 'b' }])).toEqual({ name: 'c', ambiguous: false });
    expect(inferCurrentCheckpoint([{ name: 'a' }])).toEqual({ name: 'a', ambiguous: false });
  });

  it('is ambiguous with branches', () => {
    expect(inferCurrentCheckpoint([{ name: 'a' }, { name: 'b', parent: 'a' }, { name: 'c', parent: 'a' }])).toEqual({ ambiguous: true });
  });
});
