import { describe, expect, it } from 'vitest';
import { classifyLibvirtMessage } from './errors';
import { connectionNotice, errorLine, frameCommand, markersFor, opt, quoteVirshArg, ReplyScanner, type NoticeKind } from './virsh-protocol';

function scanner() {
  const notices: [NoticeKind, string][] = [];
  const stray: string[] = [];
  const s = new ReplyScanner((k, l) => notices.push([k, l]), (l) => stray.push(l));
  return { s, notices, stray };
}

describe('quoting and framing', () => {
  it('quotes every argument in single quotes, with embedded quotes escaped', () => {
    expect(quoteVirshArg("it's")).toBe("'it'\\''s'");
    expect(quoteVirshArg('a b;c #d "e"')).toBe(`'a b;c #d "e"'`);
    expect(quoteVirshArg('é✓')).toBe("'é✓'");
    expect(() => quoteVirshArg('a\nb')).toThrow(/control character/);
    expect(() => quoteVirshArg('a\u0000b')).toThrow(/control character/);
    expect(opt('checkpointname', '--children')).toBe('--checkpointname=--children');
  });

  it('frames a command between begin/end markers and a sentinel line, markers quoted apart', () => {
    const line = frameCommand('ab12', 7, ['list', '--all']);
    expect(line).toBe(
      "echo '@@'tmab12:7:B@@ ; echo --err '@@'tmab12:7:B@@ ; 'list' '--all' ; echo '@@'tmab12:7:E@@ ; echo --err '@@'tmab12:7:E@@\n" +
        "echo '@@'tmab12:7:S@@ ; echo --err '@@'tmab12:7:S@@\n",
    );
    const m = markersFor('ab12', 7);
    // readline echoes the typed line: it must never contain a marker as printed
    expect(line.includes(m.begin) || line.includes(m.end) || line.includes(m.sentinel)).toBe(false);
    expect(() => frameCommand('x', 1, [])).toThrow(/empty/);
  });
});

describe('ReplyScanner', () => {
  const m = markersFor('n1', 3);

  it('cuts stdout and stderr between the markers, across arbitrary chunk boundaries', () => {
    const stdout = `virsh # echo '@@'tmn1:3:B@@ ...\n${m.begin}line one\nline two\n${m.end}virsh # echo '@@'tmn1:3:S@@\n${m.sentinel}virsh # `;
    const stderr = `error: ${m.begin}\nerror: failed to get domain 'x'\nerror: ${m.end}\nerror: ${m.sentinel}\n`;
    // the reply is complete once both streams carried the sentinel (the stderr one with its newline)
    const ready = Math.max(stdout.indexOf(m.sentinel) + m.sentinel.length, stderr.indexOf(`error: ${m.sentinel}\n`) + m.sentinel.length + 8);
    for (const size of [1, 3, 7, 1000]) {
      const { s } = scanner();
      s.expect(m);
      for (let i = 0; i < Math.max(stdout.length, stderr.length); i += size) {
        s.pushStdout(stdout.slice(i, i + size));
        s.pushStderr(stderr.slice(i, i + size));
        if (i + size < ready) expect(s.take()).toBeUndefined();
      }
      expect(s.take()).toEqual({ stdout: 'line one\nline two\n', stderrLines: ["error: failed to get domain 'x'"], parseError: false });
      expect(s.take()).toBeUndefined();
    }
  });

  it('treats a line virsh could not parse (no begin/end markers) as a parse error with its message', () => {
    const { s } = scanner();
    s.expect(m);
    s.pushStdout(`virsh # junk\nvirsh # echo '@@'tmn1:3:S@@\n${m.sentinel}`);
    s.pushStderr(`error: command 'echo' doesn't support option --flag\nerror: ${m.sentinel}\n`);
    expect(s.take()).toEqual({ stdout: '', stderrLines: ["error: command 'echo' doesn't support option --flag"], parseError: true });
  });

  it('pulls connection notices out wherever they appear and reports other stray stderr', () => {
    const { s, notices, stray } = scanner();
    s.pushStderr('error: Disconnected from qemu:///system due to end of file\nsomething else\n');
    expect(notices).toEqual([['disconnected', 'error: Disconnected from qemu:///system due to end of file']]);
    expect(stray).toEqual(['something else']);
    s.expect(m);
    s.pushStderr(`error: ${m.begin}\nerror: Reconnected to the hypervisor\nerror: ${m.end}\nerror: ${m.sentinel}\n`);
    s.pushStdout(`${m.begin}ok\n${m.end}${m.sentinel}`);
    expect(s.take()).toEqual({ stdout: 'ok\n', stderrLines: [], parseError: false });
    expect(notices.map((n) => n[0])).toEqual(['disconnected', 'reconnected']);
    expect(s.unfinishedLines()).toEqual([]);
  });

  it('keeps a command error printed without a newline before the end marker', () => {
    const { s } = scanner();
    s.expect(m);
    s.pushStderr(`error: ${m.begin}\npartial messageerror: ${m.end}\nerror: ${m.sentinel}\n`);
    s.pushStdout(`${m.begin}${m.end}${m.sentinel}`);
    expect(s.take()?.stderrLines).toEqual(['partial message']);
  });
});

