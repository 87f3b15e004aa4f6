// QMP endpoints as users write them: "unix:PATH", "tcp:HOST:PORT", or a bare socket path.

export type Endpoint =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number };

export function parseEndpoint(text: string): Endpoint {
  const s = text.trim();
  if (s === '') throw new Error('QMP endpoint is empty: use unix:PATH, tcp:HOST:PORT or a socket path');
  if (s.startsWith('unix:')) {
    const path = s.slice('unix:'.length);
    if (path === '') throw new Error(`QMP endpoint "${text}" has no socket path after "unix:"`);
    return { kind: 'unix', path };
  }
  if (s.startsWith('tcp:')) {
    const rest = s.slice('tcp:'.length);
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(rest);
    if (!m) throw new Error(`QMP endpoint "${text}" is not tcp:HOST:PORT`);
    const port = Number(m[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`QMP endpoint "${text}" has an invalid port ${m[2]}`);
    return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port };
  }
  if (/^[a-z]+:/i.test(s) && !s.startsWith('/') && !s.startsWith('.')) {
    throw new Error(`QMP endpoint "${text}" has an unknown scheme: use unix:PATH or tcp:HOST:PORT`);
  }
  return { kind: 'unix', path: s };
}

export function formatEndpoint(e: Endpoint): string {
  return e.kind === 'unix' ? `unix:${e.path}` : `tcp:${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}
