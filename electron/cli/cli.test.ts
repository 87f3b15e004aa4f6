// The CLI without QEMU: argument parsing, virsh-shaped output, help, and the errors a user sees.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exclusive, parseArgs, positiveNumber, UsageError, type OptionSpec } from './args';
import { createAsXml, parseDiskspec } from './commands/checkpoint';
import { formatBytes, formatInfo, formatTable, formatTime, formatTree } from './format';
import { runCli } from './main';

const PRINT_XML_FIXTURE = path.join(__dirname, '..', 'engine', 'checkpoints', 'xml-fixtures', 'libvirt-9.0', 'checkpoint-create-as-print-xml.xml');

describe('parseArgs', () => {
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
