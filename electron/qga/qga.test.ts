// The guest agent client and quiesce against a fake agent peer: the sync handshake (0xFF, stale
// data, stale syncs), replies and errors, timeouts and re-syncs, and every failure path of
// withFrozenFilesystems: no agent, agent hangs, freeze fails, freeze times out, fn throws, fn runs
// too long, thaw fails, connection lost while frozen, already frozen.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { agentSocketPath, GuestAgentClient } from './client';
import { AgentCommandError, AgentProtocolError, AgentTimeoutError, AgentUnavailableError } from './errors';
import { startFakeAgent, type FakeAgent, type FakeAgentOptions } from './fake-agent';
import { FreezeFailedError, FrozenTooLongError, QuiesceRefusedError, ThawFailedError, withFrozenFilesystems } from './freeze';

const open: { agent?: FakeAgent; client?: GuestAgentClient }[] = [];
async function setup(options: FakeAgentOptions = {}, clientOptions = {}) {
  const agent = await startFakeAgent(options);
  const entry: { agent?: FakeAgent; client?: GuestAgentClient } = { agent };
  open.push(entry);
  entry.client = await GuestAgentClient.connect(agent.endpoint, { syncTimeoutMs: 300, ...clientOptions });
  return { agent, client: entry.client };
}
afterEach(async () => {
  vi.useRealTimers();
  for (const e of open.splice(0)) {
    e.client?.close();
    await e.agent?.close();
  }
});

describe('guest agent client', () => {
  it('flushes the channel with 0xFF, syncs, and ignores a previous client\'s stale replies and syncs', async () => {
    const stale = Buffer.concat([Buffer.from('{"return": 7}\n{"retu'), Buffer.from([0xff]), Buffer.from('{"return": 12345}\n')]);
    const { agent, client } = await setup({ stale });
    expect(agent.firstBytes).toEqual([0xff]);
    expect(agent.received).toEqual(['guest-sync-delimited']);
    await client.ping();
    expect(await client.fsfreezeStatus()).toBe('thawed');
    expect(agent.received).toEqual(['guest-sync-delimited', 'guest-ping', 'guest-fsfreeze-status']);
  });

  it('names a missing socket and an agent that does not answer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-qga-none-'));
    try {
      await expect(GuestAgentClient.connect(`unix:${path.join(dir, 'qga.sock')}`)).rejects.toThrow(AgentUnavailableError);
      await expect(GuestAgentClient.connect(`unix:${path.join(dir, 'qga.sock')}`)).rejects.toThrow(/no guest agent at .*qga\.sock: there is no such socket/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const silent = await startFakeAgent({ silent: true });
    open.push({ agent: silent });
    // The sync gives up after its own 300 ms, not the 3 s default: timed on fake timers from the moment
    // the request reached the agent, not by Date.now() differences a loaded machine could stretch.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let settled = false;
    const failed = GuestAgentClient.connect(silent.endpoint, { syncTimeoutMs: 300 }).catch((e: Error) => e).finally(() => (settled = true));
    const deadline = Date.now() + 10_000;
    while (silent.firstBytes.length === 0) {
      if (Date.now() > deadline) throw new Error('the sync request never reached the agent');
      await new Promise((r) => setImmediate(r));
    }
    const drained = () => new Promise((r) => setImmediate(r)); // every promise callback has run
    await vi.advanceTimersByTimeAsync(299);
    await drained();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await drained();
    expect(settled).toBe(true);
    vi.useRealTimers();
    const err = await failed;
    expect(err).toBeInstanceOf(AgentTimeoutError);
    expect((err as Error).message).toMatch(/did not answer guest-sync-delimited within 300 ms: no guest agent answers on it \(is qemu-guest-agent installed and running in the guest\?\)/);
    expect(() => agentSocketPath('unix:')).toThrow(/needs a socket path/);
  });

  it('turns error replies into errors naming the command, and garbage into a protocol error', async () => {
    const { client } = await setup({ onCommand: (c) => (c === 'guest-info' ? { raw: 'not json\n' } : undefined) });
    await expect(client.execute('guest-frobnicate')).rejects.toThrow(new AgentCommandError('guest-frobnicate', 'CommandNotFound', 'The command guest-frobnicate has not been found'));
    await expect(client.execute('guest-info')).rejects.toThrow(AgentProtocolError);
    await client.ping(); // reconnects and re-syncs after the protocol error closed the connection
  });

  it('after a command times out, syncs again so the late reply is not taken for the next one', async () => {
    let slow = true;
    const { agent, client } = await setup({
      onCommand: (c) => (c === 'guest-fsfreeze-status' && slow ? { delayMs: 400, then: { return: 'frozen' } } : undefined),
    });
    await expect(client.fsfreezeStatus({ timeoutMs: 100 })).rejects.toThrow(/did not answer guest-fsfreeze-status within 100 ms/);
    slow = false;
    await new Promise((r) => setTimeout(r, 500)); // the late "frozen" arrives now
    expect(await client.fsfreezeStatus()).toBe('thawed');
    expect(agent.received.filter((c) => c === 'guest-sync-delimited')).toHaveLength(2);
  });
});

