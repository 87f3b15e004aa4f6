import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkpointFileName, safeFileStem, validateCheckpointName, vmKey } from './names';

const label = (n: string) => (n.length > 30 ? `${JSON.stringify(n.slice(0, 8))}… (${n.length} chars)` : JSON.stringify(n));

describe('validateCheckpointName', () => {
  it.each([
    ['', /empty/],
    ['a/b', /contains "\/"/],
    ['/', /contains "\/"/],
    ['..', /starts with "\."/],
    ['.hidden', /starts with "\."/],
    ['a\u0000b', /control character \(U\+0000\)/],
    ['line\nbreak', /control character \(U\+000a\)/],
    ['tab\there', /control character \(U\+0009\)/],
    ['del\u007f', /control character \(U\+007f\)/],
    ['x'.repeat(1024), /1024 bytes long; qcow2 allows at most 1023/],
    ['é'.repeat(512), /1024 bytes long/],
    ['a'.repeat(2000), /2000 bytes/],
    ['tidemark-tmp-x', /reserved for temporary bitmaps/],
    ['bad\ud800', /lone surrogate/],
  ].map(([n, r]) => [label(n as string), n, r] as const))('rejects %s with a reason', (_l, name, reason) => {
    expect(() => validateCheckpointName(name)).toThrow(reason);
  });

  it.each(['c1', '1700000000', '1700000000-2', 'a.b', 'with space', '%2e%2e', 'naïve-☃', '日本語', 'x'.repeat(1023), 'é'.repeat(511), 'tidemark-tmp', 'a..b'].map((n) => [label(n), n]))(
    'accepts %s',
    (_l, name) => expect(validateCheckpointName(name)).toBe(name),
  );

  it('rejects non-strings', () => {
    expect(() => validateCheckpointName(42)).toThrow(/must be a string/);
  });
});

describe('checkpointFileName', () => {
  const hostile = ['..', '.', 'a/b', '../../etc/passwd', '\u0000', '%2e%2e', '%2F', '~x', 'CON', 'a'.repeat(2000), '日本語', '.json', 'x.json', 'é'.repeat(511), ''];

  it.each(hostile.map((n) => [label(n), n]))('%s stays inside its directory and fits NAME_MAX', (_l, name) => {
    const f = checkpointFileName(name);
    expect(f.endsWith('.json')).toBe(true);
    expect(f).not.toContain('/');
    expect(f).not.toContain('\u0000');
    expect(f.startsWith('.')).toBe(false);
    expect(Buffer.byteLength(f)).toBeLessThanOrEqual(255);
    expect(path.dirname(path.join('/state/checkpoints', f))).toBe('/state/checkpoints');
  });

  it('keeps ordinary names readable', () => {
    expect(checkpointFileName('c1')).toBe('c1.json');
    expect(checkpointFileName('1700000000-2')).toBe('1700000000-2.json');
    expect(checkpointFileName('a.b')).toBe('a.b.json');
  });

  it('encodes "%" too, so "%2e%2e" and ".." cannot collide', () => {
    expect(checkpointFileName('%2e%2e')).toBe('%252e%252e.json');
    expect(checkpointFileName('..')).toBe('%2E..json');
    expect(checkpointFileName('a b')).toBe('a%20b.json');
    expect(checkpointFileName('日')).toBe('%E6%97%A5.json');
  });

  it('hashes long names; the hash form cannot collide with a readable one', () => {
    const long = checkpointFileName('a'.repeat(2000));
    expect(long).toMatch(/^~[0-9a-f]{64}\.json$/);
    expect(checkpointFileName('a'.repeat(2001))).not.toBe(long);
    expect(checkpointFileName('~abc')).toBe('%7Eabc.json');
  });

  it('is injective over a set of tricky names', () => {
    const names = ['a', 'A', 'a%41', 'aA', 'a b', 'a+b', 'a%20b', '..', '%2E..', '.', '~', '%7E', 'x'.repeat(200), 'x'.repeat(201), 'x'.repeat(1023)];
    const files = names.map(checkpointFileName);
    expect(new Set(files).size).toBe(names.length);
  });
});

describe('vmKey', () => {
  it('maps uuids, names and endpoints to one safe path segment', () => {
    expect(vmKey('a27953b2-6a26-4fb3-95b2-c89f971fc2e8')).toBe('a27953b2-6a26-4fb3-95b2-c89f971fc2e8');
    expect(vmKey('unix:/tmp/x/qmp.sock')).toBe('unix%3A%2Ftmp%2Fx%2Fqmp.sock');
    for (const id of ['..', '.', '../..', '/', '']) {
      const k = vmKey(id);
      expect(k).not.toMatch(/^\.|\//);
      expect(path.dirname(path.join('/s/vms', k))).toBe('/s/vms');
    }
    expect(safeFileStem('')).toMatch(/^~[0-9a-f]{64}$/);
  });
});
