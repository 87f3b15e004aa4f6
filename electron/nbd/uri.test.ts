import { describe, expect, it } from 'vitest';
import { formatNbdUri, parseNbdUri } from './uri';

describe('NBD URIs (doc/uri.md)', () => {
  it('parses the examples of the spec', () => {
    expect(parseNbdUri('nbd://example.com/disk')).toEqual({ transport: { kind: 'tcp', host: 'example.com', port: 10809 }, exportName: 'disk', tls: false });
    expect(parseNbdUri('nbd+unix:///disk?socket=sock').transport).toEqual({ kind: 'unix', path: 'sock' });
    expect(parseNbdUri('nbd://example.com/').exportName).toBe('');
    expect(parseNbdUri('nbd://example.com').exportName).toBe('');
    expect(parseNbdUri('nbd://example.com//disk').exportName).toBe('/disk');
    expect(parseNbdUri('nbd://example.com/hello%20world').exportName).toBe('hello world');
    expect(parseNbdUri('nbds://[::1]:10900/x')).toMatchObject({ transport: { kind: 'tcp', host: '::1', port: 10900 }, tls: true });
    expect(parseNbdUri('nbds+unix:///x?socket=/run/a.sock&tls-hostname=vm1').tlsHostname).toBe('vm1');
  });

  it('names what is wrong', () => {
    expect(() => parseNbdUri('http://x/y')).toThrow(/is not nbd:\/\//);
    expect(() => parseNbdUri('nbd+unix:///x')).toThrow(/needs \?socket=PATH/);
    expect(() => parseNbdUri('nbd+unix://host/x?socket=/a')).toThrow(/must not name a host/);
    expect(() => parseNbdUri('nbd://:10809/x')).toThrow(/has no host/);
    expect(() => parseNbdUri('nbd://h:99999/x')).toThrow(/invalid port "99999"/);
    expect(() => parseNbdUri('nbd://h/x?sockit=1')).toThrow(/unknown query parameter "sockit"/);
    expect(() => parseNbdUri('nbd://h/%E0%A4%A')).toThrow(/badly percent-encoded/);
  });

  it('formats URIs that parse back to the same address', () => {
    for (const uri of ['nbd+unix:///vda?socket=/var/lib/tidemark/run/nbd.sock', 'nbd://10.0.0.1:10900/a%20b', 'nbds://host/x', 'nbd://[::1]/x']) {
      expect(formatNbdUri(parseNbdUri(uri))).toBe(uri);
    }
    expect(formatNbdUri({ transport: { kind: 'unix', path: '/tmp/a b.sock' }, exportName: 'tidemark/vda', tls: false })).toBe('nbd+unix:///tidemark%2Fvda?socket=/tmp/a%20b.sock');
  });
});
