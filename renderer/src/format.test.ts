import { describe, expect, it } from 'vitest';
import { defaultCheckpointName, formatBytes, formatPart, formatRelative, percent } from './format';

describe('format', () => {
  it('formats sizes in IEC units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64.0 MiB');
    expect(formatBytes(200 * 1024 ** 3)).toBe('200 GiB');
    expect(formatBytes(Number.NaN)).toBe('—');
  });

  it('says "X of Y (p%)" and never shows a non-zero amount as 0.0%', () => {
    expect(formatPart(628 * 1024 ** 2, 60 * 1024 ** 3)).toBe('628 MiB of 60.0 GiB (1.0%)');
    expect(formatPart(65536, 1024 ** 4)).toBe('64.0 KiB of 1.0 TiB (<0.1%)');
    expect(formatPart(0, 0)).toBe('0 B of 0 B (0.0%)');
  });

  it('gives relative ages', () => {
    const now = 1_000_000_000;
    expect(formatRelative(now - 2000, now)).toBe('just now');
    expect(formatRelative(now - 42_000, now)).toBe('42 s ago');
    expect(formatRelative(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatRelative(now - 3 * 3600_000, now)).toBe('3 h ago');
    expect(formatRelative(now - 2 * 86400_000, now)).toBe('2 d ago');
    expect(formatRelative(now + 90_000, now)).toBe('in 2 min');
  });

  it('makes a timestamped default checkpoint name that the engine accepts', () => {
    const name = defaultCheckpointName(Date.UTC(2026, 10, 23, 3, 4, 5));
    expect(name).toBe('cp-20261123T030405Z');
    expect(name).not.toMatch(/[/\s:]/);
  });

  it('computes progress percentages without NaN', () => {
    expect(percent(5, 10)).toBe(50);
    expect(percent(0, 0)).toBe(100);
    expect(percent(20, 10)).toBe(100);
  });
});
