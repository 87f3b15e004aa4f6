// The test lab removes its domains on every path: a process that exits without cleaning up, one
// stopped by SIGTERM or SIGINT, and (through the sweep at the next start) one killed with SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibvirtConnection } from '../../electron/libvirt/connection';
import { listDomains } from '../../electron/libvirt/domains';
import { ensureLibvirtDaemons, restartLibvirtd, useLibvirtd } from './daemons';
import { LOCAL_URI, sweepLeftovers, runsAsRoot } from './lab';

const ROOT = path.resolve(__dirname, '../..');
let conn: LibvirtConnection;
let releaseLibvirtd: (() => Promise<void>) | undefined;

beforeAll(async () => {
  if (!runsAsRoot) return;
  await ensureLibvirtDaemons();
  releaseLibvirtd = await useLibvirtd(); // no libvirtd restart by another test file meanwhile
  conn = await LibvirtConnection.open(LOCAL_URI);
}, 600_000);

const started: ChildProcess[] = [];

afterAll(async () => {
  // children a failed test left running clean up after themselves on SIGTERM
  await Promise.all(started.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => (c.on('close', r), c.kill('SIGTERM')))));
  await conn?.close();
  await releaseLibvirtd?.();
}, 60_000);

type Child = { child: ChildProcess; info: { uuid: string; name: string; dir: string }; exited: Promise<number | null> };

async function startChild(mode: 'exit' | 'wait'): Promise<Child> {
  // tsx as a loader, not its CLI: the CLI runs the script in a second process, and a signal to the
  // first would not reach the lab.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'lab-child.ts'), mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const info = await new Promise<Child['info']>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as Child['info']);
    });
    child.on('close', (code) => reject(new Error(`lab child exited (${code}) before defining a domain: ${err}`)));
  });
  return { child, info, exited };
}

const exists = async (uuid: string) => (await listDomains(conn)).some((d) => d.uuid === uuid);

describe.skipIf(!runsAsRoot)('test lab cleanup', () => {
  it('removes domain and folder of a process that exits without closing the lab, or is stopped by SIGTERM or SIGINT', async () => {
    // three children at once: each costs seconds to start (tsx, libvirt, a TCG domain)
    const [exiting, termed, interrupted] = await Promise.all([startChild('exit'), startChild('wait'), startChild('wait')]);
    expect(await exiting.exited).toBe(0);
    expect(await exists(termed.info.uuid)).toBe(true);
    expect(await exists(interrupted.info.uuid)).toBe(true);
    termed.child.kill('SIGTERM');
    interrupted.child.kill('SIGINT');
    await Promise.all([termed.exited, interrupted.exited]);
    for (const c of [exiting, termed, interrupted]) {
      expect(await exists(c.info.uuid)).toBe(false);
      expect(fs.existsSync(c.info.dir)).toBe(false);
    }
  }, 180_000);

  it('sweeps the domain of a SIGKILLed process at the next start, and only dead runs', async () => {
    const [alive, killed] = await Promise.all([startChild('wait'), startChild('wait')]);
    killed.child.kill('SIGKILL');
    await killed.exited;
    expect(await exists(killed.info.uuid)).toBe(true); // nothing ran in the killed process
    const removed = await sweepLeftovers(conn);
    // (another test file's lab may have swept it a moment earlier: what counts is that it is gone)
    expect(removed).not.toContain(alive.info.name);
    expect(await exists(killed.info.uuid)).toBe(false);
    expect(fs.existsSync(killed.info.dir)).toBe(false);
    expect(await exists(alive.info.uuid)).toBe(true);
    alive.child.kill('SIGTERM');
    await alive.exited;
    expect(await exists(alive.info.uuid)).toBe(false);
  }, 180_000);
});

describe.skipIf(!runsAsRoot)('libvirtd restarts in tests', () => {
  it('are refused to a file that did not say it restarts libvirtd, and a late ask for restarts is refused too', async () => {
    // Refused before any lock or restart: this file holds only the shared lock.
    await expect(restartLibvirtd()).rejects.toThrow(/must open its lab with LibvirtTestLab\.open\(\{ restartsLibvirtd: true \}\)/);
    await expect(useLibvirtd({ restarts: true })).rejects.toThrow(/must come before any other useLibvirtd\(\) of this process/);
    expect(await listDomains(conn)).toBeInstanceOf(Array); // libvirtd was not restarted: the connection still answers
  });
});

