// The CLI without QEMU: argument parsing, virsh-shaped output, help, and the errors a user sees.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import type { HealthIssue } from '../../shared/domain';
import { exclusive, parseArgs, positiveNumber, UsageError, type OptionSpec } from './args';
import { GROUPS, loadAllGroups } from './commands';
import { byName, createAsXml, parseDiskspec } from './commands/checkpoint';
import { formatBytes, formatInfo, formatTable, formatTime, formatTree, safeCell } from './format';
import { checkpointWarnings, formatHealth, healthSummary, healthWarnings } from './health';
import { runCli } from './main';

const PRINT_XML_FIXTURE = path.resolve(__dirname, '../../test/fixtures/libvirt-9.0/checkpoint-create-as-print-xml.xml');

describe('parseArgs', () => {
  it('a required option missing is a usage error naming it', () => {
    const req: OptionSpec[] = [{ name: 'disk', kind: 'value', metavar: 'DISK', help: '', required: true }];
    expect(() => parseArgs('lab write', [], req, [])).toThrow(new UsageError('lab write needs --disk DISK'));
    expect(parseArgs('lab write', ['--disk=vda'], req, []).values.get('disk')).toBe('vda');
  });

  const opts: OptionSpec[] = [
    { name: 'tree', kind: 'flag', help: '' },
    { name: 'from', kind: 'value', help: '' },
    { name: 'diskspec', kind: 'list', help: '' },
    { name: 'connect', short: 'c', kind: 'value', help: '' },
  ];
  const pos = [{ name: 'NAME', required: true, help: '' }, { name: 'EXTRA', required: false, help: '' }];

  it('reads flags, values (both spellings), repeated lists and positionals', () => {
    const a = parseArgs('cmd', ['cp1', '--tree', '--from=cp0', '--diskspec', 'vda', '--diskspec', 'vdb,checkpoint=no', '-c', 'unix:/x'], opts, pos);
    expect([...a.flags]).toEqual(['tree']);
    expect(a.values.get('from')).toBe('cp0');
    expect(a.values.get('connect')).toBe('unix:/x');
    expect(a.lists.get('diskspec')).toEqual(['vda', 'vdb,checkpoint=no']);
    expect(a.positionals).toEqual(['cp1']);
  });

  it('"--" ends the options, so a name may start with a dash', () => {
    expect(parseArgs('cmd', ['--', '--tree'], opts, pos).positionals).toEqual(['--tree']);
  });

  it.each([
    [['--bogus', 'x'], 'unknown option --bogus for cmd'],
    [['-x', 'a'], 'unknown option -x for cmd'],
    [['a', '--from'], 'option --from needs a value (VALUE)'],
    [['a', '--tree=yes'], 'option --tree takes no value'],
    [['a', '--from', 'x', '--from', 'y'], 'option --from is given twice'],
    [['a', 'b', 'c'], 'unexpected argument "c" for cmd'],
    [[], 'cmd needs NAME'],
  ])('%j → %s', (argv, msg) => {
    expect(() => parseArgs('cmd', argv, opts, pos)).toThrow(new UsageError(msg));
  });

  it('exclusive options and numbers use clear words', () => {
    const a = parseArgs('cmd', ['n', '--tree', '--from', 'x', '--diskspec', 'v'], opts, pos);
    expect(() => exclusive(a, 'tree', 'from')).toThrow('Options --tree and --from are mutually exclusive');
    expect(() => exclusive(a, 'tree', 'diskspec')).not.toThrow();
    const n = parseArgs('cmd', ['n', '--from', '2.5'], opts, pos);
    expect(positiveNumber(n, 'from')).toBe(2.5);
    expect(() => positiveNumber(n, 'from', { integer: true })).toThrow('option --from must be a positive integer, got "2.5"');
    expect(() => positiveNumber(parseArgs('cmd', ['n', '--from', '-1'], opts, pos), 'from')).toThrow('must be a positive number, got "-1"');
  });
});

