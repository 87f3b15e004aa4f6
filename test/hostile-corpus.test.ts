// The hostile-input corpus (issue 9 item 10), run through every entry point: contract payloads
// through dispatch (here) and over IPC and the WebSocket (hostile-corpus/transport.ts), backup
// manifests and journals (here), CLI arguments (hostile-corpus/cli.ts), checkpoint and libvirt XML
// (hostile-corpus/xml.ts), QMP and NBD replies (hostile-corpus/replies.ts). Each case must be
// rejected with a one-line error naming what was wrong; handlers are never reached. Prints how many
// cases ran, per entry point and in total.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, type Handlers } from '../shared/contract';
import { parseJournal } from '../electron/engine/backup/lock';
import { parseManifest } from '../electron/engine/backup/manifest';
import { qmpStateOf } from '../electron/engine/qmp-driver/recovery';
import { counts, summary, tally } from './hostile-corpus/tally';
import './hostile-corpus/transport';
import './hostile-corpus/cli';
import './hostile-corpus/xml';
import './hostile-corpus/replies';

afterAll(() => console.log(`hostile-input corpus, cases rejected with a reason: ${summary()}`));

const handlers = new Proxy({}, { get: () => () => { throw new Error('a handler was reached'); } }) as unknown as Handlers;

describe('contract payloads (IPC and WebSocket both go through dispatch)', () => {
  const bad: [unknown, unknown, RegExp][] = [
    ['nope', [], /unknown channel "nope"/],
    ['__proto__', [], /unknown channel/],
    ['constructor', [], /unknown channel/],
    [42, [], /unknown channel "42"/],
    ['checkpoint:create', 'not an array', /expected|array/],
    ['checkpoint:create', [{}], /./],
    ['checkpoint:create', ['vm', { name: 5 }], /name: expected a string, got number 5/],
    ['checkpoint:create', ['vm', { name: 'x', evil: 1 }], /unexpected field "evil"/],
    ['checkpoint:create', ['vm', JSON.parse('{"name":"x","__proto__":{"polluted":1}}')], /unexpected field|__proto__/],
    ['checkpoint:create', ['vm', { name: 'x'.repeat(100_000) }], /./],
    ['backup:delete', [123], /expected/],
    ['backup:delete', ['20260101-000000-000-000a', { withDependents: 'yes' }], /expected/],
    ['backup:info', [null], /expected|missing/],
    ['restore:run', [{ backup: 5, to: { disk: 'vda', path: '/tmp/x' } }], /backup: expected a string, got number 5/],
    ['restore:run', [[]], /expected an object|an array/],
  ];
  for (const [channel, args, reason] of bad) {
    it(`${String(channel).slice(0, 30)} ${JSON.stringify(args)?.slice(0, 60)}`, async () => {
      const err = await dispatch(handlers, channel, args).then(() => new Error('accepted'), (e: Error) => e);
      expect(err.message).not.toBe('accepted');
      expect(err.message).not.toMatch(/a handler was reached/);
      expect(err.message.split('\n')).toHaveLength(1);
      expect(err.message).toMatch(reason);
      tally('contract dispatch');
    });
  }
});

const goodManifest = {
  format: 'tidemark-backup', version: 1, id: '20260101-000000-000-000a', vm: { id: 'vm' }, kind: 'full', startedAt: 0, completedAt: 0, qemuVersion: '7.2', tool: 't',
  disks: [{ name: 'vda', kind: 'full', image: 'disks/vda/20260101-000000-000-000a.qcow2', virtualSize: 1, bytesCopied: 0, fileSize: 0, sha256: '0'.repeat(64), sourceImage: '', sourceFormat: 'qcow2', checkpointBitmap: false }],
};
const edit = (f: (m: Record<string, unknown> & { disks: Record<string, unknown>[] }) => void) => {
  const m = structuredClone(goodManifest) as Record<string, unknown> & { disks: Record<string, unknown>[] };
  f(m);
  return JSON.stringify(m);
};

