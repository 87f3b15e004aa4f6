// A resident host (host-server.ts) runs commands for callers in other folders and terminals, so a
// command must take relative paths and Ctrl-C from its CliContext (ctx.path, ctx.cwd,
// ctx.onInterrupt), never from the process. This guards that for every module a host can run.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const cliDir = __dirname;
/** Modules that only run in their own process: the defaults, the process entry, the host itself, and commands marked resident: false. */
const OWN_PROCESS = new Set(['context.ts', 'main.ts', 'host-client.ts', 'host-server.ts', 'commands/serve.ts', 'commands/host.ts', 'run-cli.ts']);
const PROCESS_BOUND = [
  { pattern: /\bpath\.resolve\(\s*[^,()]+\)/, what: 'path.resolve(x) takes the process\'s folder: use ctx.path(x)' },
  { pattern: /process\.cwd\(\)/, what: 'process.cwd() is the host\'s folder: use ctx.cwd' },
  { pattern: /process\.(on|once)\(\s*'SIGINT'/, what: 'the process\'s SIGINT is the host\'s: use ctx.onInterrupt' },
  { pattern: /\bfs\.\w+Sync\(\s*(file|p|rel|name)\b/, what: 'a file named by the caller is relative to its folder: read ctx.path(file)' },
];

function modules(): string[] {
  const out: string[] = [];
  for (const sub of ['', 'commands']) {
    for (const f of fs.readdirSync(path.join(cliDir, sub))) {
      const rel = sub ? `${sub}/${f}` : f;
      if (f.endsWith('.ts') && !/\.i?test\.ts$/.test(f) && !OWN_PROCESS.has(rel)) out.push(rel);
    }
  }
  return out;
}

describe('CLI commands and a resident host', () => {
  it('take the caller\'s folder and Ctrl-C from their context, never from the process', () => {
    const found: string[] = [];
    const list = modules();
    expect(list).toContain('commands/backup.ts');
    for (const rel of list) {
      const lines = fs.readFileSync(path.join(cliDir, rel), 'utf8').split('\n');
      lines.forEach((line, i) => {
        for (const p of PROCESS_BOUND) if (p.pattern.test(line)) found.push(`${rel}:${i + 1}: ${p.what}`);
      });
    }
    expect(found).toEqual([]);
  });
});
