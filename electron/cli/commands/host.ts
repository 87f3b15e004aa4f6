// `tidemark host [--idle SECONDS]`: the resident host (host-server.ts) in the foreground until
// Ctrl+C or SIGTERM. While it runs, `tidemark` commands on the same state folder run in it.

import { positiveNumber, type ParsedArgs } from '../args';
import type { Command } from '../command';
import type { CliContext } from '../context';

export const hostCommand: Command = {
  name: 'host',
  summary: 'Keep running, and run the CLI\'s commands with warm connections (until Ctrl+C)',
  description:
    'As libvirtd for virsh: while it runs, every tidemark command on the same state folder hands its\n' +
    'command line to it (over STATE/run/cli.sock, private to its owner) instead of starting the engine and\n' +
    'connecting to the VM itself, which saves most of a short command\'s time. Output, exit status and\n' +
    'Ctrl-C are the command\'s own. Commands run side by side (backup-status while a backup runs); the host keeps a VM\'s QMP or\n' +
    'libvirt connection open until it has been idle for --idle seconds, so other QMP clients of that\n' +
    'socket wait until then. The host uses its own environment (PATH, SSH agent) for what it runs.\n' +
    'lab start/stop, schedule and serve always run in the calling process. TIDEMARK_HOST=off in a\n' +
    'command\'s environment runs it in its own process.',
  resident: false,
  positionals: [],
  options: [{ name: 'idle', kind: 'value', metavar: 'SECONDS', help: 'close a VM\'s connection after this long unused (default 600)' }],
  needsService: () => false,
  async run(ctx: CliContext, args: ParsedArgs) {
    const idle = positiveNumber(args, 'idle') ?? 600;
    const { startCliHost } = await import('../host-server');
    const { untilSignal } = await import('./serve');
    if (!ctx.runner) throw new Error('internal error: tidemark host needs the CLI\'s runner');
    const host = await startCliHost({ stateDir: ctx.stateDir, run: ctx.runner, idleMs: idle * 1000, log: (l) => ctx.io.stderr(`${l}\n`) });
    ctx.io.stdout(`Tidemark host: running the CLI's commands for ${host.stateDir} (socket ${host.socket}); Ctrl+C stops it\n`);
    const code = await untilSignal(host, { out: (l) => ctx.io.stdout(`${l}\n`), err: (l) => ctx.io.stderr(`${l}\n`) });
    if (code !== 0) throw new Error('the host did not stop cleanly');
  },
};
