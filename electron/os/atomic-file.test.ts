import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createFileExclusive, writeFileAtomic } from './atomic-file';
import { isProcessAlive, ownStartTime, processStartTime } from './process-liveness';

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-atomic-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the content, leaves no temp file, and makes the file private', () => {
    const d = tmpDir();
    const f = path.join(d, 'a.json');
    writeFileAtomic(f, 'one');
    writeFileAtomic(f, Buffer.from('two'));
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
    expect(fs.readdirSync(d)).toEqual(['a.json']);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });

  it('throws and leaves the old file whole when the data does not fit under a file-size limit (short writes are not renamed into place)', () => {
    const d = tmpDir();
    const f = path.join(d, 'm.json');
    fs.writeFileSync(f, 'old');
    const mod = path.resolve(__dirname, 'atomic-file.ts');
    // 4 blocks of 512 bytes: the 64 KiB write is cut short; SIGXFSZ is ignored so write() returns a short count / EFBIG.
    const script = `require(${JSON.stringify(mod)}).writeFileAtomic(${JSON.stringify(f)}, 'x'.repeat(65536))`;
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 4; exec node --import tsx -e "$0"`, script], { encoding: 'utf8', cwd: path.resolve(__dirname, '../..') });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/EFBIG|short write/);
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(d)).toEqual(['m.json']);
  });

  it('fails with a clear error when the folder does not exist', () => {
    expect(() => writeFileAtomic(path.join(tmpDir(), 'no', 'such', 'f'), 'x')).toThrow(/ENOENT/);
  });
});

describe('createFileExclusive', () => {
  it('creates once and refuses to replace an existing file', () => {
    const f = path.join(tmpDir(), 'lock');
    createFileExclusive(f, 'first');
    expect(() => createFileExclusive(f, 'second')).toThrow(/EEXIST/);
    expect(fs.readFileSync(f, 'utf8')).toBe('first');
  });
});

describe('process liveness', () => {
  it('knows this process, with and without its start time', () => {
    expect(ownStartTime()).toMatch(/^\d+$/);
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(process.pid, ownStartTime())).toBe(true);
  });

  it('treats a reused pid (other start time), a dead pid and a zombie as not alive', () => {
    expect(isProcessAlive(process.pid, '1')).toBe(false);
    const r = spawnSync('true');
    expect(isProcessAlive(r.pid!)).toBe(false);
    expect(isProcessAlive(0)).toBe(false);
  });

  it('treats a zombie (exited, not yet reaped) as not alive although its pid still exists', async () => {
    // bash starts a child that waits for the end of bash's stdin (kept on fd 3), then becomes a sleep
    // that never reaps it. The child is let go only once bash has become the sleep (bash itself would
    // reap it), and the test waits until it is a zombie: fixed waits raced both on a loaded machine.
    const parent = spawn('bash', ['-c', 'exec 3<&0; { read -r _ <&3; } & echo $!; exec sleep 30'], { stdio: ['pipe', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(b.toString()))));
      const comm = () => fs.readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim();
      await vi.waitFor(() => expect(comm()).toBe('sleep'), { timeout: 10_000, interval: 10 });
      parent.stdin.end();
      await vi.waitFor(() => expect(processStartTime(pid)).toBe('zombie'), { timeout: 10_000, interval: 10 });
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(isProcessAlive(pid)).toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
