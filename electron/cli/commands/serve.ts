// `tidemark serve [--port N] [--state-dir DIR] [--no-open] [--demo | --no-demo]`: the web host
// in the foreground until Ctrl+C. Prints the URL with its one-time login code; when there is a
// display, opens the plain login page (no code: a browser's argv is readable by every local user
// in /proc) where the user pastes the code. Runs stand-alone (node out/node/electron/cli/commands/serve.js,
// used by npm start and `npm run serve`) or as the tidemark CLI's `serve` command (serveCommand).

import { spawn } from 'node:child_process';
import { resolveStateDir } from '../../engine/statedir';
import type { RunningWebHost } from '../../host/web-host';
import { UsageError, type ParsedArgs } from '../args';
import type { Command } from '../command';

export const SERVE_USAGE = `usage: tidemark serve [--port N] [--state-dir DIR] [--no-open] [--demo | --no-demo]
  Serves the Tidemark UI on http://127.0.0.1 only; prints an address with a one-time login code.
  --port N         listen on port N (default: a free port)
  --state-dir DIR  where Tidemark keeps its state (default: $TIDEMARK_STATE_DIR or ~/.local/share/tidemark)
  --no-open        do not open a browser (the login page, which asks for the code)
  --demo           start the demo VM (default: only when no VM is configured)
  --no-demo        never start the demo VM`;

export interface ServeOptions {
  port?: number;
  stateDir?: string;
  open: boolean;
  demo: 'always' | 'never' | 'if-unconfigured';
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got ${JSON.stringify(text)}`);
  return port;
}

export function parseServeArgs(argv: readonly string[]): ServeOptions {
  const opts: ServeOptions = { open: true, demo: 'if-unconfigured' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--port':
        opts.port = parsePort(value());
        break;
      case '--state-dir':
        opts.stateDir = value();
        break;
      case '--no-open':
        opts.open = false;
        break;
      case '--demo':
      case '--no-demo':
        if (opts.demo !== 'if-unconfigured') throw new UsageError('give --demo or --no-demo, not both');
        opts.demo = flag === '--demo' ? 'always' : 'never';
        break;
      default:
        throw new UsageError(arg.startsWith('-') ? `unknown option ${arg}` : `unexpected argument ${JSON.stringify(arg)}`);
    }
  }
  return opts;
}

export interface ServeIo {
  out(line: string): void;
  err(line: string): void;
  env?: NodeJS.ProcessEnv;
}

/** Starts the host and prints where it is. The caller decides how long it runs. */
export async function startServe(opts: ServeOptions, io: ServeIo): Promise<RunningWebHost> {
  const env = io.env ?? process.env;
  const stateDir = resolveStateDir(opts.stateDir, env);
  // Loaded here, not at the top: `tidemark help` lists this command without loading the web host (http, ws).
  const { startWebHost } = await import('../../host/web-host');
  const host = await startWebHost({ stateDir, port: opts.port, startDemo: opts.demo === 'never' ? false : opts.demo === 'always' ? true : 'if-unconfigured' });
  io.out(`Tidemark is serving on ${host.url}`);
  io.out(`  state: ${stateDir}`);
  if (host.startedDemo) io.out('  demo VM: started (it stops when the host stops)');
  io.out('  Open the address above: its login code works once (for 10 minutes), then the browser keeps a session cookie.');
  io.out(`  Or open ${host.origin}/ and paste the code: ${host.code}`);
  io.out('  Press Ctrl+C to stop.');
  if (opts.open) openBrowser(`${host.origin}/`, io);
  return host;
}

/** Opens `url` with xdg-open. Never pass a secret: it lands in the argv of xdg-open and the browser. */
function openBrowser(url: string, io: ServeIo): void {
  const env = io.env ?? process.env;
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return; // no desktop: the printed URL is the way in
  try {
    const child = spawn('xdg-open', [url], { detached: true, stdio: 'ignore', env });
    child.on('error', () => io.err('(could not run xdg-open; open the address above yourself)'));
    child.unref();
  } catch {
    io.err('(could not run xdg-open; open the address above yourself)');
  }
}

/** Runs `serve` until SIGINT/SIGTERM; returns the exit code. */
export async function runServe(argv: readonly string[], io: ServeIo = { out: (l) => console.log(l), err: (l) => console.error(l) }): Promise<number> {
  let opts: ServeOptions;
  try {
    if (argv.includes('--help') || argv.includes('-h')) {
      io.out(SERVE_USAGE);
      return 0;
    }
    opts = parseServeArgs(argv);
  } catch (e) {
    io.err(`error: ${(e as Error).message}`);
    io.err(SERVE_USAGE);
    return 2;
  }
  let host: RunningWebHost;
  try {
    host = await startServe(opts, io);
  } catch (e) {
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
  return untilSignal(host, io);
}

/** Serves until SIGINT/SIGTERM, then closes the host (and the demo VM it started). Resolves to the exit code. */
export function untilSignal(host: { close(): Promise<void>; startedDemo?: boolean }, io: ServeIo): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        io.err('stopping anyway');
        process.exit(130);
      }
      stopping = true;
      io.out(`\n${signal}: stopping${host.startedDemo ? ' (and the demo VM)' : ''}…`);
      const done = (code: number) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve(code);
      };
      host.close().then(
        () => done(0),
        (e: unknown) => {
          io.err(`error while stopping: ${(e as Error).message}`);
          done(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** `tidemark serve` in the CLI's command table (global --state-dir applies). */
export const serveCommand: Command = {
  name: 'serve',
  resident: false,
  summary: 'Serve the Tidemark UI to a browser on 127.0.0.1 (until Ctrl+C)',
  description: 'Prints the address to open; it carries a one-time login code, new at every start, that the page\nexchanges for a session cookie. Only this machine can connect (127.0.0.1), and only with that session.',
  positionals: [],
  options: [
    { name: 'port', kind: 'value', metavar: 'N', help: 'listen on port N (default: a free port)' },
    { name: 'no-open', kind: 'flag', help: 'do not open a browser (the login page, which asks for the code)' },
    { name: 'demo', kind: 'flag', help: 'start the demo VM (default: only when no VM is configured)' },
    { name: 'no-demo', kind: 'flag', help: 'never start the demo VM' },
  ],
  async run(ctx, args: ParsedArgs) {
    if (args.flags.has('demo') && args.flags.has('no-demo')) throw new UsageError('give --demo or --no-demo, not both');
    const port = args.values.get('port');
    const opts: ServeOptions = {
      stateDir: ctx.stateDir,
      open: !args.flags.has('no-open'),
      demo: args.flags.has('demo') ? 'always' : args.flags.has('no-demo') ? 'never' : 'if-unconfigured',
      ...(port !== undefined ? { port: parsePort(port) } : {}),
    };
    const io: ServeIo = { out: (l) => ctx.io.stdout(`${l}\n`), err: (l) => ctx.io.stderr(`${l}\n`), env: ctx.io.env };
    const host = await startServe(opts, io);
    const code = await untilSignal(host, io);
    if (code !== 0) throw new Error('the web host did not stop cleanly');
  },
};

if (require.main === module) {
  runServe(process.argv.slice(2)).then((code) => process.exit(code));
}