describe('diskspec and --print-xml', () => {
  it('parses virsh diskspecs, including an escaped comma', () => {
    expect(parseDiskspec('vda')).toEqual({ name: 'vda' });
    expect(parseDiskspec('vdb,checkpoint=no')).toEqual({ name: 'vdb', checkpoint: 'no' });
    expect(parseDiskspec('/img/a,,b.qcow2,checkpoint=bitmap,bitmap=c1')).toEqual({ name: '/img/a,b.qcow2', checkpoint: 'bitmap', bitmap: 'c1' });
  });

  it.each([
    ['', /unable to parse diskspec/],
    ['vda,checkpoint=yes', 'diskspec vda,checkpoint=yes: checkpoint=yes is not valid; use checkpoint=bitmap or checkpoint=no'],
    ['vda,checkpoint=no,checkpoint=bitmap', /unable to parse diskspec: .*unexpected "checkpoint=bitmap"/],
    ['vda,size=5', /unable to parse diskspec: vda,size=5/],
  ])('rejects %j', (spec, msg) => {
    expect(() => parseDiskspec(spec)).toThrow(msg);
  });

  it('prints what virsh prints, byte for byte', async () => {
    const xml = createAsXml('cp3', undefined, [parseDiskspec('vda,checkpoint=bitmap'), parseDiskspec('vdb,checkpoint=no')]);
    const io = captureIo();
    const code = await runCli(['checkpoint-create-as', 'cp3', '--diskspec', 'vda,checkpoint=bitmap', '--diskspec', 'vdb,checkpoint=no', '--print-xml'], io);
    expect(code).toBe(0);
    expect(io.out).toBe(fs.readFileSync(PRINT_XML_FIXTURE, 'utf8'));
    expect(io.out.startsWith(xml)).toBe(true);
  });

  it('escapes names and descriptions', () => {
    expect(createAsXml("a'b", 'x < y & z', [])).toBe("<domaincheckpoint>\n  <name>a&apos;b</name>\n  <description>x &lt; y &amp; z</description>\n</domaincheckpoint>\n");
  });
});

describe('virsh-shaped output', () => {
  it('tables: padded columns, last one unpadded, rule as wide as the columns + 3 each', () => {
    expect(formatTable(['Name', 'Creation Time', 'Parent'], [['cp1', '2026-11-23 03:04:05 +0000', ''], ['checkpoint-2', '2026-11-23 03:04:06 +0000', 'cp1']])).toBe(
      ' Name           Creation Time               Parent\n' +
      `${'-'.repeat(15 + 28 + 9)}\n` +
      ' cp1            2026-11-23 03:04:05 +0000   \n' +
      ' checkpoint-2   2026-11-23 03:04:06 +0000   cp1\n',
    );
  });

  it('tables escape control characters so columns stay aligned', () => {
    expect(formatTable(['Name'], [['a\tb']])).toBe(' Name\n---------\n a\\x09b\n');
  });

  it('bidi and zero-width characters in names are shown escaped, so names cannot spoof each other', () => {
    // "evil\u202egpj.exe" would show as "evilexe.jpg"; "c1\u200b" would show as "c1"
    expect(safeCell('evil\u202egpj.exe')).toBe('evil\\u202egpj.exe');
    expect(safeCell('c1\u200b')).toBe('c1\\u200b');
    expect(safeCell('a\u2066b\u2069\ufeff')).toBe('a\\u2066b\\u2069\\ufeff');
    // a name that spells an escape cannot pass for an escaped one
    expect(safeCell('c1\\u200b')).toBe('c1\\x5cu200b');
    expect(formatTree([{ name: 'c1' }, { name: 'c1\u200b', parent: 'c1' }])).toContain('c1\\u200b');
    expect(formatTable(['Name'], [['x\u202ey']])).toContain('x\\u202ey');
  });

  it('trees: branches, last children and leaves as vshTreePrint draws them', () => {
    const tree = formatTree([
      { name: 'cp1' }, { name: 'cp2', parent: 'cp1' }, { name: 'cp3', parent: 'cp1' }, { name: 'cp4', parent: 'cp2' }, { name: 'other' },
    ]);
    expect(tree).toBe(
      'cp1\n' +
      '  |\n' +
      '  +- cp2\n' +
      '  |   |\n' +
      '  |   +- cp4\n' +
      '  |     \n' +
      '  +- cp3\n' +
      '    \n' +
      'other\n' +
      '\n',
    );
  });

  it('times are local, with the zone offset', () => {
    const old = process.env.TZ;
    try {
      process.env.TZ = 'UTC';
      expect(formatTime(1795403045)).toBe('2026-11-23 03:04:05 +0000');
      process.env.TZ = 'Asia/Kolkata';
      expect(formatTime(1795403045)).toBe('2026-11-23 08:34:05 +0530');
      process.env.TZ = 'America/St_Johns';
      expect(formatTime(1795403045)).toBe('2026-11-22 23:34:05 -0330');
    } finally {
      if (old === undefined) delete process.env.TZ;
      else process.env.TZ = old;
    }
  });

  it('info lines and sizes', () => {
    expect(formatInfo([['Name', 'cp1'], ['Children', 0]])).toBe('Name:           cp1\nChildren:       0\n');
    expect([formatBytes(512), formatBytes(1024 ** 3), formatBytes(1536 * 1024)]).toEqual(['512 B', '1 GiB', '1.50 MiB']);
  });
});

