// For tests and benchmarks outside a browser: log in to a web host as its page does (POST /session
// with the one-time code from the host's own Origin) and get the Cookie header to present.

export interface LoginTarget {
  origin: string;
  code: string;
}

/** Spends the host's code; returns "name=value" for a Cookie header. Throws with the host's message if refused. */
export async function loginCookie(host: LoginTarget): Promise<string> {
  const res = await fetch(`${host.origin}/session`, {
    method: 'POST',
    headers: { Origin: host.origin, 'Content-Type': 'application/json' },
    body: JSON.stringify({ code: host.code }),
  });
  if (res.status !== 204) throw new Error(`login refused: HTTP ${res.status} ${(await res.text()).trim()}`);
  const setCookie = res.headers.get('set-cookie');
  if (!setCookie) throw new Error('login answered 204 without a Set-Cookie header');
  return setCookie.split(';')[0]!;
}
