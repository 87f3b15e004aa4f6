// The QMP client against real QEMU: negotiation, errors with QEMU's classes, events from a real
// block job, many commands in flight, and QEMU vanishing under a connection.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killLab, labStatus, startLab, stopLab } from '../engine/lab/labvm';
import { QmpClient } from './client';
import { QmpConnectionError, QmpError } from './errors';

const MiB = 1024 * 1024;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-qmp-'));
  await startLab({ dir, disks: [{ name: 'vda', sizeBytes: 64 * MiB }] });
});
afterAll(async () => {
  await stopLab(dir);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('QmpClient against QEMU 7.2', () => {
  it('negotiates and reports the QEMU version', async () => {
    const c = await QmpClient.connect(labStatus(dir).qmp);
    expect(c.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await c.execute('query-status')).toMatchObject({ status: 'running' });
    await c.close();
  });

  it('carries QEMU error classes and descriptions', async () => {
    const c = await QmpClient.connect(labStatus(dir).qmp);
    const err = await c.execute('block-dirty-bitmap-add', { node: 'nope', name: 'x' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).errorClass).toBe('GenericError');
    expect((err as QmpError).desc).toMatch(/Cannot find device='nope' nor node-name='nope'/);
    const unknown = await c.execute('no-such-command').then(() => undefined, (e: unknown) => e);
    expect((unknown as QmpError).errorClass).toBe('CommandNotFound');
    await c.close();
  });

  it('matches 50 concurrent commands to their replies', async () => {
    const c = await QmpClient.connect(labStatus(dir).qmp);
    const names = Array.from({ length: 50 }, (_, i) => `b${i}`);
    await Promise.all(names.map((name) => c.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name })));
    const nodes = await c.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true });
    const have = nodes.find((n) => n['node-name'] === 'vda-fmt')!['dirty-bitmaps']!.map((b) => b.name);
    expect(have.sort()).toEqual([...names].sort());
    await Promise.all(names.map((name) => c.execute('block-dirty-bitmap-remove', { node: 'vda-fmt', name })));
    await c.close();
  });

  it('delivers the events of a real block job', async () => {
    const c = await QmpClient.connect(labStatus(dir).qmp);
    // a null-co sink is enough to observe the job's events
    await c.execute('blockdev-add', { driver: 'null-co', 'node-name': 'sink', size: 64 * MiB });
    const statuses: string[] = [];
    c.onEvent((e) => {
      if (e.event === 'JOB_STATUS_CHANGE' && e.data.id === 'copy1') statuses.push(String(e.data.status));
    });
    const done = c.waitForEvent((e) => e.event === 'BLOCK_JOB_COMPLETED' && e.data.device === 'copy1', 20_000);
    // registered before the job starts: concluded and null can arrive in the same read as COMPLETED
    const dismissed = c.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === 'copy1' && e.data.status === 'null', 20_000);
    await c.execute('blockdev-backup', { 'job-id': 'copy1', device: 'vda-fmt', target: 'sink', sync: 'full' });
    const completed = await done;
    expect(completed.data.len).toBe(64 * MiB);
    await dismissed;
    expect(statuses[0]).toBe('created');
    expect(statuses).toContain('concluded');
    await c.execute('blockdev-del', { 'node-name': 'sink' });
    await c.close();
  });

  it('rejects pending commands with a clear error when QEMU is killed', async () => {
    const c = await QmpClient.connect(labStatus(dir).qmp);
    const closed = new Promise<Error>((resolve) => c.onClose(resolve));
    const pending = c.execute('query-status', undefined, { timeoutMs: 0 }).then(() => 'answered', (e: unknown) => e);
    await killLab(dir);
    const reason = await closed;
    expect(reason).toBeInstanceOf(QmpConnectionError);
    expect(reason.message).toMatch(/closed by QEMU/);
    const outcome = await pending;
    // QEMU may answer before the kill lands; if it did not, the error must say why.
    if (outcome !== 'answered') expect((outcome as Error).message).toMatch(/query-status: .*closed by QEMU/);
    await expect(c.execute('query-status')).rejects.toThrow(/closed by QEMU/);
    await startLab({ dir }); // leave a running VM for afterAll's clean stop
  });
});