describe('checkpoint-list order (virsh sorts by name, ignoring case)', () => {
  it('sorts by lower-cased name, exact name breaking ties', () => {
    const names = ['b', 'A', '-dash', 'a', 'c10', 'C2', '1795404902', '1795404902-2'];
    expect(names.map((name) => ({ name })).sort(byName).map((c) => c.name)).toEqual(['-dash', '1795404902', '1795404902-2', 'A', 'a', 'b', 'c10', 'C2']);
  });
});

describe('health as the CLI shows it', () => {
  const issue = (severity: HealthIssue['severity'], message: string, checkpoint?: string): HealthIssue => ({
    state: 'bitmap-inconsistent', severity, disk: 'vda', message, consequence: `because of ${message}`, ...(checkpoint ? { checkpoint } : {}),
  });
  const issues = [issue('info', 'note one'), issue('error', 'bad one', 'c1'), issue('warning', 'odd one', 'c2'), issue('error', 'bad two', 'c1')];

  it('summary counts by severity; ok when there is nothing', () => {
    expect(healthSummary([])).toBe('ok');
    expect(healthSummary(issues)).toBe('2 errors, 1 warning, 1 note');
  });

  it('domain-info lists every issue worst first, each with its consequence below it', () => {
    expect(formatHealth(issues)).toBe(
      '  error    bad one\n           because of bad one\n' +
      '  error    bad two\n           because of bad two\n' +
      '  warning  odd one\n           because of odd one\n' +
      '  note     note one\n           because of note one\n',
    );
  });

  it('listings warn on stderr about errors and warnings only, capped, and say where the details are', () => {
    expect(healthWarnings([issue('info', 'just a note')])).toBe('');
    expect(healthWarnings(issues)).toBe(
      'warning: bad one\nwarning: bad two\nwarning: odd one\n' + "warning: see 'tidemark domain-info' for what this means for backups\n",
    );
    const many = Array.from({ length: 8 }, (_, i) => issue('error', `bad ${i}`));
    expect(healthWarnings(many, 5).split('\n')).toContain('warning: … and 3 more');
  });

  it('checkpoint-info warns with the consequence; control characters cannot break the line', () => {
    expect(checkpointWarnings([issue('error', 'bitmap x\ny is broken')])).toBe('warning: bitmap x\\x0ay is broken: because of bitmap x\\x0ay is broken\n');
  });
});

