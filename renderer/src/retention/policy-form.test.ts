import { describe, expect, it } from 'vitest';
import type { RetentionPreview } from '../../../shared/contract';
import { EMPTY_FORM, parsePolicyForm, previewFigures } from './policy-form';

describe('the simulator form', () => {
  it('turns fields into a policy, leaving out empty and zero rules', () => {
    expect(parsePolicyForm({ ...EMPTY_FORM, last: '3', daily: ' 7 ', weekly: '0' })).toEqual({ ok: true, policy: { last: 3, daily: 7 } });
    expect(parsePolicyForm({ ...EMPTY_FORM, maxChain: '5' })).toEqual({ ok: true, maxChain: 5 });
  });

  it('names the field that is wrong, and refuses a policy that keeps nothing', () => {
    expect(parsePolicyForm({ ...EMPTY_FORM, daily: '-1' })).toEqual({ ok: false, problem: 'Keep daily: a whole number from 0 to 1000000.' });
    expect(parsePolicyForm({ ...EMPTY_FORM, last: '2.5' })).toMatchObject({ ok: false, problem: expect.stringContaining('Keep last') });
    expect(parsePolicyForm({ ...EMPTY_FORM, last: '1', maxChain: '0' })).toMatchObject({ ok: false, problem: expect.stringContaining('Max chain') });
    expect(parsePolicyForm({ ...EMPTY_FORM, last: '0' })).toMatchObject({ ok: false, problem: expect.stringContaining('at least one keep rule') });
    expect(parsePolicyForm(EMPTY_FORM).ok).toBe(false);
  });

  it('counts what a preview removes, merges and frees', () => {
    const layer = (action: 'keep' | 'merge' | 'delete' | 'rewrite') => ({ disk: 'vda', action, fileSize: 10 });
    const p: RetentionPreview = {
      timeZone: 'UTC', checkpointsFreed: [], bytesFreed: { atLeast: -5, atMost: 100 },
      rows: [
        { id: 'c', time: 3, local: '', kind: 'incremental', keep: true, why: ['keep-last'], layers: [layer('rewrite')] },
        { id: 'b', time: 2, local: '', kind: 'incremental', keep: false, why: ['x'], layers: [layer('merge')] },
        { id: 'a', time: 1, local: '', kind: 'full', keep: false, why: ['x'], layers: [layer('delete')] },
      ],
    };
    expect(previewFigures(p)).toEqual({ kept: 1, removed: 2, merged: 1, deleted: 1, bytesFreed: { atLeast: 0, atMost: 100 } });
  });
});