describe('withFrozenFilesystems', () => {
  it('freezes just before fn and thaws right after', async () => {
    const { agent, client } = await setup();
    const r = await withFrozenFilesystems(client, async () => {
      expect(agent.state.frozen).toBe(true);
      return 'checkpoint';
    });
    expect(r).toMatchObject({ value: 'checkpoint', frozen: 2, thawed: 2 });
    expect(agent.state).toEqual({ frozen: false, freezes: 1, thaws: 1 });
    expect(agent.received.filter((c) => c.startsWith('guest-fsfreeze'))).toEqual(['guest-fsfreeze-status', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw']);
  });

  it('refuses clearly when no agent answers, and runs nothing', async () => {
    const silent = await startFakeAgent({ silent: true });
    open.push({ agent: silent });
    const client = GuestAgentClient.create(silent.endpoint, { syncTimeoutMs: 200 });
    let ran = false;
    const err = await withFrozenFilesystems(client, async () => (ran = true)).catch((e: Error) => e);
    client.close();
    expect(err).toBeInstanceOf(QuiesceRefusedError);
    expect((err as Error).message).toMatch(/^quiesce needs the QEMU guest agent: .*did not answer guest-sync-delimited.*or run without --quiesce/);
    expect(ran).toBe(false);
  });

  it('a freeze the agent refuses: fn does not run, nothing stays frozen', async () => {
    const { agent, client } = await setup({ onCommand: (c) => (c === 'guest-fsfreeze-freeze' ? { error: { class: 'GenericError', desc: 'failed to freeze /: Device or resource busy' } } : undefined) });
    let ran = false;
    await expect(withFrozenFilesystems(client, async () => (ran = true))).rejects.toThrow(/quiesce failed: guest-fsfreeze-freeze: the guest agent says: failed to freeze \/: Device or resource busy/);
    expect(ran).toBe(false);
    expect(agent.state.frozen).toBe(false);
  });

  it('a freeze that times out (the agent hangs after freezing): thawed again, fn does not run', async () => {
    const { agent, client } = await setup({
      onCommand: (c, st) => {
        if (c !== 'guest-fsfreeze-freeze') return undefined;
        st.frozen = true; // it froze, but the reply never comes
        return 'hang';
      },
    });
    let ran = false;
    const err = await withFrozenFilesystems(client, async () => (ran = true), { freezeTimeoutMs: 200 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(FreezeFailedError);
    expect((err as Error).message).toMatch(/did not answer guest-fsfreeze-freeze within 200 ms; the guest's file systems were thawed again/);
    expect(ran).toBe(false);
    expect(agent.state.frozen).toBe(false);
    expect(agent.state.thaws).toBe(1);
  });

  it('fn throws: thawed, and fn\'s error comes through', async () => {
    const { agent, client } = await setup();
    await expect(withFrozenFilesystems(client, async () => {
      throw new Error('transaction failed: Bitmap is busy');
    })).rejects.toThrow('transaction failed: Bitmap is busy');
    expect(agent.state.frozen).toBe(false);
  });

  it('fn overruns the freeze limit: thawed at the limit while fn still runs; fn sees the abort', async () => {
    const { agent, client } = await setup();
    let thawedWhileRunning = false;
    let aborted = false;
    const err = await withFrozenFilesystems(client, async (signal) => {
      signal.addEventListener('abort', () => (aborted = true));
      // Runs on until the agent has thawed (or 10 s): after a fixed 600 ms it could end before the thaw
      // sent at the 150 ms limit had reached the agent, when a loaded machine ran both timers at once.
      const deadline = Date.now() + 10_000;
      while (agent.state.frozen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      thawedWhileRunning = !agent.state.frozen;
      return 'late';
    }, { maxFrozenMs: 150 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(FrozenTooLongError);
    expect((err as FrozenTooLongError).outcome).toEqual({ ok: true, value: 'late' });
    expect((err as Error).message).toMatch(/finished after the thaw and is not quiesced/);
    expect(aborted).toBe(true);
    expect(thawedWhileRunning).toBe(true);
  });

  it('a thaw that keeps failing is reported loudly with what to do, and carries fn\'s result', async () => {
    const { agent, client } = await setup({ onCommand: (c) => (c === 'guest-fsfreeze-thaw' ? { error: { class: 'GenericError', desc: 'failed to thaw /var: Invalid argument' } } : undefined) });
    const logged: string[] = [];
    const err = await withFrozenFilesystems(client, async () => 'done', { log: (l) => logged.push(l) }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ThawFailedError);
    expect((err as Error).message).toMatch(/^THE GUEST'S FILE SYSTEMS MAY STILL BE FROZEN: .*failed to thaw \/var.*virsh domfsthaw.*guest-fsfreeze-thaw.*socat - UNIX-CONNECT:.*fsfreeze -u MOUNTPOINT/);
    expect((err as ThawFailedError).outcome).toEqual({ ok: true, value: 'done' });
    expect(logged.filter((l) => /thaw attempt/.test(l))).toHaveLength(3);
    expect(agent.state.frozen).toBe(true);
  });

  it('the connection drops while frozen: the thaw reconnects, syncs and thaws', async () => {
    const { agent, client } = await setup();
    const r = await withFrozenFilesystems(client, async () => {
      agent.dropConnections();
      await new Promise((res) => setTimeout(res, 50));
      return 1;
    });
    expect(r.thawed).toBe(2);
    expect(agent.state.frozen).toBe(false);
    expect(agent.connections).toBe(2);
  });

  it('leaves file systems someone else froze alone', async () => {
    const { agent, client } = await setup();
    agent.state.frozen = true;
    await expect(withFrozenFilesystems(client, async () => 1)).rejects.toThrow(/already frozen \(not by this run\)/);
    expect(agent.state.frozen).toBe(true);
    expect(agent.state.thaws).toBe(0);
  });
});