describe('lazy command modules', () => {
  it('the table names exactly the commands its modules hold', async () => {
    const loaded = await loadAllGroups();
    expect(loaded.map((g) => [g.name, g.commands.map((c) => c.name).sort()])).toEqual(GROUPS.map((g) => [g.name, [...g.names].sort()]));
  });

  it('a command loads only its own module; help and --print-xml load no engine', () => {
    // A fresh process (tsx, as `npx tidemark` in a checkout) reports which CLI and engine modules it loaded.
    const loadedBy = (argv: string[]): string[] => {
      const script = `
        require(${JSON.stringify(require.resolve('tsx/cjs'))});
        import(${JSON.stringify(require.resolve('tsx/esm'))}).then(async () => {
          const { runCli } = require(${JSON.stringify(path.join(__dirname, 'main.ts'))});
          const io = { stdout() {}, stderr() {}, isTTY: false, env: {} };
          await runCli(${JSON.stringify(argv)}, io);
          process.stdout.write(JSON.stringify(Object.keys(require.cache)));
        });`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
      const root = path.join(__dirname, '..');
      return (JSON.parse(r.stdout) as string[]).filter((f) => f.startsWith(root)).map((f) => path.relative(root, f));
    };
    const help = loadedBy(['checkpoint-list', '--help']);
    expect(help).toContain(path.join('cli', 'commands', 'checkpoint.ts'));
    for (const other of ['domain', 'backup', 'lab']) expect(help).not.toContain(path.join('cli', 'commands', `${other}.ts`));
    expect(help).not.toContain(path.join('cli', 'commands', 'serve.ts'));
    expect(help).not.toContain(path.join('host', 'service.ts'));
    // the general help lists every group's commands without loading the service or the web host
    const general = loadedBy(['--help']);
    expect(general).toContain(path.join('cli', 'commands', 'serve.ts'));
    for (const mod of [['host', 'service.ts'], ['host', 'web-host.ts'], ['engine', 'lab', 'demo.ts']]) expect(general).not.toContain(path.join(...mod));
    const printXml = loadedBy(['checkpoint-create-as', 'x', '--print-xml']);
    expect(printXml).not.toContain(path.join('host', 'service.ts'));
    expect(printXml).not.toContain(path.join('engine', 'checkpoints', 'engine.ts'));
    const running = loadedBy(['--state-dir', path.join(os.tmpdir(), 'tm-lazy-none'), 'checkpoint-list']);
    expect(running).toContain(path.join('host', 'service.ts'));
    expect(running).not.toContain(path.join('cli', 'commands', 'backup.ts'));
    // the backup code loads when a backup channel is first called, not for a checkpoint command
    for (const mod of [['host', 'handlers', 'backup.ts'], ['host', 'handlers', 'pull.ts'], ['engine', 'backup', 'session.ts'], ['engine', 'qmp-driver', 'push.ts']]) {
      expect(running).not.toContain(path.join(...mod));
    }
    expect(running).not.toContain(path.join('cli', 'commands', 'serve.ts'));
  });
});

function captureIo(env: NodeJS.ProcessEnv = {}) {
  const io = {
    out: '',
    err: '',
    isTTY: false,
    env,
    stdout: (t: string) => void (io.out += t),
    stderr: (t: string) => void (io.err += t),
  };
  return io;
}

