// The contract's runtime validation: what every transport relies on to treat callers as untrusted.
import { describe, expect, it } from 'vitest';
import { argValidators, dispatch, type Handlers } from './contract';
import { v, ValidationError } from './validate';

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
    await expect(dispatch(handlers, 42, [])).rejects.toThrow(/unknown channel/);
  });

  it('names the argument that has the wrong shape', async () => {
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', { name: 5 }])).rejects.toThrow('checkpoint:create[1].name: expected a string, got number 5');
    await expect(dispatch(handlers, 'checkpoint:create', ['demo', { name: 'a', evil: true }])).rejects.toThrow('checkpoint:create[1]: unexpected field "evil"');
    await expect(dispatch(handlers, 'checkpoint:delete', ['demo', 'c1', 'everything'])).rejects.toThrow(/one of "plain", "children", "children-only", "metadata"/);
    await expect(dispatch(handlers, 'vm:info', ['demo', 'extra'])).rejects.toThrow(/at most 1 arguments, got 2/);
    await expect(dispatch(handlers, 'vm:info', 'demo')).rejects.toThrow(/expected an argument list/);
  });

  it('passes validated arguments through, with null meaning "not given" for optional ones', async () => {
    calls.length = 0;
    await dispatch(handlers, 'checkpoint:list', ['demo', null]);
    await dispatch(handlers, 'checkpoint:create', ['demo', { name: 'c1', description: null }]);
    expect(calls).toEqual([['checkpoint:list', 'demo', undefined], ['checkpoint:create', 'demo', { name: 'c1' }]]);
  });

  it('has a validator for every channel', () => {
    for (const [channel, validate] of Object.entries(argValidators)) expect(typeof validate, channel).toBe('function');
  });
});

describe('validators', () => {
  it('refuse class instances and oversized input', () => {
    expect(() => v.object({})(new Date(), 'x')).toThrow('x: expected a plain object, got an object');
    expect(() => v.string({ max: 3 })('abcd', 'x')).toThrow('x: longer than 3 characters');
    expect(() => v.array(v.number(), { max: 2 })([1, 2, 3], 'x')).toThrow('x: more than 2 items');
    expect(() => v.number({ integer: true })(1.5, 'x')).toThrow('x: expected an integer');
    expect(() => v.number()(Number.NaN, 'x')).toThrow('x: expected a finite number');
  });
});
