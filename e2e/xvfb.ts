// A private X display for GUI processes in e2e (Electron) when the run has none: Xvfb picks a
// free display number itself (-displayfd) and tells us when it is ready to accept clients.
import { spawn } from 'node:child_process';

export interface VirtualDisplay {
  display: string;
  stop(): Promise<void>;
}

export function startXvfb(timeoutMs = 10_000): Promise<VirtualDisplay> {
  return new Promise((resolve, reject) => {
    const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1440x900x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let errText = '';
    let number = '';
    const timer = setTimeout(() => {
      xvfb.kill('SIGKILL');
      reject(new Error(`Xvfb did not report a display within ${timeoutMs} ms: ${errText.trim()}`));
    }, timeoutMs);
    xvfb.stderr!.on('data', (d: Buffer) => (errText += d.toString()));
    xvfb.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run Xvfb (apt-get install xvfb): ${e.message}`));
    });
    xvfb.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Xvfb exited (${code}) before it was ready: ${errText.trim()}`));
    });
    (xvfb.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      number += d.toString();
      if (!number.includes('\n')) return;
      clearTimeout(timer);
      xvfb.removeAllListeners('exit');
      resolve({
        display: `:${number.trim()}`,
        stop: () =>
          new Promise<void>((done) => {
            if (xvfb.exitCode !== null) return done();
            xvfb.once('exit', () => done());
            xvfb.kill('SIGTERM');
          }),
      });
    });
  });
}
