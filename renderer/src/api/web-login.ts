// Logging in to the web host, before the app renders. The printed address carries a one-time code
// in its #fragment (never sent in a request, so in no server log or Referer); it is taken out of
// the address bar at once with history.replaceState, then exchanged (POST /session) for an
// HttpOnly session cookie that the WebSocket upgrade and every later reload present. Without a
// code and without a session, the page asks for the code. Not used inside Electron.

export const SESSION_PATH = '/session';

export interface LoginEnv {
  location: { pathname: string; search: string; hash: string };
  history: { replaceState(data: unknown, unused: string, url?: string): void };
  fetch: (input: string, init?: RequestInit) => Promise<Response>;
}

export type LoginOutcome = { ok: true } | { ok: false; message: string };

/** Removes #code=… from the address bar (and so from history) and returns the code, if any. */
export function takeCodeFromAddress(env: LoginEnv): string | undefined {
  const hash = env.location.hash.replace(/^#/, '');
  if (!hash) return undefined;
  const code = new URLSearchParams(hash).get('code') ?? undefined;
  if (code !== undefined) env.history.replaceState(null, '', `${env.location.pathname}${env.location.search}`);
  return code || undefined;
}

const UNREACHABLE = 'cannot reach the Tidemark host: is `tidemark serve` still running? Restart it and open the address it prints.';

/** POST /session {code}: the host answers 204 and sets the cookie, or 403 with a message. */
export async function exchangeCode(env: LoginEnv, code: string): Promise<LoginOutcome> {
  let res: Response;
  try {
    res = await env.fetch(SESSION_PATH, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }), credentials: 'same-origin' });
  } catch {
    return { ok: false, message: UNREACHABLE };
  }
  if (res.status === 204) return { ok: true };
  const text = (await res.text().catch(() => '')).trim();
  return { ok: false, message: text || `login refused (HTTP ${res.status})` };
}

/** Whether the browser already holds this host's session (a reload after login). */
export async function hasSession(env: LoginEnv): Promise<boolean> {
  try {
    const res = await env.fetch(SESSION_PATH, { credentials: 'same-origin' });
    return res.ok && ((await res.json()) as { loggedIn?: unknown }).loggedIn === true;
  } catch {
    return false;
  }
}

/**
 * Logs in: with the address's code, without one through the existing session, else with codes
 * from `askForCode` (given the previous refusal) until one works. A refused address code is final:
 * the caller shows the message.
 */
export async function webLogin(env: LoginEnv, askForCode: (error?: string) => Promise<string>): Promise<LoginOutcome> {
  const code = takeCodeFromAddress(env); // first, before any await: the code leaves the address bar now
  if (code !== undefined) {
    const outcome = await exchangeCode(env, code);
    // The printed address opened again in a browser that is logged in: the session still works.
    if (!outcome.ok && (await hasSession(env))) return { ok: true };
    return outcome;
  }
  if (await hasSession(env)) return { ok: true };
  let error: string | undefined;
  for (;;) {
    const outcome = await exchangeCode(env, (await askForCode(error)).trim());
    if (outcome.ok) return outcome;
    error = outcome.message;
  }
}
