import { describe, expect, it } from 'vitest';
import { takeCodeFromAddress, webLogin, type LoginEnv } from './web-login';

/** A page at `hash` whose /session answers as `host` says; records the address bar and the requests in order. */
function page(hash: string, host: { postStatus?: number; postText?: string; loggedIn?: boolean; down?: boolean }) {
  const log: string[] = [];
  const location = { pathname: '/', search: '', hash };
  const env: LoginEnv = {
    location,
    history: {
      replaceState: (_d, _u, url) => {
        log.push(`replaceState ${url}`);
        location.hash = '';
      },
    },
    fetch: async (input, init) => {
      if (host.down) throw new TypeError('Failed to fetch');
      const body = typeof init?.body === 'string' ? ` ${init.body}` : '';
      log.push(`${init?.method ?? 'GET'} ${input}${body} (address ${location.hash || 'clean'})`);
      if (init?.method === 'POST') return new Response(host.postStatus === 204 ? null : (host.postText ?? ''), { status: host.postStatus ?? 204 });
      return new Response(JSON.stringify({ loggedIn: host.loggedIn ?? false }), { status: 200 });
    },
  };
  return { env, log, location };
}

const never = () => new Promise<string>(() => undefined);

describe('takeCodeFromAddress', () => {
  it('takes #code=… out of the address bar and returns it; leaves other addresses alone', () => {
    const p = page('#code=abc_-1', {});
    expect(takeCodeFromAddress(p.env)).toBe('abc_-1');
    expect(p.log).toEqual(['replaceState /']);
    const q = page('', {});
    expect(takeCodeFromAddress(q.env)).toBeUndefined();
    expect(q.log).toEqual([]);
  });
});

describe('webLogin', () => {
  it('removes the code from the address before it sends anything, then exchanges it once in a POST body', async () => {
    const p = page('#code=c0de', { postStatus: 204 });
    expect(await webLogin(p.env, never)).toEqual({ ok: true });
    expect(p.log).toEqual(['replaceState /', 'POST /session {"code":"c0de"} (address clean)']);
  });

  it('shows the host\'s message for a used or wrong code', async () => {
    const p = page('#code=old', { postStatus: 403, postText: 'this login code was already used: restart `tidemark serve`…\n' });
    expect(await webLogin(p.env, never)).toEqual({ ok: false, message: 'this login code was already used: restart `tidemark serve`…' });
    expect(p.location.hash).toBe('');
  });

  it('a spent code in a browser that is already logged in still opens the app', async () => {
    const p = page('#code=old', { postStatus: 403, postText: 'used', loggedIn: true });
    expect(await webLogin(p.env, never)).toEqual({ ok: true });
  });

  it('a reload after login goes through the session cookie, without asking', async () => {
    const p = page('', { loggedIn: true });
    expect(await webLogin(p.env, never)).toEqual({ ok: true });
    expect(p.log).toEqual(['GET /session (address clean)']);
  });

  it('without a code or a session, asks for the code until the host takes one, showing each refusal', async () => {
    let status = 403;
    const p = page('', { loggedIn: false });
    const base = p.env.fetch;
    p.env.fetch = async (i, init) => (init?.method === 'POST' ? new Response(status === 204 ? null : 'wrong login code', { status }) : base(i, init));
    const asked: (string | undefined)[] = [];
    const answers = [' bad ', 'good'];
    const outcome = await webLogin(p.env, async (error) => {
      asked.push(error);
      const a = answers.shift()!;
      if (a === 'good') status = 204;
      return a;
    });
    expect(outcome).toEqual({ ok: true });
    expect(asked).toEqual([undefined, 'wrong login code']);
  });

  it('says the host is unreachable when it is not running', async () => {
    const p = page('#code=x', { down: true });
    expect(await webLogin(p.env, never)).toEqual({ ok: false, message: expect.stringMatching(/cannot reach the Tidemark host.*tidemark serve/) });
  });
});
