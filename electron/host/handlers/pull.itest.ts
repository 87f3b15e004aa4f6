// The issue-5 channels through dispatch() on a real service and demo VM, as the renderer and the
// CLI call them: dirtymap:get, pull:begin, pull:export / pull:end / pull:wait (pull:end from a
// second, CLI-style service, as `tidemark backup-end` does).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, type Args, type InvokeChannel, type Result } from '../../../shared/contract';
import { createService, DEMO_VM_ID, type Service } from '../service';
import { stopLab } from '../../engine/lab/labvm';

let dir: string;
let app: Service;
let cli: Service | undefined;
const call = <C extends InvokeChannel>(s: Service, c: C, ...args: Args<C>) => dispatch(s.handlers, c, args) as Promise<Result<C>>;
const KiB = 1024;
const MiB = 1024 * KiB;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmp5-'));
  app = createService({ stateDir: dir });
  await call(app, 'lab:start');
  for (let i = 0; i < 100 && (await call(app, 'vm:list')).find((v) => v.id === DEMO_VM_ID)?.connection !== 'connected'; i++) await new Promise((r) => setTimeout(r, 100));
});
afterAll(async () => {
  await cli?.close();
  await app?.close();
  await stopLab(path.join(dir, 'lab'));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes 1 MiB to vda with the lab's write simulator and waits until its job has ended. */
async function writeMiB(): Promise<void> {
  const job = await call(app, 'lab:write', DEMO_VM_ID, { disk: 'vda', pattern: 'sequential', mib: 1 });
  for (let i = 0; i < 200; i++) {
    const j = (await call(app, 'job:list', DEMO_VM_ID)).find((x) => x.id === job.id);
    if (j && j.state !== 'running') {
      expect(j.state).toBe('succeeded');
      return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the write job did not end');
}

describe('issue-5 channels', () => {
  it('dirtymap:get validates its arguments and maps the changes since a checkpoint', async () => {
    await call(app, 'checkpoint:create', DEMO_VM_ID, { name: 'h1' });
    await expect(dispatch(app.handlers, 'dirtymap:get', [DEMO_VM_ID, 'vda', 'h1', 0])).rejects.toThrow(/dirtymap:get\[3\]: must be at least 1/);
    await expect(dispatch(app.handlers, 'dirtymap:get', [DEMO_VM_ID, 'vda'])).rejects.toThrow(/dirtymap:get\[2\]: expected a string/);
    const before = await call(app, 'dirtymap:get', DEMO_VM_ID, 'vda', 'h1', 16);
    expect(before).toMatchObject({ disk: 'vda', since: 'h1', dirtyBytes: 0, virtualSize: 1024 * MiB });
    expect(before.buckets).toHaveLength(16);
    await writeMiB();
    const after = await call(app, 'dirtymap:get', DEMO_VM_ID, 'vda', 'h1', 16);
    const changes = await call(app, 'checkpoint:changes', DEMO_VM_ID, 'h1');
    expect(after.dirtyBytes).toBe(changes.disks.find((d) => d.disk === 'vda')!.bytes);
    expect(after.dirtyBytes).toBe(MiB);
  });

  it('pull:begin backs up into the repository as a host job', async () => {
    const r = await call(app, 'pull:begin', DEMO_VM_ID, { full: true, disks: ['vda'], checkpoint: 'h2' });
    expect(r.job).toMatchObject({ kind: 'pull', state: 'succeeded' });
    expect(r.backup.disks.map((d) => [d.name, d.kind, d.bytesCopied])).toEqual([['vda', 'full', MiB]]);
    expect((await call(app, 'checkpoint:current', DEMO_VM_ID))?.name).toBe('h2');
    expect((await call(app, 'backup:list')).backups.map((b) => b.id)).toContain(r.backup.id);
  });

  it('pull:export holds the exports open until pull:end from another process-like service', async () => {
    await writeMiB();
    const r = await call(app, 'pull:export', DEMO_VM_ID, { disks: ['vda'], checkpoint: 'h3' });
    expect(r.exports).toHaveLength(1);
    const e = r.exports[0]!;
    expect(e).toMatchObject({ disk: 'vda', kind: 'incremental', since: 'h2', size: 1024 * MiB });
    const map = JSON.parse(execFileSync('nbdinfo', [`--map=${e.dirtyContext}`, '--json', e.uri], { encoding: 'utf8' })) as { length: number; type: number }[];
    expect(map.filter((m) => m.type & 1).reduce((s, m) => s + m.length, 0)).toBe(MiB);
    await expect(call(app, 'pull:export', DEMO_VM_ID, {})).rejects.toThrow(/already open in this process/);
    const waiting = call(app, 'pull:wait', DEMO_VM_ID);
    cli = createService({ stateDir: dir, connectMode: 'on-demand', demoSocket: 'secondary' });
    await call(cli, 'pull:end', DEMO_VM_ID, 'success');
    const job = await waiting;
    expect(job).toMatchObject({ kind: 'pull', state: 'succeeded' });
    expect((await call(app, 'checkpoint:current', DEMO_VM_ID))?.name).toBe('h3');
    await expect(call(app, 'pull:wait', DEMO_VM_ID)).rejects.toThrow(/no export-only pull of VM demo is open/);
    await expect(call(cli, 'pull:end', DEMO_VM_ID, 'success')).rejects.toThrow(/no pull backup of VM .* is running/);
  });
});
