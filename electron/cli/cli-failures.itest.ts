// What an admin meets when things go wrong, through the real CLI (bin/tidemark.js as a child
// process) and a real demo VM: QEMU killed (kill -9) and started again, a stale lock of a killed
// CLI, a state directory that cannot take the metadata, damaged metadata, hostile names through
// every entry point, a foreign bitmap with the checkpoint's name, a disk that cannot hold bitmaps,
// QEMU gone. Each failure is one "error: …" line, a non-zero exit, and nothing changed.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Checkpoint, HealthIssue, VmInfo } from '../../shared/domain';
import { labStatus, stopLab } from '../engine/lab/labvm';
import { QmpClient } from '../qmp/client';
import { runTidemark, type CliRun as Run } from './run-cli';

let dir: string;

/** Runs the CLI; `fileLimitKiB` runs it under `ulimit -f` (files it writes cannot grow past that). */
const tidemark = (args: string[], opts: { fileLimitKiB?: number } = {}): Promise<Run> => runTidemark(dir, args, opts);

async function ok(args: string[]): Promise<Run> {
  const r = await tidemark(args);
  if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return r;
}

async function fails(args: string[], line: string | RegExp, opts: { fileLimitKiB?: number } = {}): Promise<void> {
  const r = await tidemark(args, opts);
  expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(1);
  expect(r.out).toBe('');
  expect(r.err.split('\n'), `one line: ${JSON.stringify(r.err)}`).toHaveLength(2);
  if (typeof line === 'string') expect(r.err).toBe(`${line}\n`);
  else expect(r.err.trimEnd()).toMatch(line);
}

const vmJson = async () => JSON.parse((await ok(['domain-info', '--json'])).out) as VmInfo & { health: HealthIssue[]; layout: string | null; currentCheckpoint: string | null };
const names = async () => (JSON.parse((await ok(['checkpoint-list', '--json'])).out) as Checkpoint[]).map((c) => c.name);
const bitmapNames = async (disk: string) => (await vmJson()).disks.find((d) => d.name === disk)!.bitmaps.map((b) => b.name).sort();
const metaDir = () => {
  const vms = path.join(dir, 'vms');
  return path.join(vms, fs.readdirSync(vms)[0]!);
};
/** vm.json and every checkpoint file with its content: "nothing changed" is this being equal. */
function metadataSnapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(metaDir(), { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[path.relative(metaDir(), path.join(e.parentPath, e.name))] = fs.readFileSync(path.join(e.parentPath, e.name), 'utf8');
  }
  return out;
}

/**
 * kill -9 of the demo VM's QEMU, then waits until it is gone (the CLI's own test, labStatus): a fixed
 * 300 ms raced its exit on a loaded machine, and the next command still found it running.
 */
async function killQemu(): Promise<void> {
  const lab = path.join(dir, 'lab');
  process.kill(labStatus(lab).pid!, 'SIGKILL');
  await vi.waitFor(() => expect(labStatus(lab).running, 'QEMU still runs after kill -9').toBe(false), { timeout: 30_000, interval: 20 });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmf-'));
});

