// Hostile CLI arguments through runCli with a fake io: unknown options, bad numbers, bad --connect
// URIs and endpoints (no VM needed), and hostile checkpoint names against a scripted QMP peer that
// describes a disk-less VM (so the engine's name rules, not a missing VM, answer). Every case exits
// 1 or 2 with ONE line on stderr naming the argument, and invisible or text-direction characters
// are shown escaped (\uXXXX), never raw, so a name cannot spoof another in a terminal.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../electron/cli/main';
import { reply, startFakePeer, type FakePeer } from '../../electron/qmp/fake-peer';
import { tally } from './tally';

/** Characters that must never reach a terminal raw. */
const RAW_INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f\p{Cf}\u2028\u2029]/u; // eslint-disable-line no-control-regex

let stateDir: string;
let peer: FakePeer;
beforeAll(async () => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-corpus-cli-'));
  // A running VM without disks: enough for the CLI to reach the engine's checks.
  const answers: Record<string, unknown> = { 'query-name': { name: 'corpus' }, 'query-uuid': { UUID: '' }, 'query-status': { status: 'running', running: true }, 'query-version': { qemu: { major: 7, minor: 2, micro: 0 }, package: '' } };
  peer = await startFakePeer((cmd, sock) => reply(sock, cmd.id, answers[cmd.execute] ?? []));
});
afterAll(async () => {
  await peer.close();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(['--state-dir', stateDir, ...argv], { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTTY: false, env: {} });
  return { code, out, err };
}

function expectRefused(r: { code: number; out: string; err: string }, codes: number[], reason: RegExp): void {
  expect(codes).toContain(r.code);
  expect(r.out).toBe('');
  expect(r.err).toMatch(/^error: [^\n]+\n$/);
  expect(r.err).toMatch(reason);
  expect(r.err).not.toMatch(RAW_INVISIBLE);
}

describe('CLI arguments (no VM)', () => {
  const bad: [string[], number, RegExp][] = [
    [['--verbose', 'checkpoint-list'], 2, /unknown option --verbose/],
    [['checkpoint-create-as', 'ok', '--bogus', '--print-xml'], 2, /unknown option --bogus for checkpoint-create-as/],
    [['checkpoint-list', '--tree=yes'], 2, /option --tree takes no value/],
    [['frobnicate\u202e'], 2, /unknown command 'frobnicate\\u202e'/],
    [['lab', 'write', '--disk', 'vda', '--mib', 'abc'], 2, /option --mib must be a positive integer, got "abc"/],
    [['lab', 'write', '--disk', 'vda', '--mib', '-1'], 2, /option --mib .* got "-1"/],
    [['lab', 'write', '--disk', 'vda', '--mib', '1e999'], 2, /option --mib .* got "1e999"/],
    [['lab', 'write', '--disk', 'vda', '--mib', '0x10'], 2, /option --mib .* got "0x10"/],
    [['checkpoint-create-as', 'x', '--layout', 'sideways', '--print-xml'], 2, /--layout must be independent or chained, got "sideways"/],
    [['checkpoint-create-as', 'x', '--diskspec', 'vda,checkpoint=maybe', '--print-xml'], 2, /checkpoint=maybe is not valid/],
    [['checkpoint-create-as', 'x', '--diskspec', 'vda', '--diskspec', 'vda', '--print-xml'], 2, /disk 'vda' specified twice/],
    [['--connect'], 2, /option --connect needs a value/],
    [['-c', 'http://x', 'checkpoint-list'], 1, /"http:\/\/x" has an unknown scheme/],
    [['-c', 'unix:', 'checkpoint-list'], 1, /"unix:" has no socket path/],
    [['-c', 'tcp:1.2.3.4:99999', 'checkpoint-list'], 1, /"tcp:1\.2\.3\.4:99999" has an invalid port 99999/],
    [['-c', 'qemu+ssh://', 'checkpoint-list'], 1, /libvirt URI "qemu\+ssh:\/\/" has path ""/],
    [['-c', 'qemu:///system?socket=/x\u0000', 'checkpoint-list'], 1, /libvirt URI "qemu:\/\/\/system\?socket=\/x\\u0000" contains spaces or control characters/],
    [['-c', 'qemu:///system\u202e', 'checkpoint-list'], 1, /qemu:\/\/\/system\\u202e/],
    [['-c', 'unix:/nonexistent/tm-\u200bcorpus.sock', 'checkpoint-list'], 1, /unix:\/nonexistent\/tm-\\u200bcorpus\.sock/],
  ];
  for (const [argv, code, reason] of bad) {
    it(JSON.stringify(argv), async () => {
      expectRefused(await run(argv), [code], reason);
      tally('CLI arguments');
    });
  }
});

describe('CLI checkpoint names (a scripted VM answers)', () => {
  const bad: [string[], RegExp][] = [
    [['checkpoint-create-as', 'a/b'], /checkpoint name "a\/b" contains "\/"/],
    [['checkpoint-create-as', 'a\u202eb'], /checkpoint name "a\\u202eb" contains a text-direction control character \(U\+202e\)/],
    [['checkpoint-create-as', 'c1\u2066'], /"c1\\u2066" contains a text-direction control character/],
    [['checkpoint-create-as', 'c1\u200b'], /checkpoint name "c1\\u200b" contains an invisible character \(U\+200b\)/],
    [['checkpoint-create-as', '\ufeffc1'], /"\\ufeffc1" contains an invisible character/],
    [['checkpoint-create-as', 'a\u0000b'], /checkpoint name "a\\u0000b" contains a control character \(U\+0000\)/],
    [['checkpoint-create-as', 'a\nb'], /checkpoint name "a\\nb" contains a control character \(U\+000a\)/],
    [['checkpoint-create-as', 'x'.repeat(10_000)], /checkpoint:create\[1\]\.name: longer than 4096 characters/],
    [['checkpoint-create-as', '\u00e9'.repeat(600)], /checkpoint name is 1200 bytes long; qcow2 allows at most 1023 bytes/],
    [['checkpoint-create-as', 'a\ud800b'], /is not valid Unicode \(lone surrogate\)/],
    [['checkpoint-create-as', '.hidden'], /checkpoint name ".hidden" starts with "\."/],
    [['checkpoint-create-as', 'tidemark-tmp-x'], /starts with "tidemark-tmp-", which is reserved/],
    [['checkpoint-delete', 'c1\u200b'], /checkpoint c1\\u200b not found/],
    [['checkpoint-dumpxml', '../x'], /checkpoint \.\.\/x not found/],
    [['checkpoint-info', 'x'.repeat(10_000)], /longer than 4096 characters/],
  ];
  for (const [argv, reason] of bad) {
    it(JSON.stringify(argv).slice(0, 80), async () => {
      expectRefused(await run(['-c', peer.endpoint, ...argv]), [1, 2], reason);
      tally('CLI arguments');
    });
  }

  it('--print-xml writes invisible and text-direction characters as character references, the same XML', async () => {
    const r = await run(['checkpoint-create-as', 'c1\u202e\u200b', '--print-xml']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('<name>c1&#x202e;&#x200b;</name>');
    expect(r.out).not.toMatch(RAW_INVISIBLE);
  });
});
