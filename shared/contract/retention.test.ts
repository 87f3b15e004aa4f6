// The retention and schedule channels' argument checks: a payload of the wrong shape is refused
// with one line naming the field, before any handler runs.
import { describe, expect, it } from 'vitest';
import { dispatch, type Handlers } from '../contract';

const calls: unknown[][] = [];
const handlers = new Proxy({}, {
  get: (_t, channel) => async (...args: unknown[]) => {
    calls.push([channel, ...args]);
    return 'ok';
  },
}) as Handlers;

describe('retention and schedule channels', () => {
  it('refuse bad prune and merge payloads, naming the field', async () => {
    await expect(dispatch(handlers, 'backup:prune', ['demo', { policy: { daily: -1 } }])).rejects.toThrow('backup:prune[1].policy.daily: must be at least 0');
    await expect(dispatch(handlers, 'backup:prune', ['demo', { policy: { daily: 1.5 } }])).rejects.toThrow('backup:prune[1].policy.daily: expected an integer, got number 1.5');
    await expect(dispatch(handlers, 'backup:prune', ['demo', { policy: { fortnightly: 2 } }])).rejects.toThrow('backup:prune[1].policy: unexpected field "fortnightly"');
    await expect(dispatch(handlers, 'backup:prune', ['demo', { policy: { last: '3' } }])).rejects.toThrow('backup:prune[1].policy.last: expected a finite number, got string "3"');
    await expect(dispatch(handlers, 'backup:prune', ['demo', { maxChain: 0 }])).rejects.toThrow('backup:prune[1].maxChain: must be at least 1');
    await expect(dispatch(handlers, 'backup:prune', ['demo', { dryRun: 'yes' }])).rejects.toThrow('backup:prune[1].dryRun: expected a boolean, got string "yes"');
    await expect(dispatch(handlers, 'backup:prune', ['demo'])).rejects.toThrow('backup:prune[1]: expected an object, got nothing');
    await expect(dispatch(handlers, 'backup:merge', ['demo', {}])).rejects.toThrow('backup:merge[1]: missing field "maxChain"');
    await expect(dispatch(handlers, 'backup:merge', ['demo', { maxChain: 3, repo: '' }])).rejects.toThrow('backup:merge[1].repo: must not be empty');
    await expect(dispatch(handlers, 'backup:finish-retention', [7])).rejects.toThrow('backup:finish-retention[0]: expected a string, got number 7');
  });

  it('refuse bad schedule payloads, naming the field', async () => {
    await expect(dispatch(handlers, 'schedule:add', ['demo', {}])).rejects.toThrow('schedule:add[1]: missing field "every"');
    await expect(dispatch(handlers, 'schedule:add', ['demo', { every: 'daily', mode: 'copy' }])).rejects.toThrow('schedule:add[1].mode: expected one of "push", "pull", got string "copy"');
    await expect(dispatch(handlers, 'schedule:add', ['demo', { every: 'daily', id: '../etc' }])).rejects.toThrow('schedule:add[1].id: expected a schedule id');
    await expect(dispatch(handlers, 'schedule:add', ['demo', { every: 'daily', command: ['/bin/sh'] }])).rejects.toThrow('schedule:add[1]: unexpected field "command"');
    await expect(dispatch(handlers, 'schedule:list', [{ user: 1 }])).rejects.toThrow('schedule:list[0].user: expected a boolean, got number 1');
    await expect(dispatch(handlers, 'schedule:remove', ['Daily!'])).rejects.toThrow('schedule:remove[0]: expected a schedule id');
    await expect(dispatch(handlers, 'schedule:remove', ['a', {}, 'extra'])).rejects.toThrow('schedule:remove: expected at most 2 arguments, got 3');
  });

  it('refuse a bad quiesce option on checkpoints and backups', async () => {
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', { quiesce: { agent: 5 } }])).rejects.toThrow('checkpoint:create[1].quiesce.agent: expected a string, got number 5');
    await expect(dispatch(handlers, 'backup:begin', ['demo', { quiesce: true }])).rejects.toThrow('backup:begin[1].quiesce: expected an object, got boolean true');
  });

  it('pass good payloads through, null meaning "not given"', async () => {
    calls.length = 0;
    await dispatch(handlers, 'backup:prune', ['demo', { policy: { last: 2, daily: null }, maxChain: null, dryRun: true }]);
    await dispatch(handlers, 'schedule:add', ['demo', { every: 'Mon..Fri 02:30', policy: { weekly: 4 }, user: true }]);
    await dispatch(handlers, 'schedule:list', []);
    expect(calls).toEqual([
      ['backup:prune', 'demo', { policy: { last: 2 }, dryRun: true }],
      ['schedule:add', 'demo', { every: 'Mon..Fri 02:30', policy: { weekly: 4 }, user: true }],
      ['schedule:list', undefined],
    ]);
  });
});