afterAll(async () => {
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('tidemark CLI when things go wrong', () => {
  it('kill -9 of QEMU, then lab start: the damage is shown where the admin looks', async () => {
    await ok(['lab', 'start']);
    await ok(['checkpoint-create-as', 'c1']);
    await ok(['lab', 'write', '--disk', 'vda', '--mib', '1']);
    await ok(['lab', 'stop']); // clean: c1 is stored in the images
    expect((await ok(['lab', 'start'])).err).toBe('');
    await ok(['checkpoint-create-as', 'c2']); // lives only in this run's memory
    await killQemu();
    const start = await ok(['lab', 'start']);
    expect(start.out).toMatch(/^Demo VM started\n/);
    expect(start.err).toContain('warning: bitmap c1 on vda is inconsistent (QEMU was not shut down cleanly)\n');
    expect(start.err).toContain('warning: bitmap c2 of checkpoint c2 is missing on vda\n');
    expect(start.err).toContain("warning: see 'tidemark domain-info' for what this means for backups\n");

    const info = await ok(['domain-info']);
    expect(info.out).toMatch(/\nHealth: {9}4 errors, 1 note\n/);
    expect(info.out).toContain('\nHealth:\n  error  bitmap c1 on vda is inconsistent (QEMU was not shut down cleanly)\n         checkpoint c1 cannot be used as a base for vda; the next backup of vda based on it will be full');
    expect(info.out).toContain('  note   vdc cannot hold checkpoint bitmaps: qcow2 v2 (compat 0.10) cannot store persistent bitmaps\n');
    const json = await vmJson();
    expect(json.health.filter((i) => i.severity === 'error').map((i) => [i.state, i.checkpoint, i.disk]).sort()).toEqual([
      ['bitmap-inconsistent', 'c1', 'vda'], ['bitmap-inconsistent', 'c1', 'vdb'], ['bitmap-missing', 'c2', 'vda'], ['bitmap-missing', 'c2', 'vdb'],
    ]);
    expect([json.layout, json.currentCheckpoint]).toEqual(['independent', 'c2']);

    const list = await ok(['checkpoint-list']);
    expect(list.out).toMatch(/^ Name +Creation Time\n-+\n c1 +\S+ \S+ \S+\n c2 +\S+ \S+ \S+\n\n$/); // the table itself stays virsh's
    expect(list.err.split('\n').filter((l) => l.startsWith('warning: bitmap'))).toHaveLength(4);
    const one = await ok(['checkpoint-info', 'c1']);
    expect(one.err).toContain('warning: bitmap c1 on vdb is inconsistent (QEMU was not shut down cleanly): checkpoint c1 cannot be used as a base for vdb');
    expect(one.err).not.toContain('c2');
    const sized = (await ok(['checkpoint-dumpxml', 'c1', '--size', '--no-domain'])).out;
    expect(sized).toContain("<disk name='vda' checkpoint='bitmap' bitmap='c1'/>"); // no size= for an inconsistent bitmap, as libvirt

    // cleaning up works: the missing one and the inconsistent one can both be deleted
    await ok(['checkpoint-delete', 'c2']);
    await ok(['checkpoint-delete', 'c1']);
    expect((await ok(['domain-info'])).out).toMatch(/\nHealth: {9}1 note\n/);
    expect((await ok(['checkpoint-list'])).err).toBe('');
  });

  it('a stale lock left by a killed CLI process is taken over', async () => {
    await ok(['checkpoint-create-as', 'base']);
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
    fs.writeFileSync(path.join(metaDir(), 'lock'), JSON.stringify({ pid: dead, command: 'create checkpoint x', since: '2026-01-01T00:00:00Z' }));
    expect((await ok(['checkpoint-create-as', 'after-stale'])).out).toBe('Domain checkpoint after-stale created\n');
    expect(fs.existsSync(path.join(metaDir(), 'lock'))).toBe(false);
  });

  it('a state directory that cannot take the metadata: create and delete fail before QEMU changes', async () => {
    // ulimit -f 1: files the CLI writes cannot pass 1 KiB, as on a full disk; a checkpoint with a
    // long description needs more. The lock file (small) still works, so the store's own write fails.
    const long = 'x'.repeat(2000);
    const before = metadataSnapshot();
    const vdaBefore = await bitmapNames('vda');
    await fails(['checkpoint-create-as', 'big', '--description', long], /^error: cannot write the metadata of VM tidemark-demo \(.*\) under .*: the file size limit was reached \(EFBIG\); nothing was changed$/, { fileLimitKiB: 1 });
    expect(metadataSnapshot()).toEqual(before);
    expect(await bitmapNames('vda')).toEqual(vdaBefore);

    // delete: re-parenting the child means rewriting its (long) file
    await ok(['checkpoint-create-as', 'child', '--description', long]);
    const before2 = metadataSnapshot();
    const vdbBefore = await bitmapNames('vdb');
    await fails(['checkpoint-delete', 'after-stale'], /^error: cannot write the metadata of VM .*\(EFBIG\); nothing was changed$/, { fileLimitKiB: 1 });
    expect(metadataSnapshot()).toEqual(before2);
    expect(await bitmapNames('vdb')).toEqual(vdbBefore);
    expect(vdbBefore).toContain('after-stale');
    // and once the limit is gone the same delete works
    await ok(['checkpoint-delete', 'after-stale']);
    expect((JSON.parse((await ok(['checkpoint-info', 'child', '--json'])).out) as Checkpoint).parent).toBe('base');
  });

  it('damaged metadata: every command says which file, and nothing else happens', async () => {
    const file = path.join(metaDir(), 'checkpoints', 'base.json');
    const good = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, good.slice(0, 40));
    for (const args of [['checkpoint-list'], ['domain-info'], ['checkpoint-create-as', 'd1'], ['checkpoint-delete', 'child']]) {
      await fails(args, new RegExp(`^error: checkpoint metadata ${file} is damaged \\(not valid JSON: .*\\); fix or remove that file$`));
    }
    fs.writeFileSync(file, good);
    expect(await names()).toEqual(['base', 'child']);
    expect(await bitmapNames('vda')).not.toContain('d1');
  });

  it('hostile names through every entry point are refused, and nothing is written anywhere', async () => {
    const before = metadataSnapshot();
    const xml = (name: string, body: string) => {
      const f = path.join(dir, `${name}.xml`);
      fs.writeFileSync(f, body);
      return f;
    };
    await fails(['checkpoint-create-as', '--', '../x'], 'error: checkpoint name "../x" contains "/"');
    await fails(['checkpoint-create', xml('name', '<domaincheckpoint><name>../../etc/x</name></domaincheckpoint>')], 'error: checkpoint name "../../etc/x" contains "/"');
    await fails(['checkpoint-create', xml('parent', '<domaincheckpoint><name>p</name><parent><name>a/b</name></parent></domaincheckpoint>'), '--redefine'], 'error: <parent>: checkpoint name "a/b" contains "/"');
    await fails(['checkpoint-create', xml('ctrl', '<domaincheckpoint><name>a&#9;b</name></domaincheckpoint>')], 'error: checkpoint name "a\\tb" contains a control character (U+0009)');
    await fails(['checkpoint-create', xml('disk', "<domaincheckpoint><name>ok1</name><disks><disk name='../vda'/></disks></domaincheckpoint>"), '--redefine'], /^error: unknown disk "\.\.\/vda" in checkpoint XML \(VM tidemark-demo/);
    await fails(['checkpoint-create', xml('disk2', "<domaincheckpoint><name>ok2</name><disks><disk name='../vda'/></disks></domaincheckpoint>")], /^error: unknown disk "\.\.\/vda" in checkpoint XML/);
    await fails(['checkpoint-create-as', 'ok3', '--diskspec', '../vda'], /^error: unknown disk "\.\.\/vda" \(VM tidemark-demo/);
    await fails(['checkpoint-create-as', 'ok4', '--diskspec', 'vda\nb'], /^error: unknown disk "vda\\nb" \(VM/);
    await fails(['checkpoint-create-as', 'ok5', '--diskspec', 'vda,bitmap=../x'], "error: bitmap for disk 'vda' must match checkpoint name 'ok5'");
    expect(metadataSnapshot()).toEqual(before);
    expect(fs.readdirSync(dir).filter((f) => !f.endsWith('.xml')).sort()).toEqual(['lab', 'vms']);
    expect(await bitmapNames('vda')).toEqual(['base', 'child']);
  });

  it('a foreign bitmap with the checkpoint\'s name is refused (and never touched); redefine adopts it', async () => {
    const client = await QmpClient.connect(`unix:${path.join(dir, 'lab', 'qmp.sock')}`);
    try {
      await client.execute('block-dirty-bitmap-add', { node: 'vdb-fmt', name: 'fb', persistent: true });
    } finally {
      await client.close();
    }
    const before = metadataSnapshot();
    await fails(['checkpoint-create-as', 'fb'], /^error: bitmap fb already exists on vdb \(foreign\? .*checkpoint-create --redefine takes it back\)$/);
    expect(metadataSnapshot()).toEqual(before);
    expect(await bitmapNames('vda')).not.toContain('fb'); // the transaction never ran
    expect((await vmJson()).health.find((i) => i.bitmap === 'fb')).toMatchObject({ state: 'foreign-bitmap', severity: 'info', disk: 'vdb' });
    const adopt = path.join(dir, 'fb.xml');
    fs.writeFileSync(adopt, "<domaincheckpoint><name>fb</name><parent><name>child</name></parent><disks><disk name='vdb'/></disks></domaincheckpoint>");
    await ok(['checkpoint-create', adopt, '--redefine', '--redefine-validate']);
    expect((await vmJson()).health.filter((i) => i.bitmap === 'fb')).toEqual([]);
  });

  it('a disk that cannot hold bitmaps, asked for by name, is an error naming why', async () => {
    const before = metadataSnapshot();
    await fails(['checkpoint-create-as', 'v1', '--diskspec', 'vdc'], 'error: disk vdc cannot hold a checkpoint bitmap: qcow2 v2 (compat 0.10) cannot store persistent bitmaps');
    await fails(['checkpoint-create-as', 'v1', '--diskspec', 'vdc,checkpoint=bitmap', '--diskspec', 'vda'], /^error: disk vdc cannot hold a checkpoint bitmap/);
    expect(metadataSnapshot()).toEqual(before);
    expect(await bitmapNames('vda')).not.toContain('v1');
  });

  it('QEMU gone: the demo VM is not found, an explicit socket is refused; metadata unchanged', async () => {
    const before = metadataSnapshot();
    await killQemu();
    await fails(['checkpoint-create-as', 'z'], 'error: no VM: pass --connect or run tidemark lab start');
    await fails(['--connect', path.join(dir, 'lab', 'qmp2.sock'), 'checkpoint-delete', 'base'], /^error: cannot connect to QMP at unix:.*qmp2\.sock: .*is QEMU running\?\)$/);
    expect(metadataSnapshot()).toEqual(before);
  });
});
