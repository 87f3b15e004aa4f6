// The real `tidemark` CLI (bin/tidemark.js) as a child process against a real demo VM:
// lab start → checkpoints in both layouts → list/tree/json → dumpxml → writes → delete → lab stop,
// plus the error paths a user meets.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Checkpoint, VmInfo } from '../../shared/domain';
import { formatCheckpointXml, parseCheckpointXml } from '../engine/checkpoints/xml';
import { stopLab } from '../engine/lab/labvm';
import { runTidemark, type CliRun as Run } from './run-cli';

let dir: string;

const tidemark = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => runTidemark(dir, args, { env });

async function ok(args: string[]): Promise<string> {
  const r = await tidemark(args);
  if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
  expect(r.err).toBe('');
  return r.out;
}

async function fails(args: string[], code: number, line: string | RegExp): Promise<void> {
  const r = await tidemark(args);
  expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
  expect(r.out).toBe('');
  expect(r.err.endsWith('\n') && r.err.indexOf('\n') === r.err.length - 1, `one line: ${JSON.stringify(r.err)}`).toBe(true);
  if (typeof line === 'string') expect(r.err).toBe(`${line}\n`);
  else expect(r.err).toMatch(line);
}

const listJson = async (): Promise<Checkpoint[]> => JSON.parse(await ok(['checkpoint-list', '--json']));

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmc-'));
});

