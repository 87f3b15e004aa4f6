// LibvirtConnection's failure handling against a scripted stand-in for virsh (the real one is in the
// integration tests): lost connections, a virsh that exits or hangs, refused monitor commands.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LibvirtConnection } from './connection';
import { LibvirtConnectionError, LibvirtError, LibvirtTimeoutError } from './errors';

// Speaks the framing of virsh-protocol.ts: each line is "cmd ; cmd ; …", commands are quoted tokens.
const FAKE_VIRSH = String.raw`#!/usr/bin/env node
const uri = process.argv[process.argv.indexOf('-c') + 1];
if (process.env.FAKE_CONNECT_FAIL) {
  process.stderr.write('error: failed to connect to the hypervisor\nerror: Cannot recv data: ssh: connect to host nowhere port 22: Connection refused\n');
  process.exit(1);
}
const out = (s) => process.stdout.write(s);
const err = (s) => process.stderr.write(s);
let hung = false;
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('end', () => process.exit(0));
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while (!hung && (i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    for (const part of line.split(' ; ')) {
      const toks = [...part.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]);
      const [cmd, ...args] = part.trim().startsWith('echo') ? ['echo', ...part.trim().split(' ').slice(1)] : toks;
      if (cmd === 'echo') {
        const toErr = args[0] === '--err';
        const text = (toErr ? args.slice(1) : args).join(' ').replace(/'/g, '');
        if (toErr) err('error: ' + text + '\n'); else out(text);
      } else if (cmd === 'uri') out(uri + '\n');
      else if (cmd === 'list') out('ok\n');
      else if (cmd === 'fail') err("error: Domain checkpoint not found: no domain checkpoint with matching name 'nope'\n");
      else if (cmd === 'hang') { hung = true; break; }
      else if (cmd === 'die') { err('error: boom\n'); process.exit(3); }
      else if (cmd === 'drop-later') { out('ok\n'); setTimeout(() => err('error: Disconnected from ' + uri + ' due to end of file\n'), 30); }
      else if (cmd === 'reconnected-ok') { err('error: Reconnected to the hypervisor\n'); out('done\n'); }
      else if (cmd === 'dropped-fail') { err('error: Disconnected from ' + uri + ' due to end of file\nerror: End of file while reading data: Input/output error\n'); }
      else if (cmd === 'show-file') { const f = args.find((a) => a.startsWith('--xmlfile=')).slice(10); const fs = require('fs'); out(fs.readFileSync(f, 'utf8') + '|' + (fs.statSync(f).mode & 0o777).toString(8) + '|' + (fs.statSync(require('path').dirname(f)).mode & 0o777).toString(8) + '|' + f + '\n'); }
      else err("error: unknown command: '" + cmd + "'\n");
    }
  }
});
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-fake-virsh-'));
const virsh = path.join(dir, 'virsh');
fs.writeFileSync(virsh, FAKE_VIRSH, { mode: 0o755 });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const open = (opts = {}) => LibvirtConnection.open('qemu:///system', { virsh, ...opts });

describe('LibvirtConnection (scripted virsh)', () => {
  it('runs commands in order and passes libvirt errors through as one line', async () => {
    const c = await open();
    const results = await Promise.all([c.command(['list']), c.command(['fail']).catch((e: LibvirtError) => e), c.command(['list'])]);
    expect(results[0]).toBe('ok\n');
    expect(results[1]).toBeInstanceOf(LibvirtError);
    expect((results[1] as LibvirtError).message).toBe("error: Domain checkpoint not found: no domain checkpoint with matching name 'nope'");
    expect((results[1] as LibvirtError).kind).toBe('no-checkpoint');
    expect(results[2]).toBe('ok\n');
    await c.close();
  });

  it('hands XML over in a private file that is gone afterwards', async () => {
    const c = await open();
    const [xml, mode, dirMode, file] = (await c.command(['show-file'], { xmlFiles: { xmlfile: '<domaincheckpoint/>' } })).trim().split('|');
    expect([xml, mode, dirMode]).toEqual(['<domaincheckpoint/>', '600', '700']);
    expect(fs.existsSync(path.dirname(file!))).toBe(false); // file and folder are gone after the command
    await c.close();
  });

  it('refuses monitor commands unless opened for a test harness', async () => {
    const c = await open();
    await expect(c.command(['qemu-monitor-command', '--domain=x', '--hmp', '--cmd=info'])).rejects.toThrow(/not allowed: Tidemark changes VMs only through libvirt's API/);
    await expect(c.command(['qemu-agent-command'])).rejects.toThrow(/not allowed/);
    await c.close();
  });

  it('reports a failed connection with virsh/libvirt text', async () => {
    process.env.FAKE_CONNECT_FAIL = '1';
    try {
      const e = await open().catch((x: Error) => x);
      expect(e).toBeInstanceOf(LibvirtConnectionError);
      expect((e as Error).message).toBe(
        'cannot connect to libvirt at qemu:///system: error: failed to connect to the hypervisor: Cannot recv data: ssh: connect to host nowhere port 22: Connection refused',
      );
    } finally {
      delete process.env.FAKE_CONNECT_FAIL;
    }
  });

  it('notices a drop between commands, fails every call until reconnect(), then works again', async () => {
    const c = await open();
    const lost: string[] = [];
    c.onLost((e) => lost.push(e.message));
    expect(await c.command(['drop-later'])).toBe('ok\n');
    // virsh reports the drop 30 ms after its answer; noticed with no command running (waited for, not
    // given a fixed 300 ms: on a loaded machine the stand-in's timer and pipe may take longer)
    await vi.waitFor(() => expect(lost).not.toEqual([]), { timeout: 10_000, interval: 20 });
    expect(lost).toEqual(['libvirt connection to qemu:///system was lost (Disconnected from qemu:///system due to end of file); call reconnect() to continue']);
    await expect(c.command(['list'])).rejects.toThrow(LibvirtConnectionError);
    await expect(c.command(['list'])).rejects.toThrow(/was lost/);
    await c.reconnect();
    expect(c.lost).toBeUndefined();
    expect(await c.command(['list'])).toBe('ok\n');
    await c.close();
  });

  it('callers reconnecting at once share one attempt (two would leave a virsh behind)', async () => {
    const c = await open();
    await c.command(['drop-later']);
    await new Promise((r) => setTimeout(r, 300));
    const a = c.reconnect();
    const b = c.reconnect();
    expect(b).toBe(a);
    await a;
    expect(await c.command(['list'])).toBe('ok\n');
    const again = c.reconnect(); // a later call gets a fresh attempt
    expect(again).not.toBe(a);
    await again;
    await c.close();
  });

  it('keeps the result of a command that ran after virsh reconnected on its own, then reports the loss', async () => {
    const c = await open();
    expect(await c.command(['reconnected-ok'])).toBe('done\n');
    await expect(c.command(['list'])).rejects.toThrow(/was lost and virsh reconnected on its own/);
    await c.close();
  });

  it('fails a command the drop broke with a connection error carrying libvirt text', async () => {
    const c = await open();
    await expect(c.command(['dropped-fail'])).rejects.toThrow(
      'libvirt connection to qemu:///system was lost (Disconnected from qemu:///system due to end of file) during dropped-fail: error: End of file while reading data: Input/output error',
    );
    await c.close();
  });

  it('reports virsh exiting in the middle of a command', async () => {
    const c = await open();
    const e = await c.command(['die']).catch((x: Error) => x);
    expect(e).toBeInstanceOf(LibvirtConnectionError);
    expect((e as Error).message).toMatch(/^libvirt at qemu:\/\/\/system: error: boom \(during die\)$/);
    await expect(c.command(['list'])).rejects.toThrow(/error: boom/);
    await c.reconnect();
    expect(await c.command(['list'])).toBe('ok\n');
    await c.close();
  });

  it('times a hung command out, closes the connection, and can reconnect', async () => {
    const c = await open({ commandTimeoutMs: 300 });
    const e = await c.command(['hang']).catch((x: Error) => x);
    expect(e).toBeInstanceOf(LibvirtTimeoutError);
    expect((e as Error).message).toBe('libvirt at qemu:///system: hang got no answer within 300 ms; the connection was closed');
    await expect(c.command(['list'])).rejects.toThrow(LibvirtConnectionError);
    await c.reconnect();
    expect(await c.command(['list'])).toBe('ok\n');
    await c.close();
    await expect(c.command(['list'])).rejects.toThrow(/is closed/);
  });

  it('refuses a malformed URI before starting anything', async () => {
    await expect(LibvirtConnection.open('qemu+ssh://host/system?command=x', { virsh: '/nonexistent' })).rejects.toThrow(/parameter "command"/);
  });
});
