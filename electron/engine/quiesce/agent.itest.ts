// Finding the guest agent channel of a real QEMU (a guest-less TCG machine with a virtio-serial
// port named org.qemu.guest_agent.0, and one without), and the refusals when quiesce cannot work:
// no channel, no agent in the guest, another client on the socket. The freeze protocol itself is
// tested against the fake agent (electron/qga/qga.test.ts); here quiesce runs through --agent.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { startFakeAgent } from '../../qga/fake-agent';
import { findGuestAgent, openGuestAgent, quiesced } from './agent';

interface Qemu {
  proc: ChildProcess;
  client: QmpClient;
}

async function startQemu(dir: string, withAgent: boolean): Promise<Qemu> {
  const qmp = path.join(dir, 'qmp.sock');
  const args = ['-machine', 'pc,accel=tcg', '-m', '32', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${qmp},server=on,wait=off`];
  if (withAgent) {
    args.push('-device', 'virtio-serial-pci,id=vs0');
    args.push('-chardev', `socket,path=${path.join(dir, 'other.sock')},server=on,wait=off,id=other0`, '-device', 'virtserialport,chardev=other0,name=org.example.other,id=other');
    args.push('-chardev', `socket,path=${path.join(dir, 'qga.sock')},server=on,wait=off,id=qga0`, '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0');
  }
  const proc = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
  for (let i = 0; i < 200 && !fs.existsSync(qmp); i++) await new Promise((r) => setTimeout(r, 50));
  return { proc, client: await QmpClient.connect(`unix:${qmp}`) };
}

async function stopQemu(q: Qemu | undefined): Promise<void> {
  if (!q) return;
  await q.client.execute('quit').catch(() => undefined);
  await q.client.close().catch(() => undefined);
  const exited = new Promise((r) => q.proc.once('exit', r));
  const timer = setTimeout(() => q.proc.kill('SIGKILL'), 5000);
  if (q.proc.exitCode === null) await exited;
  clearTimeout(timer);
}

describe('guest agent channel of a real QEMU', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-qga-qemu-'));
  let withAgent: Qemu | undefined;
  let without: Qemu | undefined;

  beforeAll(async () => {
    fs.mkdirSync(path.join(root, 'a'));
    fs.mkdirSync(path.join(root, 'b'));
    withAgent = await startQemu(path.join(root, 'a'), true);
    without = await startQemu(path.join(root, 'b'), false);
  });
  afterAll(async () => {
    await stopQemu(withAgent);
    await stopQemu(without);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('finds the org.qemu.guest_agent.0 port and its socket, and sees that no agent runs in the guest', async () => {
    const ch = await findGuestAgent(withAgent!.client);
    expect(ch).toMatchObject({ chardev: 'qga0', socket: path.join(root, 'a', 'qga.sock'), guestConnected: false, hostConnected: false });
    await expect(openGuestAgent(withAgent!.client)).rejects.toThrow(/the guest has not opened org\.qemu\.guest_agent\.0 \(is qemu-guest-agent installed and running in the guest\?\)/);
  });

  it('refuses when another client holds the agent socket', async () => {
    const other = net.createConnection({ path: path.join(root, 'a', 'qga.sock') });
    await new Promise((r) => other.once('connect', r));
    try {
      // QEMU reports the client once its main loop has accepted it: waited for (10 s), not a fixed 100 ms
      await vi.waitFor(async () => expect((await findGuestAgent(withAgent!.client))?.hostConnected).toBe(true), { timeout: 10_000, interval: 50 });
      await expect(openGuestAgent(withAgent!.client)).rejects.toThrow(/another client is connected to the guest agent socket/);
    } finally {
      other.destroy();
    }
  });

  it('says how to add a channel when the VM has none', async () => {
    expect(await findGuestAgent(without!.client)).toBeUndefined();
    await expect(openGuestAgent(without!.client)).rejects.toThrow(/the VM has no org\.qemu\.guest_agent\.0 channel \(add -chardev socket.*or give --agent unix:PATH/);
  });

  it('quiesces through an explicit --agent socket', async () => {
    const agent = await startFakeAgent();
    try {
      const r = await quiesced(without!.client, async () => agent.state.frozen, { agent: agent.endpoint });
      expect(r).toMatchObject({ value: true, frozen: 2, thawed: 2 });
      expect(agent.state.frozen).toBe(false);
    } finally {
      await agent.close();
    }
  });
});