afterAll(async () => {
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('tidemark CLI against the demo VM', () => {
  it('without a running VM it says what to do', async () => {
    await fails(['checkpoint-list'], 1, 'error: no VM: pass --connect or run tidemark lab start');
  });

  it('lab start', async () => {
    const out = await ok(['lab', 'start']);
    expect(out).toMatch(/^Demo VM started\n\nState: {10}running\n/);
    expect(out).toContain(' vdc      64 MiB    no (qcow2 v2)   ');
    expect(JSON.parse(await ok(['lab', 'status', '--json'])).running).toBe(true);
  });

  it('independent layout: three checkpoints, a linear tree, JSON with every field', async () => {
    for (const n of ['c1', 'c2', 'c3']) expect(await ok(['checkpoint-create-as', n, '--description', `number ${n}`])).toBe(`Domain checkpoint ${n} created\n`);
    expect(await ok(['checkpoint-list', '--tree'])).toBe('c1\n  |\n  +- c2\n      |\n      +- c3\n        \n\n');
    const cps = await listJson();
    expect(cps.map((c) => [c.name, c.parent, c.layout, c.description])).toEqual([
      ['c1', undefined, 'independent', 'number c1'], ['c2', 'c1', 'independent', 'number c2'], ['c3', 'c2', 'independent', 'number c3'],
    ]);
    expect(cps[0]!.disks).toEqual([
      { name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdc', checkpoint: 'no' },
    ]);
    const table = await ok(['checkpoint-list', '--parent']);
    const lines = table.split('\n');
    expect(lines[0]).toBe(' Name   Creation Time               Parent');
    expect(lines[1]).toBe('-'.repeat(7 + 28 + 9));
    expect(lines[3]).toMatch(/^ c2 {5}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} {3}c1$/);
    expect(table.endsWith('\n\n')).toBe(true);
    expect(await ok(['checkpoint-list', '--name', '--leaves'])).toBe('c3\n\n');
    expect(await ok(['checkpoint-parent', 'c2'])).toBe('c1\n');
    expect(await ok(['checkpoint-info', 'c2'])).toBe('Name:           c2\nDomain:         tidemark-demo\nParent:         c1\nChildren:       1\nDescendants:    1\n\n');
    const info = JSON.parse(await ok(['checkpoint-info', 'c1', '--json']));
    expect(info).toMatchObject({ name: 'c1', domain: 'tidemark-demo', current: false, children: ['c2'], descendants: ['c2', 'c3'] });
  });

  it('dumpxml prints libvirt XML (plus virsh’s blank line) and --size counts what was written', async () => {
    const xml = await ok(['checkpoint-dumpxml', 'c2', '--no-domain']);
    const cp = (await listJson()).find((c) => c.name === 'c2')!;
    expect(xml).toBe(`${formatCheckpointXml(cp)}\n`);
    expect(await ok(['lab', 'write', '--disk', 'vda', '--pattern', 'sequential', '--mib', '2'])).toBe('Wrote 2 MiB to vda (sequential)\n');
    const sized = parseCheckpointXml(await ok(['checkpoint-dumpxml', 'c1', '--size']));
    expect(sized.disks!.find((d) => d.name === 'vda')!.size).toBe(2 * 1024 * 1024);
    expect(sized.disks!.find((d) => d.name === 'vdb')!.size).toBe(0);
    const job = JSON.parse(await ok(['lab', 'write', '--disk', 'vdb', '--mib', '1', '--json']));
    expect(job).toMatchObject({ kind: 'write-sim', state: 'succeeded', progress: [{ disk: 'vdb', done: 1048576, total: 1048576 }] });
  });

  it('--connect reaches the same VM (and metadata) through an explicit socket', async () => {
    const sock = `unix:${path.join(dir, 'lab', 'qmp2.sock')}`;
    const vm = JSON.parse(await ok(['--connect', sock, 'domain-info', '--json'])) as VmInfo;
    expect(vm.name).toBe('tidemark-demo');
    expect(vm.disks.find((d) => d.name === 'vda')!.bitmaps.map((b) => b.name).sort()).toEqual(['c1', 'c2', 'c3']);
    expect(JSON.parse(await ok(['-c', sock, 'checkpoint-list', '--json'])).map((c: Checkpoint) => c.name)).toEqual(['c1', 'c2', 'c3']);
  });

  it('redefine round trip: dumpxml → delete --metadata → checkpoint-create --redefine --redefine-validate', async () => {
    const file = path.join(dir, 'c3.xml');
    fs.writeFileSync(file, await ok(['checkpoint-dumpxml', 'c3']));
    expect(await ok(['checkpoint-delete', 'c3', '--metadata'])).toBe('Domain checkpoint c3 deleted\n\n');
    expect((await listJson()).map((c) => c.name)).toEqual(['c1', 'c2']);
    expect(await ok(['checkpoint-create', file, '--redefine', '--redefine-validate'])).toBe(`Domain checkpoint c3 created from '${file}'\n`);
    expect((await listJson()).find((c) => c.name === 'c3')!.parent).toBe('c2');
  });

  it('error paths: unknown checkpoint, bad diskspec, hostile names, hostile and broken XML', async () => {
    await fails(['checkpoint-info', 'nope'], 1, /^error: checkpoint nope not found/);
    await fails(['checkpoint-parent', 'c1'], 1, "error: checkpoint 'c1' has no parent");
    await fails(['checkpoint-create-as', 'x', '--diskspec', 'vda,checkpoint=sometimes'], 2, /^error: diskspec vda,checkpoint=sometimes: checkpoint=sometimes is not valid/);
    await fails(['checkpoint-create-as', 'x', '--diskspec', 'vdz'], 1, /^error: .*vdz/);
    await fails(['checkpoint-create-as', 'x', '--diskspec', 'vda,bitmap=y'], 1, "error: bitmap for disk 'vda' must match checkpoint name 'x'");
    await fails(['checkpoint-create-as', '../escape'], 1, /^error: checkpoint name "\.\.\/escape" contains "\/"/);
    await fails(['checkpoint-create-as', '--', '.hidden'], 1, /starts with "\."/);
    await fails(['checkpoint-create-as', 'a\nb'], 1, /control character/);
    const lol = path.join(dir, 'lol.xml');
    fs.writeFileSync(lol, '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><domaincheckpoint><name>lol</name><description>&b;</description></domaincheckpoint>');
    await fails(['checkpoint-create', lol], 1, 'error: DTDs are not allowed in checkpoint XML');
    const xxe = path.join(dir, 'xxe.xml');
    fs.writeFileSync(xxe, '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><domaincheckpoint><name>x</name><description>&x;</description></domaincheckpoint>');
    await fails(['checkpoint-create', xxe], 1, 'error: DTDs are not allowed in checkpoint XML');
    const broken = path.join(dir, 'broken.xml');
    fs.writeFileSync(broken, '<domaincheckpoint><name>b</name>');
    await fails(['checkpoint-create', broken], 1, /^error: checkpoint XML is malformed: /);
    const wrongRoot = path.join(dir, 'snap.xml');
    fs.writeFileSync(wrongRoot, '<domainsnapshot><name>s</name></domainsnapshot>');
    await fails(['checkpoint-create', wrongRoot], 1, 'error: checkpoint XML root element is <domainsnapshot>; expected <domaincheckpoint>');
    // none of it changed anything (c3 was redefined: its time has only second precision, so sort)
    expect((await listJson()).map((c) => c.name).sort()).toEqual(['c1', 'c2', 'c3']);
    const vm = JSON.parse(await ok(['domain-info', '--json'])) as VmInfo;
    expect(vm.disks.find((d) => d.name === 'vda')!.bitmaps.map((b) => b.name).sort()).toEqual(['c1', 'c2', 'c3']);
    expect(fs.readdirSync(dir).sort()).toEqual(['broken.xml', 'c3.xml', 'lab', 'lol.xml', 'snap.xml', 'vms', 'xxe.xml']);
  });

  it('delete --children removes the subtree and its bitmaps', async () => {
    expect(await ok(['checkpoint-delete', 'c2', '--children'])).toBe('Domain checkpoint c2 deleted\n\n');
    expect((await listJson()).map((c) => c.name)).toEqual(['c1']);
    expect(await ok(['checkpoint-delete', 'c1'])).toBe('Domain checkpoint c1 deleted\n\n');
    const vm = JSON.parse(await ok(['domain-info', '--json'])) as VmInfo;
    expect(vm.disks.flatMap((d) => d.bitmaps.map((b) => b.name))).toEqual([]);
  });

  it('chained layout: only the newest bitmap records; deleting the middle one merges into its predecessor', async () => {
    expect(await ok(['checkpoint-create-as', 'd1', '--layout', 'chained', '--diskspec', 'vdb,checkpoint=no'])).toBe('Domain checkpoint d1 created\n');
    await ok(['lab', 'write', '--disk', 'vda', '--pattern', 'sequential', '--mib', '1']);
    await ok(['checkpoint-create-as', 'd2']);
    await ok(['lab', 'write', '--disk', 'vda', '--pattern', 'sequential', '--mib', '3']);
    await ok(['checkpoint-create-as', 'd3']);
    const cps = await listJson();
    expect(cps.map((c) => [c.name, c.layout])).toEqual([['d1', 'chained'], ['d2', 'chained'], ['d3', 'chained']]);
    const bitmaps = async () => {
      const vm = JSON.parse(await ok(['domain-info', '--json'])) as VmInfo;
      return Object.fromEntries(vm.disks.find((d) => d.name === 'vda')!.bitmaps.map((b) => [b.name, [b.recording, b.count]]));
    };
    expect(await bitmaps()).toEqual({ d1: [false, 1048576], d2: [false, 3 * 1048576], d3: [true, 0] });
    await fails(['checkpoint-create-as', 'd4', '--layout', 'independent'], 1, /layout/);
    expect(await ok(['checkpoint-delete', 'd2'])).toBe('Domain checkpoint d2 deleted\n\n');
    const after = await bitmaps();
    expect(Object.keys(after).sort()).toEqual(['d1', 'd3']);
    expect(after.d1![1]).toBeGreaterThanOrEqual(3 * 1048576); // d2's interval merged into d1
    expect((await listJson()).find((c) => c.name === 'd3')!.parent).toBe('d1');
  });

  it('the tsx fallback runs the same CLI', async () => {
    const r = await tidemark(['checkpoint-list', '--name'], { TIDEMARK_CLI_MODE: 'tsx' });
    expect(r).toEqual({ code: 0, out: 'd1\nd3\n\n', err: '' });
  });

  it('checkpoint-list sorts by name ignoring case, as virsh; --topological follows the tree', async () => {
    await ok(['checkpoint-create-as', 'B-late']);
    expect(await ok(['checkpoint-list', '--name'])).toBe('B-late\nd1\nd3\n\n');
    expect(await ok(['checkpoint-list', '--name', '--topological'])).toBe('d1\nd3\nB-late\n\n');
    expect((await listJson()).map((c) => c.name)).toEqual(['B-late', 'd1', 'd3']);
    expect(await ok(['checkpoint-list', '--tree', '--from', 'd1', '--descendants'])).toBe('d1\n  |\n  +- d3\n      |\n      +- B-late\n        \n\n');
    expect(await ok(['checkpoint-list', '--name', '--from', 'd1'])).toBe('d3\n\n');
    expect(await ok(['checkpoint-list', '--name', '--roots'])).toBe('d1\n\n');
    expect(await ok(['checkpoint-list', '--name', '--leaves'])).toBe('B-late\n\n');
    expect(await ok(['checkpoint-list', '--name', '--no-leaves'])).toBe('d1\nd3\n\n');
    expect(await ok(['checkpoint-list', '--name', '--leaves', '--no-leaves'])).toBe('B-late\nd1\nd3\n\n');
    const info = JSON.parse(await ok(['domain-info', '--json']));
    expect([info.layout, info.currentCheckpoint, info.health.map((i: { state: string }) => i.state)]).toEqual(['chained', 'B-late', ['disk-incapable']]);
    expect(await ok(['domain-info'])).toMatch(/\nLayout: {9}chained\nCheckpoint: {5}B-late\nHealth: {9}1 note\n/);
    expect(await ok(['checkpoint-delete', 'B-late'])).toBe('Domain checkpoint B-late deleted\n\n');
  });

  it('lab stop, then the VM is gone', async () => {
    expect(await ok(['lab', 'stop'])).toBe('Demo VM stopped\n\n');
    expect(JSON.parse(await ok(['lab', 'status', '--json'])).running).toBe(false);
    // reading shows the recorded metadata (cli-offline.itest.ts has the details); changing needs the VM
    const listed = await tidemark(['checkpoint-list', '--name']);
    expect([listed.code, listed.err]).toEqual([0, 'VM tidemark-demo is not running; showing recorded metadata\n']);
    await fails(['checkpoint-create-as', 'late'], 1, 'error: no VM: pass --connect or run tidemark lab start');
    expect(await ok(['lab', 'stop'])).toBe('Demo VM is not running\n\n');
  });
});