describe('runCli', () => {
  let stateDir: string;
  beforeAll(() => {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-cli-'));
  });
  afterAll(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  const run = async (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const io = captureIo(env);
    const code = await runCli(['--state-dir', stateDir, ...argv], io);
    return { code, out: io.out, err: io.err };
  };

  it('help lists every command; COMMAND --help shows its options', async () => {
    const all = await run(['help']);
    expect(all.code).toBe(0);
    for (const c of ['domain-info', 'checkpoint-create-as', 'checkpoint-list', 'checkpoint-delete', 'lab start', 'lab write']) expect(all.out).toContain(`    ${c} `);
    const one = await run(['checkpoint-delete', '--help']);
    expect(one.code).toBe(0);
    expect(one.out).toContain('checkpoint-delete NAME [--children] [--children-only] [--metadata] [--json]');
    expect((await run(['help', 'lab', 'write'])).out).toContain('--pattern random|sequential|hotspot');
  });

  it('help is complete: exit status, environment, subcommand groups, required options, descriptions', async () => {
    const all = (await run(['--help'])).out;
    for (const s of ['Exit status:', '2 usage error', 'TIDEMARK_STATE_DIR', 'TIDEMARK_DEBUG=1', '-h, --help', '~/.local/share/tidemark']) expect(all).toContain(s);
    for (const argv of [['help', 'lab'], ['lab', '--help']]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      for (const sub of ['lab start', 'lab stop', 'lab status', 'lab write']) expect(r.out).toContain(`    ${sub} `);
    }
    expect((await run(['lab', 'write', '--help'])).out).toContain('lab write --disk DISK [--pattern random|sequential|hotspot] --mib N [--rate MIB_PER_S] [--json]');
    // every command of the groups this module owns explains itself beyond the one-line summary
    for (const g of (await loadAllGroups()).filter((x) => ['Domain', 'Checkpoint', 'Demo VM'].includes(x.name))) {
      for (const c of g.commands) expect(c.description, c.name).toMatch(/\S{3,}/);
    }
    const list = (await run(['help', 'checkpoint-list'])).out;
    expect(list).toContain('sorted by name');
    expect(list).toContain('Cannot be combined');
    expect((await run(['help', 'checkpoint-delete'])).out).toContain('re-parented');
  });

  it.each([
    [[], 'error: no command given (see: tidemark help)'],
    [['frobnicate'], "error: unknown command 'frobnicate' (see: tidemark help)"],
    [['--verbose', 'checkpoint-list'], 'error: unknown option --verbose (see: tidemark help)'],
    [['checkpoint-list', '--tree', '--name'], 'error: Options --tree and --name are mutually exclusive'],
    [['checkpoint-list', '--descendants'], 'error: --descendants requires --from'],
    [['checkpoint-create', 'x.xml', '--redefine-validate'], 'error: Option --redefine is required by option --redefine-validate'],
    [['checkpoint-create-as', 'c1', '--diskspec', 'vda,checkpoint=maybe'], 'error: diskspec vda,checkpoint=maybe: checkpoint=maybe is not valid; use checkpoint=bitmap or checkpoint=no'],
    [['checkpoint-create-as', '--layout', 'flat'], 'error: --layout must be independent or chained, got "flat"'],
    [['checkpoint-delete', 'c1', '--children', '--metadata'], 'error: Options --children and --metadata are mutually exclusive'],
    [['lab'], 'error: lab needs a subcommand: start, stop, status, write'],
    [['lab', 'reboot'], "error: unknown lab subcommand 'reboot' (use one of: start, stop, status, write)"],
    [['lab', 'write', '--disk', 'vda', '--mib', 'lots'], 'error: option --mib must be a positive integer, got "lots"'],
    [['lab', 'write', '--mib', '1'], 'error: lab write needs --disk DISK'],
    [['lab', 'write', '--disk', 'vda'], 'error: lab write needs --mib N'],
    [['checkpoint-list', '--tree', '--leaves'], 'error: --leaves and --tree are mutually exclusive'],
    [['checkpoint-list', '--no-leaves', '--tree'], 'error: --no-leaves and --tree are mutually exclusive'],
    [['checkpoint-list', '--roots', '--from', 'c1'], 'error: Options --roots and --from are mutually exclusive'],
    [['checkpoint-list', '--tree', '--json'], 'error: Options --tree and --json are mutually exclusive'],
    [['backup-begin', '--export-only'], 'error: --export-only needs --mode pull'],
    [['backup-begin', '--mode', 'pull', '--speed', '5'], 'error: --speed applies to push mode only'],
    [['backup-begin', '--mode', 'sideways'], 'error: --mode "sideways": use push or pull'],
  ])('usage error %j exits 2 with one line', async (argv, line) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`${line}\n`);
    expect(r.out).toBe('');
  });

  it('without a VM: one clear line, exit 1, and the stack only with TIDEMARK_DEBUG=1', async () => {
    const r = await run(['checkpoint-list']);
    expect(r).toEqual({ code: 1, out: '', err: 'error: no VM: pass --connect or run tidemark lab start\n' });
    const d = await run(['checkpoint-list'], { TIDEMARK_DEBUG: '1' });
    expect(d.err.split('\n')[0]).toBe('error: no VM: pass --connect or run tidemark lab start');
    expect(d.err).toMatch(/\n\s+at /);
  });

  it('an unreachable --connect endpoint names the socket', async () => {
    const r = await run(['--connect', path.join(stateDir, 'nope.sock'), 'domain-info']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: cannot connect to QMP at unix:.*nope\.sock: .*no such socket: is QEMU running\?\)\n$/);
  });

  it('a bad checkpoint XML file is refused before any VM is needed (size) or with the parser’s reason', async () => {
    const big = path.join(stateDir, 'big.xml');
    fs.writeFileSync(big, `<domaincheckpoint><description>${'x'.repeat(2 * 1024 * 1024)}</description></domaincheckpoint>`);
    const r = await run(['checkpoint-create', big]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: checkpoint XML is \d+ bytes; the limit is 1048576\n$/);
    expect((await run(['checkpoint-create', path.join(stateDir, 'missing.xml')])).err).toBe(`error: cannot read ${path.join(stateDir, 'missing.xml')}: no such file\n`);
  });

  it('lab status works without a running lab', async () => {
    const r = await run(['lab', 'status', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ running: false, qmp: `unix:${path.join(stateDir, 'lab', 'qmp.sock')}`, qmpSecondary: `unix:${path.join(stateDir, 'lab', 'qmp2.sock')}`, disks: [] });
  });
});