describe('error lines', () => {
  it('joins virsh error lines into one line that keeps libvirt text', () => {
    expect(errorLine(['error: Failed to start domain \'x\'', 'error: Cannot access storage file \'/a\' (as uid:64055, gid:64055): Permission denied'])).toBe(
      "error: Failed to start domain 'x': Cannot access storage file '/a' (as uid:64055, gid:64055): Permission denied",
    );
    expect(errorLine(['error: Domain checkpoint not found: no domain checkpoint with matching name \'nope\''])).toBe(
      "error: Domain checkpoint not found: no domain checkpoint with matching name 'nope'",
    );
    expect(errorLine(['error: internal error: QEMU said', 'second line of the same message', ''])).toBe('error: internal error: QEMU said second line of the same message');
    expect(errorLine(['error: a', 'error: a'])).toBe('error: a');
    expect(errorLine(['warning: something'])).toBeUndefined();
    expect(errorLine([])).toBeUndefined();
    expect(errorLine(['error: '])).toBe('error: virsh reported an error without a message');
  });

  it('recognises virsh connection notices', () => {
    expect(connectionNotice('error: Disconnected from qemu+ssh://root@127.0.0.1:22/system?keyfile=/k&no_verify=1 due to end of file')).toBe('disconnected');
    expect(connectionNotice('error: Disconnected from qemu:///system due to keepalive timeout')).toBe('disconnected');
    expect(connectionNotice('error: Reconnected to the hypervisor')).toBe('reconnected');
    expect(connectionNotice('error: Failed to reconnect to the hypervisor')).toBe('reconnect-failed');
    expect(connectionNotice("error: failed to get domain 'x'")).toBeUndefined();
  });

  it.each([
    ["error: Domain checkpoint not found: Checkpoint 'nope' for incremental backup of disk 'vda' not found", 'no-checkpoint'],
    ["error: failed to get domain 'nope'", 'no-domain'],
    ["error: checkpoint inconsistent: missing or broken bitmap 'ghost' for disk 'vda'", 'checkpoint-inconsistent'],
    ['error: Requested operation is not valid: domain is not running', 'not-running'],
    ['error: Operation not supported: cannot create checkpoint for inactive domain', 'not-running'],
    ['error: operation failed: domain moment b0 already exists', 'already-exists'],
    ['error: Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainBackupBegin)', 'busy'],
    ['error: argument unsupported: QEMU guest agent is not configured', 'agent-unavailable'],
    ["error: invalid argument: store '/x' for backup of 'vda' exists", 'invalid-argument'],
    ['error: internal error: something', 'other'],
  ])('classifies %j as %s', (message, kind) => {
    expect(classifyLibvirtMessage(message)).toBe(kind);
  });
});
