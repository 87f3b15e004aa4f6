import { describe, expect, it } from 'vitest';
import { CODE_TTL_MS, cookieValue, createWebLogin } from './web-login';

function cookieOf(setCookie: string): string {
  return setCookie.split(';')[0]!;
}

describe('createWebLogin', () => {
  it('makes a 256-bit code and exchanges it once for a session cookie with HttpOnly, SameSite=Strict, Path=/', () => {
    const login = createWebLogin({ port: 4321 });
    expect(login.code).toMatch(/^[\w-]{43}$/);
    expect(login.cookieName).toBe('tidemark_session_4321');
    const r = login.redeem(login.code);
    if (!r.ok) throw new Error(r.reason);
    const [pair, ...attrs] = r.setCookie.split('; ');
    expect(pair).toMatch(/^tidemark_session_4321=[\w-]{43}$/);
    expect(attrs.sort()).toEqual(['HttpOnly', 'Path=/', 'SameSite=Strict']);
    expect(pair!.split('=')[1]).not.toBe(login.code);
    expect(login.hasSession(pair)).toBe(true);
    expect(login.hasSession(`other=1; ${pair}; x=y`)).toBe(true);
  });

  it('refuses the code a second time, and the first session keeps working', () => {
    const login = createWebLogin({ port: 1, code: 'c0de' });
    const first = login.redeem('c0de');
    expect(first.ok).toBe(true);
    const again = login.redeem('c0de');
    expect(again).toEqual({ ok: false, reason: expect.stringMatching(/^this login code was already used: restart `tidemark serve`/) });
    expect(login.hasSession(cookieOf((first as { setCookie: string }).setCookie))).toBe(true);
  });

  it('refuses a wrong code (also a prefix or a longer one) without spending the right one', () => {
    const login = createWebLogin({ port: 1, code: 'c0de' });
    for (const wrong of ['', 'c0d', 'c0dee', 'C0DE']) expect(login.redeem(wrong)).toEqual({ ok: false, reason: expect.stringMatching(/^wrong login code: restart `tidemark serve`/) });
    expect(login.redeem('c0de').ok).toBe(true);
  });

  it('refuses the code once it has gone unused past its lifetime', () => {
    let t = 1_000;
    const login = createWebLogin({ port: 1, code: 'c0de', now: () => t });
    t += CODE_TTL_MS + 1;
    expect(login.redeem('c0de')).toEqual({ ok: false, reason: expect.stringMatching(/^this login code expired \(10 minutes unused\)/) });
    const fresh = createWebLogin({ port: 1, code: 'c0de', now: () => t });
    t += CODE_TTL_MS; // the last moment still counts
    expect(fresh.redeem('c0de').ok).toBe(true);
  });

  it('knows no session before the login, nor a wrong, empty or other-port cookie after it', () => {
    const login = createWebLogin({ port: 7, code: 'c0de' });
    expect(login.hasSession(undefined)).toBe(false);
    expect(login.hasSession('tidemark_session_7=')).toBe(false);
    const r = login.redeem('c0de') as { setCookie: string };
    const value = cookieOf(r.setCookie).split('=')[1]!;
    expect(login.hasSession(undefined)).toBe(false);
    expect(login.hasSession(`tidemark_session_7=${value.slice(1)}x`)).toBe(false);
    expect(login.hasSession(`tidemark_session_8=${value}`)).toBe(false);
    expect(login.hasSession(`tidemark_session_7=${value}`)).toBe(true);
  });

  it('gives each host its own random code and session', () => {
    const a = createWebLogin({ port: 1 });
    const b = createWebLogin({ port: 1 });
    expect(a.code).not.toBe(b.code);
    const sa = cookieOf((a.redeem(a.code) as { setCookie: string }).setCookie);
    expect(b.hasSession(sa)).toBe(false);
  });
});

describe('cookieValue', () => {
  it('finds a cookie by its exact name', () => {
    expect(cookieValue('a=1; tidemark_session_5=xyz; b=2', 'tidemark_session_5')).toBe('xyz');
    expect(cookieValue('xtidemark_session_5=1', 'tidemark_session_5')).toBeUndefined();
    expect(cookieValue(undefined, 'a')).toBeUndefined();
    expect(cookieValue('a', 'a')).toBeUndefined();
  });
});
