import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../../shared/domain';
import { writeFileAtomic } from '../../os/atomic-file';
import { ownStartTime } from '../../os/process-liveness';
import { acquireLock, LockHeldError } from './lock';
import { MetadataStore } from './store';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmstore-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const cp = (name: string, parent?: string): Checkpoint => ({
  name, ...(parent ? { parent } : {}), creationTime: 1700000000, createdAtMs: 1700000000123, layout: 'chained',
  disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: name }, { name: 'vdc', checkpoint: 'no' }],
});

/** Every file under root, relative. */
function tree(dir = root): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name))).sort();
}

describe('MetadataStore', () => {
  it('round-trips vm.json and one file per checkpoint', () => {
    const s = new MetadataStore(path.join(root, 'state'), 'a27953b2-6a26-4fb3-95b2-c89f971fc2e8');
    expect(s.load()).toEqual({ vm: undefined, checkpoints: new Map() });
    s.writeVm({ id: 'a27953b2-6a26-4fb3-95b2-c89f971fc2e8', name: 'demo', endpoint: 'unix:/x', layout: 'chained', current: 'c2' });
    s.writeCheckpoint(cp('c1'));
    s.writeCheckpoint(cp('c2', 'c1'));
    const again = new MetadataStore(path.join(root, 'state'), 'a27953b2-6a26-4fb3-95b2-c89f971fc2e8').load();
    expect(again.vm).toEqual({ id: 'a27953b2-6a26-4fb3-95b2-c89f971fc2e8', name: 'demo', endpoint: 'unix:/x', layout: 'chained', current: 'c2' });
    expect([...again.checkpoints.values()]).toEqual([cp('c1'), cp('c2', 'c1')]);
    expect(tree()).toEqual([
      'state/vms/a27953b2-6a26-4fb3-95b2-c89f971fc2e8/checkpoints/c1.json',
      'state/vms/a27953b2-6a26-4fb3-95b2-c89f971fc2e8/checkpoints/c2.json',
      'state/vms/a27953b2-6a26-4fb3-95b2-c89f971fc2e8/vm.json',
    ]);
    s.removeCheckpoint('c1');
    expect([...s.load().checkpoints.keys()]).toEqual(['c2']);
  });

  it('hostile VM ids and checkpoint names stay inside the state directory', () => {
    for (const id of ['..', '../../etc', '/', 'unix:/tmp/q.sock', '.']) {
      const s = new MetadataStore(path.join(root, 'state'), id);
      s.writeVm({ id, endpoint: id });
      s.writeCheckpoint(cp('%2e%2e'));
      s.writeCheckpoint(cp('x'.repeat(1000)));
      expect(s.load().checkpoints.has('%2e%2e')).toBe(true);
    }
    expect(tree().every((f) => f.startsWith('state/vms/'))).toBe(true);
    expect(fs.readdirSync(root)).toEqual(['state']);
  });

  it('refuses to write a checkpoint with an invalid name', () => {
    const s = new MetadataStore(root, 'vm');
    expect(() => s.writeCheckpoint(cp('../evil'))).toThrow(/contains "\/"/);
    expect(tree()).toEqual([]);
  });

  it('a damaged file gives an error naming it', () => {
    const s = new MetadataStore(root, 'vm');
    s.writeCheckpoint(cp('c1'));
    const file = path.join(s.checkpointsDir, 'c1.json');
    fs.writeFileSync(file, '{"name": "c1", ');
    expect(() => s.load()).toThrow(new RegExp(`checkpoint metadata ${file} is damaged \\(not valid JSON`));
    fs.writeFileSync(file, JSON.stringify({ ...cp('c1'), disks: 'vda' }));
    expect(() => s.load()).toThrow(/c1\.json is damaged \(c1\.json\.disks: expected an array/);
    fs.writeFileSync(file, JSON.stringify(cp('c2')));
    expect(() => s.load()).toThrow(/holds checkpoint "c2", whose file should be c2\.json/);
    fs.writeFileSync(file, JSON.stringify(cp('.bad')));
    expect(() => s.load()).toThrow(/damaged \(checkpoint name ".bad" starts with "."\)/);
    fs.rmSync(file);
    fs.writeFileSync(path.join(s.dir, 'vm.json'), '[]');
    expect(() => s.load()).toThrow(/VM metadata .*vm\.json is damaged \(vm\.json: expected an object, got an array\)/);
  });

  it('ignores temp files of an interrupted write', () => {
    const s = new MetadataStore(root, 'vm');
    s.writeCheckpoint(cp('c1'));
    fs.writeFileSync(path.join(s.checkpointsDir, '.tmp-123-abc'), '{"half');
    expect([...s.load().checkpoints.keys()]).toEqual(['c1']);
  });
});

describe('pending checkpoints (prepared for a backup, not yet recorded)', () => {
  const owner = { pid: 4242, start: '123', command: 'backup 20260101-000000-ab12', since: '2026-01-01T00:00:00.000Z' };
  it('are written one file each under pending/, read back, and removed; checkpoints stay unaffected', () => {
    const s = new MetadataStore(path.join(root, 'state'), 'vm1');
    expect(s.loadPending()).toEqual([]);
    s.writePending({ checkpoint: cp('bk', 'c1'), owner });
    s.writePending({ checkpoint: cp('a b%'), owner, abandoned: true });
    expect(s.loadPending()).toEqual([{ checkpoint: cp('a b%'), owner, abandoned: true }, { checkpoint: cp('bk', 'c1'), owner }]);
    expect(s.load().checkpoints.size).toBe(0);
    expect(tree()).toEqual(['state/vms/vm1/pending/a%20b%25.json', 'state/vms/vm1/pending/bk.json']);
    s.removePending('bk');
    s.removePending('bk'); // nothing left: no error
    expect(s.loadPending().map((p) => p.checkpoint.name)).toEqual(['a b%']);
  });

  it('a damaged pending file gives an error naming it', () => {
    const s = new MetadataStore(path.join(root, 'state'), 'vm1');
    s.writePending({ checkpoint: cp('bk'), owner });
    const file = path.join(s.pendingDir, 'bk.json');
    fs.writeFileSync(file, '{"checkpoint": {"name": "bk"}}');
    expect(() => s.loadPending()).toThrow(`pending checkpoint ${file} is damaged (bk.json.checkpoint: missing field "creationTime"); fix or remove that file`);
    fs.writeFileSync(file, JSON.stringify({ checkpoint: cp('other'), owner }));
    expect(() => s.loadPending()).toThrow(`pending checkpoint ${file} holds checkpoint "other", whose file should be other.json; fix or remove that file`);
  });
});

describe('staged changes (metadata written before QEMU is touched)', () => {
  it('stage writes aside; commit puts everything in place and removes; abort leaves the old state', () => {
    const s = new MetadataStore(root, 'vm', 'demo');
    s.writeVm({ id: 'vm', endpoint: 'unix:/x', current: 'c1' });
    s.writeCheckpoint(cp('c1'));
    const before = tree();
    const staged = s.stage({ write: [cp('c2', 'c1')], vm: { id: 'vm', endpoint: 'unix:/x', current: 'c2' } });
    expect([...s.load().checkpoints.keys()]).toEqual(['c1']); // staged files are invisible
    staged.abort();
    expect(tree()).toEqual(before);
    s.stage({ write: [cp('c2')], vm: { id: 'vm', endpoint: 'unix:/x', current: 'c2' }, remove: ['c1'] }).commit();
    const after = s.load();
    expect([...after.checkpoints.keys()]).toEqual(['c2']);
    expect(after.vm?.current).toBe('c2');
    expect(tree()).toEqual(['vms/vm/checkpoints/c2.json', 'vms/vm/vm.json']);
  });

  it('a directory that cannot take the files fails at stage, with a clear error and nothing left behind', () => {
    const s = new MetadataStore(root, 'vm', 'demo');
    s.writeVm({ id: 'vm', endpoint: 'unix:/x' });
    fs.writeFileSync(s.checkpointsDir, 'not a directory');
    const before = tree();
    expect(() => s.stage({ write: [cp('c1')], vm: { id: 'vm', endpoint: 'unix:/x', current: 'c1' } })).toThrow(
      new RegExp(`^cannot write the metadata of VM demo \\(vm\\) under ${s.dir}: .*$`),
    );
    expect(tree()).toEqual(before);
  });

  it('a file size limit (as a full disk) is an error, never a truncated file put in place', () => {
    // writeSync writes what fits and returns a short count; the store must notice rather than rename
    // a cut-off JSON file over the metadata. RLIMIT_FSIZE makes the limit real without privileges.
    const script = `
      require(${JSON.stringify(require.resolve('tsx/cjs'))});
      const { MetadataStore } = require(${JSON.stringify(path.join(__dirname, 'store.ts'))});
      const s = new MetadataStore(${JSON.stringify(root)}, 'vm');
      const big = { name: 'c1', description: 'x'.repeat(4000), creationTime: 1, createdAtMs: 1, layout: 'independent', disks: [] };
      try { s.stage({ write: [big] }).commit(); console.log('WROTE'); } catch (e) { console.log(e.message); }`;
    fs.mkdirSync(path.join(root, 'vms', 'vm', 'checkpoints'), { recursive: true });
    const r = spawnSync('bash', ['-c', 'trap "" XFSZ; ulimit -f 1; exec "$0" -e "$1"', process.execPath, script], { encoding: 'utf8' });
    expect(r.stdout.trim()).toMatch(/^cannot write the metadata of VM vm under .*: the file size limit was reached \(EFBIG\)$/);
    expect(tree()).toEqual([]);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file in one step and leaves no temp file', () => {
    const f = path.join(root, 'x.json');
    writeFileAtomic(f, 'one');
    writeFileAtomic(f, 'two');
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
    expect(fs.readdirSync(root)).toEqual(['x.json']);
  });
  it('a failed write leaves the old content and no temp file', () => {
    const f = path.join(root, 'dir-in-the-way');
    fs.mkdirSync(f);
    expect(() => writeFileAtomic(f, 'data')).toThrow();
    expect(fs.readdirSync(root)).toEqual(['dir-in-the-way']);
  });
});

describe('lock', () => {
  const file = () => path.join(root, 'lock');
  it('is exclusive; the second taker gets a clear error after the wait', async () => {
    const release = await acquireLock(file(), { command: 'create c1', what: 'metadata of VM demo' });
    const held = JSON.parse(fs.readFileSync(file(), 'utf8'));
    expect(held).toMatchObject({ pid: process.pid, command: 'create c1' });
    const err = await acquireLock(file(), { command: 'delete c1', what: 'metadata of VM demo', waitMs: 300 }).catch((e) => e);
    expect(err).toBeInstanceOf(LockHeldError);
    expect(err.message).toMatch(new RegExp(`^metadata of VM demo is locked by pid ${process.pid} \\(create c1, since `));
    release();
    expect(fs.existsSync(file())).toBe(false);
    const again = await acquireLock(file(), { command: 'delete c1', what: 'x' });
    again();
  });

  it('a waiter gets the lock as soon as it is released', async () => {
    const release = await acquireLock(file(), { command: 'a', what: 'x' });
    const waiting = acquireLock(file(), { command: 'b', what: 'x', waitMs: 5_000 });
    setTimeout(release, 100);
    const second = await waiting;
    expect(JSON.parse(fs.readFileSync(file(), 'utf8')).command).toBe('b');
    second();
  });

  it('a lock of a dead process is stale and taken over', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    fs.writeFileSync(file(), JSON.stringify({ pid: Number(dead), command: 'crashed', since: 'then' }));
    const release = await acquireLock(file(), { command: 'new', what: 'x', waitMs: 200 });
    expect(JSON.parse(fs.readFileSync(file(), 'utf8'))).toMatchObject({ pid: process.pid, command: 'new' });
    release();
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('a lock whose pid now belongs to another process (pid reused) is stale', async () => {
    expect(ownStartTime()).toMatch(/^\d+$/);
    // our own pid, but a start time that is not ours: the holder died and its pid was reused
    fs.writeFileSync(file(), JSON.stringify({ pid: process.pid, command: 'long gone', since: 'then', start: '1' }));
    const release = await acquireLock(file(), { command: 'new', what: 'x', waitMs: 200 });
    expect(JSON.parse(fs.readFileSync(file(), 'utf8'))).toMatchObject({ pid: process.pid, command: 'new', start: ownStartTime() });
    release();
  });

  it('cannot write the lock file (file size limit, full disk): clear error and no empty lock left', () => {
    const script = `
      require(${JSON.stringify(require.resolve('tsx/cjs'))});
      const { acquireLock } = require(${JSON.stringify(path.join(__dirname, 'lock.ts'))});
      acquireLock(${JSON.stringify(file())}, { command: 'c', what: 'metadata of VM demo', waitMs: 200 })
        .then(() => console.log('GOT'), (e) => console.log(e.message));`;
    const r = spawnSync('bash', ['-c', 'trap "" XFSZ; ulimit -f 0; exec "$0" -e "$1"', process.execPath, script], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(`cannot lock the metadata of VM demo: cannot write ${file()}: the file size limit was reached (EFBIG); nothing was changed`);
    expect(fs.existsSync(file())).toBe(false);
  });

  it('a lock path that cannot be read is a clear error, not a crash', async () => {
    fs.mkdirSync(file());
    const err = await acquireLock(file(), { command: 'c', what: 'metadata of VM demo', waitMs: 200 }).catch((e: Error) => e);
    expect((err as Error).message).toBe(`cannot lock the metadata of VM demo: cannot read ${file()}: a directory is in the way (EISDIR); nothing was changed`);
  });

  it('an unreadable lock file (writer died mid-write) is broken after a second', async () => {
    fs.writeFileSync(file(), '');
    const release = await acquireLock(file(), { command: 'new', what: 'x', waitMs: 3_000 });
    expect(JSON.parse(fs.readFileSync(file(), 'utf8')).command).toBe('new');
    release();
  });

  it('release does not remove a lock that is no longer ours', async () => {
    const release = await acquireLock(file(), { command: 'a', what: 'x' });
    fs.writeFileSync(file(), JSON.stringify({ pid: 1, command: 'other', since: 'now' }));
    release();
    expect(fs.existsSync(file())).toBe(true);
  });

  it('is exclusive across processes', async () => {
    const release = await acquireLock(file(), { command: 'parent', what: 'metadata of VM demo' });
    const script = `
      require(${JSON.stringify(require.resolve('tsx/cjs'))});
      const { acquireLock } = require(${JSON.stringify(path.join(__dirname, 'lock.ts'))});
      acquireLock(${JSON.stringify(file())}, { command: 'child', what: 'metadata of VM demo', waitMs: 200 })
        .then(() => { console.log('GOT'); }, (e) => { console.log(e.message); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.stdout).toMatch(new RegExp(`metadata of VM demo is locked by pid ${process.pid} \\(parent`));
    release();
  });
});
