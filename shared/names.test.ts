import { describe, expect, it } from 'vitest';
import { checkpointNameProblem, escapeInvisible, quoteName, utf8Length, validateCheckpointName } from './names';

describe('checkpoint names: text-direction and invisible characters are refused', () => {
  it.each([
    ['c1\u202e', 'U+202e', /text-direction control character \(U\+202e\)/], // RIGHT-TO-LEFT OVERRIDE (Trojan Source)
    ['\u2066c1', 'U+2066', /text-direction control character/], // LEFT-TO-RIGHT ISOLATE
    ['a\u200fb', 'U+200f', /text-direction control character/], // RIGHT-TO-LEFT MARK
    ['a\u061cb', 'U+061c', /text-direction control character/], // ARABIC LETTER MARK
    ['c1\u200b', 'U+200b', /invisible character \(U\+200b\)/], // ZERO WIDTH SPACE
    ['c\u200d1', 'U+200d', /invisible character/], // ZERO WIDTH JOINER
    ['c\u2060', 'U+2060', /invisible character/], // WORD JOINER
    ['\ufeffc1', 'U+feff', /invisible character/], // BOM
    ['soft\u00adhyphen', 'U+00ad', /invisible character/],
    ['tag\u{e0041}', 'U+e0041', /invisible character \(U\+e0041\)/], // TAG LATIN CAPITAL LETTER A
    ['line\u2028sep', 'U+2028', /invisible character/],
  ])('refuses %j (%s), and the message shows the character escaped', (name, _cp, reason) => {
    const problem = checkpointNameProblem(name);
    expect(problem).toMatch(reason);
    // The message itself never carries the character it complains about.
    expect(problem).not.toMatch(/[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u00ad\u061c\u2028]|\u{e0041}/u);
    expect(problem).toContain('\\u');
    expect(() => validateCheckpointName(name)).toThrow(reason);
  });

  it('keeps the existing messages word for word', () => {
    expect(checkpointNameProblem('a/b')).toBe('checkpoint name "a/b" contains "/"');
    expect(checkpointNameProblem('a\tb')).toBe('checkpoint name "a\\tb" contains a control character (U+0009)');
    expect(checkpointNameProblem('')).toBe('checkpoint name is empty');
    expect(checkpointNameProblem('x'.repeat(1024))).toBe('checkpoint name is 1024 bytes long; qcow2 allows at most 1023 bytes');
    expect(checkpointNameProblem(7)).toBe('checkpoint name must be a string, got number');
  });

  it.each(['c1', 'naïve-☃', '日本語', 'مرحبا', 'שלום-1', 'emoji-😀', 'with space', 'x'.repeat(1023)])('accepts %j', (name) => {
    expect(checkpointNameProblem(name)).toBeUndefined();
  });
});

describe('utf8Length', () => {
  it('counts like Buffer.byteLength, lone surrogates included', () => {
    const samples = ['', 'a', 'é', '€', '😀', 'a😀b', '\ud800', '\udc00x', 'x\ud83d', '日本語', '\u{10ffff}'];
    // and random strings over the whole code unit range
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let k = 0; k < 300; k++) samples.push(Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => String.fromCharCode(Math.floor(rnd() * 0x10000))).join(''));
    for (const s of samples) expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
  });
});

describe('escapeInvisible and quoteName', () => {
  it('shows what is stored: invisible, control and bidi characters as \\u escapes, the rest untouched', () => {
    expect(escapeInvisible('c1\u200b')).toBe('c1\\u200b');
    expect(escapeInvisible('\u202eabc')).toBe('\\u202eabc');
    expect(escapeInvisible('tag\u{e0041}')).toBe('tag\\u{e0041}');
    expect(escapeInvisible('bad\ud800')).toBe('bad\\ud800');
    expect(escapeInvisible('日本語 😀 naïve')).toBe('日本語 😀 naïve');
    expect(quoteName('a"b\u200b')).toBe('"a\\"b\\u200b"');
  });
});
