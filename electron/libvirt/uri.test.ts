import { describe, expect, it } from 'vitest';
import { isRemote, parseLibvirtUri, sshTarget } from './uri';
import { sshForwardArgs } from './ssh-forward';

describe('parseLibvirtUri', () => {
  it('accepts the local system and session daemons', () => {
    expect(parseLibvirtUri('qemu:///system')).toEqual({ text: 'qemu:///system', transport: 'local', instance: 'system', params: {} });
    expect(parseLibvirtUri(' qemu:///session ')).toMatchObject({ text: 'qemu:///session', transport: 'local', instance: 'session' });
    expect(isRemote(parseLibvirtUri('qemu:///system'))).toBe(false);
  });

  it('accepts qemu+ssh with user, port and the keyfile/no_verify parameters', () => {
    const u = parseLibvirtUri('qemu+ssh://root@127.0.0.1:2222/system?keyfile=/tmp/k%20ey&no_verify=1');
    expect(u).toEqual({
      text: 'qemu+ssh://root@127.0.0.1:2222/system?keyfile=/tmp/k%20ey&no_verify=1',
      transport: 'ssh',
      instance: 'system',
      user: 'root',
      host: '127.0.0.1',
      port: 2222,
      params: { keyfile: '/tmp/k ey', no_verify: '1' },
    });
    expect(isRemote(u)).toBe(true);
    expect(sshTarget(u)).toEqual({ host: '127.0.0.1', port: 2222, user: 'root', keyfile: '/tmp/k ey', noVerify: true });
    expect(parseLibvirtUri('qemu+ssh://kvm-host.example/system')).toMatchObject({ host: 'kvm-host.example', params: {} });
    expect(parseLibvirtUri('qemu+ssh://[::1]:22/session')).toMatchObject({ host: '::1', port: 22, instance: 'session' });
  });

  it('accepts qemu+tls with a host and optional port', () => {
    expect(parseLibvirtUri('qemu+tls://kvm1.example:16514/system?pkipath=/etc/pki/tm')).toMatchObject({ transport: 'tls', host: 'kvm1.example', port: 16514, params: { pkipath: '/etc/pki/tm' } });
  });

  it.each([
    ['', /is empty/],
    ['system', /is not a URI/],
    ['xen:///system', /unsupported scheme "xen"/],
    ['qemu+tcp://host/system', /unsupported scheme "qemu\+tcp"/],
    ['qemu+unix:///system?socket=/x', /unsupported scheme/],
    ['qemu://host/system', /names a host/],
    ['qemu:///', /path "\/"/],
    ['qemu:///system/extra', /must be \/system or \/session/],
    ['qemu+ssh:///system', /has no host/],
    ['qemu+ssh://ho_st!/system', /invalid host|not a URI/],
    ['qemu+ssh://user:secret@host/system', /must not carry a password/],
    ['qemu+ssh://host/system?command=rm%20-rf', /parameter "command", which Tidemark does not pass on/],
    ['qemu+ssh://host/system?netcat=/tmp/x', /parameter "netcat"/],
    ['qemu+ssh://host/system?socket=/x', /parameter "socket"/],
    ['qemu:///system?keyfile=/k', /a local URI takes none/],
    ['qemu+ssh://host/system?keyfile=relative', /must be an absolute path/],
    ['qemu+ssh://host/system?no_verify=1&no_verify=0', /repeats parameter "no_verify"/],
    ['qemu+ssh://host/system#frag', /fragment/],
    ['qemu+ssh://host/sys tem', /spaces or control/],
    ['qemu+tls://root@host/system', /names a user/],
    ['qemu+ssh://-oProxyCommand=x@host/system', /invalid user name/],
  ])('refuses %j with one line naming it', (uri, why) => {
    let message = '';
    try {
      parseLibvirtUri(uri);
    } catch (e) {
      message = (e as Error).message;
      expect((e as Error).name).toBe('LibvirtUriError');
    }
    expect(message).toMatch(why);
    expect(message).not.toContain('\n');
    if (uri.trim() !== '') expect(message).toContain(JSON.stringify(uri.trim()));
  });

  it('builds the ssh arguments of a socket forward from the URI', () => {
    const u = parseLibvirtUri('qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k&no_verify=1');
    expect(sshForwardArgs(u, '/l.sock', '/r.sock')).toEqual([
      '-N', '-T', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-o', 'StreamLocalBindUnlink=yes', '-o', 'StreamLocalBindMask=0177',
      '-o', 'StrictHostKeyChecking=no', '-p', '2222', '-l', 'root', '-i', '/k', '-L', '/l.sock:/r.sock', '--', '127.0.0.1',
    ]);
    expect(() => sshTarget(parseLibvirtUri('qemu:///system'))).toThrow(/does not use SSH/);
  });
});
