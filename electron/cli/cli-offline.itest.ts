// The read-only checkpoint commands while QEMU is not running (virsh lists the checkpoints of an
// inactive domain too): the real CLI (bin/tidemark.js) against a demo VM that is started, given
// checkpoints, and stopped; by its demo identity (lab.json) and as an endpoint whose VM id was
// remembered at its last connection (endpoints.json). Mutating commands keep failing clearly.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labStatus, stopLab } from '../engine/lab/labvm';
import { runTidemark, type CliRun as Run } from './run-cli';

let dir: string;

const tidemark = (args: string[]): Promise<Run> => runTidemark(dir, args);

async function ok(args: string[]): Promise<Run> {
  const r = await tidemark(args);
  if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return r;
}

async function fails(args: string[], line: string | RegExp): Promise<void> {
  const r = await tidemark(args);
  expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(1);
  expect(r.out).toBe('');
  expect(r.err.split('\n'), `one line: ${JSON.stringify(r.err)}`).toHaveLength(2);
  if (typeof line === 'string') expect(r.err).toBe(`${line}\n`);
  else expect(r.err.trimEnd()).toMatch(line);
}

/** Every metadata file and its content (must not change while the VM is stopped). */
function metadata(): Record<string, string> {
  const root = path.join(dir, 'vms');
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[path.relative(root, path.join(e.parentPath, e.name))] = fs.readFileSync(path.join(e.parentPath, e.name), 'utf8');
  }
  return out;
}

const READS: string[][] = [
  ['checkpoint-list'],
  ['checkpoint-list', '--tree'],
  ['checkpoint-list', '--parent', '--topological'],
  ['checkpoint-list', '--json'],
  ['checkpoint-list', '--name', '--from', 'c1', '--descendants'],
  ['checkpoint-info', 'c2'],
  ['checkpoint-parent', 'c2'],
  ['checkpoint-dumpxml', 'c2'],
  ['checkpoint-dumpxml', 'c3', '--no-domain'],
];
const live = new Map<string, string>();
let sock = '';
let before: Record<string, string> = {};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmo-'));
  await ok(['lab', 'start']);
  sock = labStatus(path.join(dir, 'lab')).qmp.slice('unix:'.length);
  for (const [name, extra] of [['c1', ['--layout', 'chained']], ['c2', []], ['c3', ['--description', 'third']]] as const) {
    await ok(['checkpoint-create-as', name, ...extra]);
  }
  // an endpoint the app added (endpoints.json) and that was connected once, through its primary socket
  fs.writeFileSync(path.join(dir, 'endpoints.json'), JSON.stringify([{ endpoint: `unix:${sock}`, label: 'Lab by socket' }]));
  await ok(['--connect', sock, 'checkpoint-list', '--name']);
  for (const argv of READS) {
    const r = await ok(argv);
    expect(r.err, argv.join(' ')).toBe('');
    live.set(argv.join(' '), r.out);
  }
  await ok(['lab', 'stop']);
  before = metadata();
});

afterAll(async () => {
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('the demo VM stopped: read-only commands show the recorded metadata', () => {
  it.each(READS)('%s … prints what it printed while the VM ran, with a note on stderr', async (...argv) => {
    const r = await ok(argv);
    expect(r.out).toBe(live.get(argv.join(' ')));
    expect(r.err).toBe('VM tidemark-demo is not running; showing recorded metadata\n');
  });

  it('the outputs are the real ones (not empty)', () => {
    expect(live.get('checkpoint-list --name --from c1 --descendants')).toBe('c2\nc3\n\n');
    expect(live.get('checkpoint-parent c2')).toBe('c1\n');
    expect(live.get('checkpoint-info c2')).toMatch(/^Name: +c2\nDomain: +tidemark-demo\nParent: +c1\nChildren: +1\nDescendants: +1\n/);
    expect(live.get('checkpoint-dumpxml c3 --no-domain')).toContain('<description>third</description>');
  });

  it('checkpoint-info --json has no health (nothing to check without QEMU)', async () => {
    const r = await ok(['checkpoint-info', 'c3', '--json']);
    expect(r.err).toBe('VM tidemark-demo is not running; showing recorded metadata\n');
    expect(JSON.parse(r.out)).toMatchObject({ name: 'c3', parent: 'c2', domain: 'tidemark-demo', current: true, children: [], descendants: [], health: null });
  });

  it('errors stay errors: an unknown checkpoint, a root\'s parent, --size', async () => {
    await fails(['checkpoint-info', 'nope'], 'error: checkpoint nope not found');
    await fails(['checkpoint-parent', 'c1'], "error: checkpoint 'c1' has no parent");
    await fails(['checkpoint-dumpxml', 'c2', '--size'], 'error: VM tidemark-demo is not running: sizes are measured from its live bitmaps (dump without --size, or start the VM)');
  });

  it('mutating commands and domain-info fail with a clear error and change nothing', async () => {
    for (const argv of [['checkpoint-create-as', 'c4'], ['checkpoint-delete', 'c1'], ['checkpoint-create', '--redefine'], ['domain-info']]) {
      await fails(argv, 'error: no VM: pass --connect or run tidemark lab start');
    }
    expect(metadata()).toEqual(before);
  });
});

describe('an endpoint whose VM is stopped', () => {
  it('its VM id was remembered at the last connection', () => {
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'));
    expect(saved).toEqual([{ endpoint: `unix:${sock}`, label: 'Lab by socket', vmId: labStatus(path.join(dir, 'lab')).uuid }]);
  });

  it('reads work by that id; changes fail naming the socket', async () => {
    const r = await ok(['--connect', sock, 'checkpoint-list', '--name']);
    expect(r.out).toBe('c1\nc2\nc3\n\n');
    expect(r.err).toBe('VM Lab by socket is not running; showing recorded metadata\n');
    await fails(['--connect', sock, 'checkpoint-delete', 'c1'], /^error: cannot connect to QMP at unix:.*qmp\.sock: .*is QEMU running\?\)$/);
    expect(metadata()).toEqual(before);
  });

  it('an endpoint never connected through the service has no recorded identity: a clear error', async () => {
    await fails(['--connect', path.join(dir, 'lab', 'qmp2.sock'), 'checkpoint-list'], /^error: cannot connect to QMP at unix:.*qmp2\.sock: .*is QEMU running\?\)$/);
  });
});
