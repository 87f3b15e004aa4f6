// Web host login state: one random one-time code per start (printed by `tidemark serve`), which a
// page exchanges once for a random session id kept in an HttpOnly, SameSite=Strict cookie. The code
// is then spent; unused, it expires. Neither secret is ever logged. Pure apart from randomBytes and
// the clock (both injectable for tests).

import { randomBytes, timingSafeEqual } from 'node:crypto';

/** A code nobody has used this long is refused: a forgotten terminal's code is not a key forever. */
export const CODE_TTL_MS = 10 * 60_000;

export type RedeemResult = { ok: true; setCookie: string } | { ok: false; reason: string };

export interface WebLogin {
  /** The one-time code (43 characters, base64url of 32 random bytes). */
  readonly code: string;
  /** The session cookie's name: per port, so two hosts on one machine do not overwrite each other's. */
  readonly cookieName: string;
  /** Exchanges the code for a session (once); the Set-Cookie header value to send back. */
  redeem(code: string): RedeemResult;
  /** Whether a request's Cookie header carries the live session. */
  hasSession(cookieHeader: string | undefined): boolean;
}

export interface WebLoginOptions {
  port: number;
  now?: () => number;
  codeTtlMs?: number;
  /** Fixed code (tests); default: 32 random bytes. */
  code?: string;
}

/** The advice every refusal ends with. */
export const LOGIN_ADVICE = 'restart `tidemark serve` and open the address it prints (or paste its code), or use the printed address if you have not yet';

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of cookie `name` in a Cookie request header (RFC 6265 "name=value; name=value"). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function createWebLogin(options: WebLoginOptions): WebLogin {
  const now = options.now ?? Date.now;
  const ttl = options.codeTtlMs ?? CODE_TTL_MS;
  const code = options.code ?? randomBytes(32).toString('base64url');
  const issuedAt = now();
  const cookieName = `tidemark_session_${options.port}`;
  let spent = false;
  let session: string | undefined;

  return {
    code,
    cookieName,
    redeem(given) {
      if (!sameSecret(given, code)) return { ok: false, reason: `wrong login code: ${LOGIN_ADVICE}` };
      if (spent) return { ok: false, reason: `this login code was already used: ${LOGIN_ADVICE}` };
      if (now() - issuedAt > ttl) return { ok: false, reason: `this login code expired (${Math.round(ttl / 60_000)} minutes unused): ${LOGIN_ADVICE}` };
      spent = true;
      session = randomBytes(32).toString('base64url');
      // No Secure: the host is plain http on 127.0.0.1; no Max-Age: the cookie ends with the browser session.
      return { ok: true, setCookie: `${cookieName}=${session}; HttpOnly; SameSite=Strict; Path=/` };
    },
    hasSession(header) {
      const given = cookieValue(header, cookieName);
      return session !== undefined && given !== undefined && sameSecret(given, session);
    },
  };
}