describe('backup manifests', () => {
  const text = JSON.stringify(goodManifest);
  const bad: [string, string, RegExp][] = [
    ['truncated', text.slice(0, 50), /is not valid JSON/],
    ['empty', '', /is not valid JSON/],
    ['a number', '5', /expected an object|got number/],
    ['an array', '[]', /array/],
    ['unknown version', edit((m) => (m.version = 3)), /manifest version 3 is not supported/],
    ['unknown field', edit((m) => (m.extra = true)), /unexpected field "extra"/],
    ['climbing image path', edit((m) => (m.disks[0]!.image = 'disks/../x.qcow2')), /disks\/<disk>\/<id>\.qcow2/],
    ['absolute image path', edit((m) => (m.disks[0]!.image = '/etc/passwd')), /disks\/<disk>\/<id>\.qcow2/],
    ['backing file elsewhere', edit((m) => Object.assign(m.disks[0]!, { kind: 'incremental', since: 'c', base: '20260101-000000-000-000b', backingFile: '../../x.qcow2' })), /./],
    ['bad id', edit((m) => (m.id = '../x')), /expected a backup id/],
    ['no disks', edit((m) => (m.disks = [])), /lists no disks/],
    ['duplicate disk', edit((m) => m.disks.push(m.disks[0]!)), /listed twice/],
    ['negative size', edit((m) => (m.disks[0]!.virtualSize = -1)), /./],
    ['NaN size', text.replace('"virtualSize":1', '"virtualSize":NaN'), /is not valid JSON/],
    ['bad sha256', edit((m) => (m.disks[0]!.sha256 = 'x')), /64 lower-case hex digits/],
  ];
  for (const [what, t, reason] of bad) {
    it(what, () => {
      expect(() => parseManifest(t, 'M')).toThrow(reason);
      expect(() => parseManifest(t, 'M')).toThrow(/^manifest M /);
      tally('manifests');
    });
  }
});

describe('backup journals and their QMP state', () => {
  const journal = { pid: 1, host: 'h', backupId: '20260101-000000-000-000a', vmId: 'vm', endpoint: '', startedAt: 0, updatedAt: 0, phase: 'running', kind: 'full', executed: true, disks: [], progress: [], log: [] };
  const bad: [string, unknown, RegExp][] = [
    ['truncated', '{"pid": 1', /is not valid JSON/],
    ['unknown phase', { ...journal, phase: 'exploding' }, /phase: expected one of/],
    ['backup id that climbs', { ...journal, backupId: '../../etc' }, /backupId: expected a backup id/],
    ['unknown field', { ...journal, rm: '/' }, /unexpected field "rm"/],
    ['disk with extra field', { ...journal, disks: [{ disk: 'vda', kind: 'full', partialImage: '/x', also: '/y' }] }, /unexpected field "also"/],
    ['negative pid', { ...journal, pid: -1 }, /pid/],
  ];
  for (const [what, j, reason] of bad) {
    it(what, () => {
      expect(() => parseJournal(typeof j === 'string' ? j : JSON.stringify(j), 'L')).toThrow(reason);
      tally('journals');
    });
  }
  const badState: [string, unknown][] = [
    ['disks not a list', { disks: 'all' }],
    ['a pid of 1 to stop', { disks: [], pull: { exports: [], qemuNbdPids: [1], fleeceFiles: [] } }],
    ['an unknown field', { disks: [], evil: true }],
    ['a job id that is not a string', { disks: [{ disk: 'vda', jobId: 5, targetNode: 'n', sourceNode: 's' }] }],
  ];
  for (const [what, state] of badState) {
    it(`QMP state: ${what}`, () => {
      const lines: string[] = [];
      expect(qmpStateOf({ name: 'qmp-push', state }, { add: (l) => lines.push(l) })).toBeUndefined();
      expect(lines).toEqual([expect.stringMatching(/^the backup journal's QEMU state is not valid, nothing is done from it: journal\.strategy\.state/)]);
      tally('journals');
    });
  }
});

it('the corpus files stay inside the repository', () => {
  expect(fs.existsSync(path.join(__dirname, '..', 'package.json'))).toBe(true);
});

it('every entry point the issue names ran cases', () => {
  // Declared last, so it runs last (vitest keeps declaration order): every case has counted by now.
  // Under -t (a filtered run) most entry points are skipped, so there is nothing to check.
  if (counts.size < 2) return;
  const entries = ['IPC payloads', 'WebSocket frames', 'contract dispatch', 'CLI arguments', 'checkpoint XML', 'libvirt XML', 'manifests', 'journals', 'QMP replies', 'NBD replies'];
  for (const e of entries) expect(counts.get(e) ?? 0, e).toBeGreaterThan(0);
});
