// The contract's runtime validation: what every transport relies on to treat callers as untrusted.
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { argValidators, dispatch, EVENT_NAMES, isInvokeChannel, ValidationError, type Handlers } from './contract';
import { backupArgs } from './contract/backups';
import { inventoryArgs } from './contract/inventory';
import { labArgs } from './contract/lab';
import { pullArgs } from './contract/pull';
import { retentionArgs } from './contract/retention';
import { vmArgs } from './contract/vm';
import { args, check, describeValue, list, num, optionalArg, record, text } from './schema';

const calls: unknown[][] = [];
const handlers = new Proxy({}, {
  get: (_t, channel) => async (...args: unknown[]) => {
    calls.push([channel, ...args]);
    return 'ok';
  },
}) as Handlers;

describe('dispatch', () => {
  it('refuses channels that are not in the contract, including prototype keys', async () => {
    await expect(dispatch(handlers, 'fs:readFile', ['/etc/passwd'])).rejects.toThrow(/unknown channel "fs:readFile"/);
    await expect(dispatch(handlers, '__proto__', [])).rejects.toThrow(ValidationError);
    await expect(dispatch(handlers, 'constructor', [])).rejects.toThrow(ValidationError);
    await expect(dispatch(handlers, 'hasOwnProperty', [])).rejects.toThrow(ValidationError);
    await expect(dispatch(handlers, 42, [])).rejects.toThrow(/unknown channel/);
    expect(isInvokeChannel('toString')).toBe(false);
  });

  it('names the argument that has the wrong shape', async () => {
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', { name: 5 }])).rejects.toThrow('checkpoint:create[1].name: expected a string, got number 5');
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', { name: 'a', evil: true }])).rejects.toThrow('checkpoint:create[1]: unexpected field "evil"');
    await expect(dispatch(handlers, 'checkpoint:create', ['demo'])).rejects.toThrow('checkpoint:create[1]: expected an object, got nothing');
    await expect(dispatch(handlers, 'checkpoint:delete', ['demo', 'c1', 'everything'])).rejects.toThrow(
      'checkpoint:delete[2]: expected one of "plain", "children", "children-only", "metadata", got string "everything"',
    );
    await expect(dispatch(handlers, 'vm:info', ['demo', 'extra'])).rejects.toThrow('vm:info: expected at most 1 argument, got 2');
    await expect(dispatch(handlers, 'checkpoint:get', ['demo', 'c1', 3])).rejects.toThrow('checkpoint:get: expected at most 2 arguments, got 3');
    await expect(dispatch(handlers, 'vm:info', 'demo')).rejects.toThrow('vm:info: expected an argument list, got string "demo"');
    await expect(dispatch(handlers, 'lab:write', ['demo', { disk: 'vda', pattern: 'random', mib: -5 }])).rejects.toThrow('lab:write[1].mib: must be at least 1');
    await expect(dispatch(handlers, 'restore:run', [{ backup: 'b', to: { disk: 'vda' } }])).rejects.toThrow('restore:run[0].to: missing field "path"');
    await expect(dispatch(handlers, 'backup:begin', ['demo', { disks: ['vda', 7] }])).rejects.toThrow('backup:begin[1].disks[1]: expected a string, got number 7');
  });

  it('refuses arrays and class instances where an object is expected', async () => {
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', []])).rejects.toThrow('checkpoint:create[1]: expected an object, got an array');
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', new Date()])).rejects.toThrow('checkpoint:create[1]: expected a plain object, got an object');
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', Object.create(null)])).resolves.toBe('ok');
  });

  it('passes validated arguments through, with null meaning "not given" for optional ones', async () => {
    calls.length = 0;
    await dispatch(handlers, 'checkpoint:list', ['demo', null]);
    await dispatch(handlers, 'checkpoint:create', ['demo', { name: 'c1', description: null }]);
    await dispatch(handlers, 'job:list', []);
    await dispatch(handlers, 'dirtymap:get', ['demo', 'vda', 'c1', null]);
    expect(calls).toEqual([
      ['checkpoint:list', 'demo', undefined],
      ['checkpoint:create', 'demo', { name: 'c1' }],
      ['job:list', undefined],
      ['dirtymap:get', 'demo', 'vda', 'c1', undefined],
    ]);
    expect(Object.keys(calls[1]![2] as object)).not.toContain('evil');
  });

  it('has a validator for every channel, and no channel is defined by two areas', () => {
    const areas = [vmArgs, labArgs, backupArgs, inventoryArgs, pullArgs, retentionArgs];
    const names = areas.flatMap((a) => Object.keys(a));
    expect(new Set(names).size).toBe(names.length);
    expect(Object.keys(argValidators).sort()).toEqual([...names].sort());
    for (const [channel, validate] of Object.entries(argValidators)) expect(typeof validate, channel).toBe('function');
  });

  it('lists every event once', () => {
    expect(new Set(EVENT_NAMES).size).toBe(EVENT_NAMES.length);
  });
});

describe('schema building blocks', () => {
  it('refuse oversized input and name the limit', () => {
    expect(() => check(text({ max: 3 }), 'abcd', 'x')).toThrow('x: longer than 3 characters');
    expect(() => check(text({ min: 1 }), '', 'x')).toThrow('x: must not be empty');
    expect(() => check(text({ min: 3 }), 'ab', 'x')).toThrow('x: shorter than 3 characters');
    expect(() => check(list(num(), { max: 2 }), [1, 2, 3], 'x')).toThrow('x: more than 2 items');
    expect(() => check(num({ integer: true }), 1.5, 'x')).toThrow('x: expected an integer, got number 1.5');
    expect(() => check(num(), Number.NaN, 'x')).toThrow('x: expected a finite number, got number NaN');
    expect(() => check(num(), Number.POSITIVE_INFINITY, 'x')).toThrow('x: expected a finite number, got number Infinity');
    expect(() => check(num({ max: 9 }), 10, 'x')).toThrow('x: must be at most 9');
    expect(() => check(v.boolean(), 'yes', 'x')).toThrow('x: expected a boolean, got string "yes"');
  });

  it('names missing and unknown fields at their object, and nested paths in full', () => {
    const s = record({ a: record({ b: list(record({ c: text() })) }) });
    expect(() => check(s, { a: { b: [{ c: 'x' }, { c: 1 }] } }, 'root')).toThrow('root.a.b[1].c: expected a string, got number 1');
    expect(() => check(s, { a: { b: [{}] } }, 'root')).toThrow('root.a.b[0]: missing field "c"');
    expect(() => check(s, { a: { b: [], z: 1 } }, 'root')).toThrow('root.a: unexpected field "z"');
  });

  it('optionalArg takes null and undefined as "not given", but nothing else', () => {
    const s = args(text(), optionalArg(num()));
    expect(check(s, ['a'], 'c')).toEqual(['a', undefined]);
    expect(check(s, ['a', null], 'c')).toEqual(['a', undefined]);
    expect(check(s, ['a', 2], 'c')).toEqual(['a', 2]);
    expect(() => check(s, ['a', 'two'], 'c')).toThrow('c[1]: expected a finite number, got string "two"');
    expect(() => check(s, [null], 'c')).toThrow('c[0]: expected a string, got null');
  });

  it('describes values briefly', () => {
    expect(describeValue(undefined)).toBe('nothing');
    expect(describeValue('x'.repeat(100))).toBe(`string "${'x'.repeat(40)}…"`);
    expect(describeValue([1])).toBe('an array');
    expect(describeValue(true)).toBe('boolean true');
  });
});
