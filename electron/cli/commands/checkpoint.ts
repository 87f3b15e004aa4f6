// checkpoint-* commands, in virsh's vocabulary and output shapes.

import * as fs from 'node:fs';
import type { Checkpoint, DeleteMode, ListFilter } from '../../../shared/domain';
import { escapeXml, MAX_CHECKPOINT_XML_BYTES } from '../../engine/checkpoints/xml';
import { exclusive, UsageError, type ParsedArgs } from '../args';
import { QUIESCE_OPTIONS, quiesceOf } from '../backup-options';
import { JSON_OPTION, type Command } from '../command';
import type { CliContext } from '../context';
import { formatInfo, formatTable, formatTime, formatTree, safeCell } from '../format';
import { checkpointWarnings, healthWarnings } from '../health';

export interface DiskSpec {
  name: string;
  checkpoint?: 'bitmap' | 'no';
  bitmap?: string;
}

/** virsh's --diskspec "disk[,checkpoint=bitmap|no][,bitmap=name]" (",," is a literal comma). */
export function parseDiskspec(text: string): DiskSpec {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ',' && text[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (text[i] === ',') {
      parts.push(cur);
      cur = '';
    } else {
      cur += text[i];
    }
  }
  parts.push(cur);
  const [name, ...rest] = parts;
  if (!name) throw new UsageError(`unable to parse diskspec: ${text} (expected DISK[,checkpoint=bitmap|no])`);
  const spec: DiskSpec = { name };
  for (const p of rest) {
    if (p.startsWith('checkpoint=') && spec.checkpoint === undefined) {
      const v = p.slice('checkpoint='.length);
      if (v !== 'bitmap' && v !== 'no') throw new UsageError(`diskspec ${text}: checkpoint=${v} is not valid; use checkpoint=bitmap or checkpoint=no`);
      spec.checkpoint = v;
    } else if (p.startsWith('bitmap=') && spec.bitmap === undefined) {
      spec.bitmap = p.slice('bitmap='.length);
    } else {
      throw new UsageError(`unable to parse diskspec: ${text} (unexpected "${p}")`);
    }
  }
  return spec;
}

/** escapeXml, and invisible or text-direction characters as character references: the same XML, but a
 *  terminal shows them instead of rendering them (a name must not look like another). */
function escapeXmlShown(s: string): string {
  return escapeXml(s).replace(/[\p{Cf}\u2028\u2029]/gu, (c) => `&#x${c.codePointAt(0)!.toString(16)};`);
}

/** The XML `virsh checkpoint-create-as --print-xml` prints (virsh builds it itself). */
export function createAsXml(name: string | undefined, description: string | undefined, disks: DiskSpec[]): string {
  const escapeXml = escapeXmlShown;
  let s = '<domaincheckpoint>\n';
  if (name !== undefined) s += `  <name>${escapeXml(name)}</name>\n`;
  if (description !== undefined) s += `  <description>${escapeXml(description)}</description>\n`;
  if (disks.length > 0) {
    s += '  <disks>\n';
    for (const d of disks) {
      s += `    <disk name='${escapeXml(d.name)}'`;
      if (d.checkpoint) s += ` checkpoint='${d.checkpoint}'`;
      if (d.bitmap !== undefined) s += ` bitmap='${escapeXml(d.bitmap)}'`;
      s += '/>\n';
    }
    s += '  </disks>\n';
  }
  return `${s}</domaincheckpoint>\n`;
}

/** For the read-only commands' help. */
const RECORDED_NOTE = 'Works while the VM is not running (the demo VM once started, or an endpoint added in the app and\n' +
  'connected once): it then shows the recorded metadata, and says so on stderr.';

/** A checkpoint name's rules, for help texts. */
const NAME_RULES = 'at most 1023 bytes; no "/", control characters, leading "." or "tidemark-tmp-" prefix';

const createAs: Command = {
  name: 'checkpoint-create-as',
  summary: 'Create a checkpoint from a set of args',
  description:
    'Creates a checkpoint as a child of the current checkpoint: one persistent dirty bitmap per disk,\n' +
    'named like the checkpoint, all added in one QMP transaction (on any failure no disk changes and\n' +
    'no metadata is written). NAME defaults to the time in seconds, as libvirt.\n' +
    'Disks: unlike virsh, disks not named by --diskspec are included when they can hold bitmaps (qcow2 v3,\n' +
    'writable) and left out otherwise; --diskspec DISK,checkpoint=no leaves a disk out, and naming a disk\n' +
    'that cannot hold bitmaps is an error. bitmap= may only repeat the checkpoint name (as libvirt).\n' +
    'A bitmap of the same name already on a disk (foreign) is an error; it is never taken over.\n' +
    '--layout is chosen at the first checkpoint of a VM and then fixed: independent (every bitmap\n' +
    'records, as libvirt) or chained (only the newest records, older ones are disabled).\n' +
    '--print-xml prints the XML virsh would build from these arguments and needs no VM.\n' +
    '--quiesce freezes the guest\'s file systems through the QEMU guest agent just before the transaction\n' +
    'and thaws them right after (also on every error); refused at once when no agent answers.',
  positionals: [{ name: 'NAME', required: false, help: `checkpoint name (default: the time in seconds); ${NAME_RULES}` }],
  options: [
    { name: 'description', kind: 'value', metavar: 'TEXT', help: 'description of checkpoint' },
    { name: 'diskspec', kind: 'list', metavar: 'DISK[,checkpoint=bitmap|no][,bitmap=NAME]', help: 'per-disk choice, as virsh (repeatable; ",," is a literal comma)' },
    { name: 'layout', kind: 'value', metavar: 'independent|chained', help: 'bitmap layout, at the VM\'s first checkpoint (default: independent)' },
    { name: 'print-xml', kind: 'flag', help: 'print XML document rather than create' },
    ...QUIESCE_OPTIONS,
    JSON_OPTION,
  ],
  needsService: (args) => !args.flags.has('print-xml'),
  async run(ctx, args) {
    exclusive(args, 'print-xml', 'json');
    exclusive(args, 'print-xml', 'quiesce');
    const quiesce = quiesceOf(args, ctx.cwd);
    const name = args.positionals[0];
    const description = args.values.get('description');
    const specs = (args.lists.get('diskspec') ?? []).map(parseDiskspec);
    const layout = args.values.get('layout');
    if (layout !== undefined && layout !== 'independent' && layout !== 'chained') throw new UsageError(`--layout must be independent or chained, got ${JSON.stringify(layout)}`);
    const seen = new Set<string>();
    for (const d of specs) {
      if (seen.has(d.name)) throw new UsageError(`disk '${d.name}' specified twice`);
      seen.add(d.name);
      if (d.bitmap !== undefined && d.checkpoint === 'no') throw new UsageError(`diskspec for ${d.name}: bitmap= cannot go with checkpoint=no`);
    }
    if (args.flags.has('print-xml')) {
      ctx.virshOut(`${createAsXml(name, description, specs)}\n`);
      return;
    }
    for (const d of specs) {
      if (d.bitmap === undefined) continue;
      if (name === undefined) throw new UsageError(`diskspec for ${d.name} sets bitmap=${d.bitmap}, but the bitmap is always named after the checkpoint: give NAME instead`);
      if (d.bitmap !== name) throw new Error(`bitmap for disk '${d.name}' must match checkpoint name '${name}'`);
    }
    const vmId = ctx.vmId();
    const cp = await ctx.call('checkpoint:create', vmId, {
      ...(name !== undefined ? { name } : {}),
      ...(description !== undefined ? { description } : {}),
      ...(specs.length > 0 ? { disks: specs.map((d) => ({ name: d.name, checkpoint: d.checkpoint ?? 'bitmap' })) } : {}),
      ...(layout !== undefined ? { layout: layout as 'independent' | 'chained' } : {}),
      ...(quiesce ? { quiesce } : {}),
    });
    if (args.flags.has('json')) ctx.json(cp);
    else ctx.virshOut(`Domain checkpoint ${safeCell(cp.name)} created`);
  },
};

const create: Command = {
  name: 'checkpoint-create',
  summary: 'Create a checkpoint from XML',
  description:
    'Creates a checkpoint from a libvirt <domaincheckpoint> XML file (without FILE: all defaults).\n' +
    'As libvirt: disks listed in <disks> get a bitmap unless checkpoint=\'no\', unlisted disks are left\n' +
    'out (no <disks>: every disk that can hold bitmaps); a new checkpoint cannot name its <parent>.\n' +
    '--redefine records metadata (e.g. saved with checkpoint-dumpxml) without touching bitmaps: its\n' +
    '<parent> must exist, its disks must be the VM\'s, and an existing name must have the same definition.\n' +
    '--redefine-validate also checks that every bitmap exists, is persistent and consistent (and records,\n' +
    'in the independent layout). The file may hold at most 1 MiB; DTDs and entities are refused.',
  positionals: [{ name: 'FILE', required: false, help: 'domain checkpoint XML' }],
  options: [
    { name: 'redefine', kind: 'flag', help: 'redefine metadata for existing checkpoint' },
    { name: 'redefine-validate', kind: 'flag', help: 'validate the redefined checkpoint' },
    JSON_OPTION,
  ],
  async run(ctx, args) {
    if (args.flags.has('redefine-validate') && !args.flags.has('redefine')) throw new UsageError('Option --redefine is required by option --redefine-validate');
    const file = args.positionals[0];
    let xml = '<domaincheckpoint/>';
    if (file !== undefined) {
      let size: number;
      try {
        const st = fs.statSync(ctx.path(file));
        if (!st.isFile()) throw new Error(`${file} is not a regular file`);
        size = st.size;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new Error(err.code === 'ENOENT' ? `cannot read ${file}: no such file` : err.message);
      }
      if (size > MAX_CHECKPOINT_XML_BYTES) throw new Error(`checkpoint XML is ${size} bytes; the limit is ${MAX_CHECKPOINT_XML_BYTES}`);
      xml = fs.readFileSync(ctx.path(file), 'utf8');
    }
    const vmId = ctx.vmId();
    const opts = args.flags.has('redefine') ? { redefine: true, ...(args.flags.has('redefine-validate') ? { validate: true } : {}) } : undefined;
    const cp = await ctx.call('checkpoint:create-xml', vmId, xml, opts);
    if (args.flags.has('json')) ctx.json(cp);
    else ctx.virshOut(file !== undefined ? `Domain checkpoint ${safeCell(cp.name)} created from '${safeCell(file)}'` : `Domain checkpoint ${safeCell(cp.name)} created`);
  },
};

/** virsh's order: by name, ignoring case (its vshStrcasecmp), ties by exact name. */
export function byName(a: { name: string }, b: { name: string }): number {
  const x = a.name.toLowerCase();
  const y = b.name.toLowerCase();
  if (x !== y) return x < y ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

const list: Command = {
  name: 'checkpoint-list',
  summary: 'List checkpoints for a domain',
  description:
    'Lists checkpoints sorted by name, ignoring case, as virsh (--topological: parents before children,\n' +
    'siblings oldest first). --from NAME lists its children (--descendants: its whole subtree); --tree\n' +
    'draws the tree. --leaves and --no-leaves together list everything.\n' +
    'Cannot be combined: --tree with --name, --parent, --roots, --leaves or --no-leaves; --parent with\n' +
    '--roots; --roots with --from; --json with --tree, --name or --parent.\n' +
    'Damaged checkpoints (bitmaps missing or inconsistent, e.g. after QEMU was killed) are listed as\n' +
    'usual, with a warning on stderr; domain-info says what it means.\n' +
    RECORDED_NOTE,
  positionals: [],
  options: [
    { name: 'parent', kind: 'flag', help: 'add a column showing parent checkpoint' },
    { name: 'roots', kind: 'flag', help: 'list only checkpoints without parents' },
    { name: 'leaves', kind: 'flag', help: 'list only checkpoints without children' },
    { name: 'no-leaves', kind: 'flag', help: 'list only checkpoints that are not leaves (with children)' },
    { name: 'tree', kind: 'flag', help: 'list checkpoints in a tree' },
    { name: 'from', kind: 'value', metavar: 'NAME', help: 'limit list to children of given checkpoint' },
    { name: 'descendants', kind: 'flag', help: 'with --from, list all descendants' },
    { name: 'name', kind: 'flag', help: 'list checkpoint names only' },
    { name: 'topological', kind: 'flag', help: 'sort list topologically rather than by name' },
    JSON_OPTION,
  ],
  async run(ctx, args) {
    exclusive(args, 'tree', 'name');
    exclusive(args, 'parent', 'roots');
    exclusive(args, 'parent', 'tree');
    exclusive(args, 'roots', 'tree');
    exclusive(args, 'roots', 'from');
    for (const f of ['leaves', 'no-leaves']) {
      if (args.flags.has(f) && args.flags.has('tree')) throw new UsageError(`--${f} and --tree are mutually exclusive`); // virsh's words
    }
    for (const display of ['tree', 'name', 'parent']) exclusive(args, display, 'json');
    if (args.flags.has('descendants') && !args.values.has('from')) throw new UsageError('--descendants requires --from');
    const filter: ListFilter = {};
    if (args.flags.has('roots')) filter.roots = true;
    if (args.flags.has('leaves')) filter.leaves = true;
    if (args.flags.has('no-leaves')) filter.noLeaves = true;
    if (args.flags.has('topological')) filter.topological = true;
    const from = args.values.get('from');
    if (from !== undefined) {
      filter.from = from;
      if (args.flags.has('descendants')) filter.descendants = true;
    }
    const vmId = ctx.vmId({ recorded: true });
    const found = await ctx.call('checkpoint:list', vmId, filter);
    const cps = filter.topological ? found : [...found].sort(byName);
    // Without QEMU there are no bitmaps to check.
    const recorded = await ctx.recordedName(vmId);
    if (recorded === undefined) ctx.io.stderr(healthWarnings((await ctx.call('vm:health', vmId)).issues));
    ctx.noteRecorded(recorded);
    if (args.flags.has('json')) return ctx.json(cps);
    if (args.flags.has('name')) return ctx.virshOut(cps.map((c) => `${safeCell(c.name)}\n`).join(''));
    if (args.flags.has('tree')) {
      const nodes: { name: string; parent?: string }[] = cps.map((c) => ({ name: c.name, parent: c.parent }));
      if (from !== undefined) nodes.push({ name: from }); // as virsh: the --from checkpoint is the root
      return ctx.virshOut(formatTree(filter.topological ? nodes : nodes.sort(byName)));
    }
    const parent = args.flags.has('parent');
    const header = parent ? ['Name', 'Creation Time', 'Parent'] : ['Name', 'Creation Time'];
    const rows = cps.map((c) => (parent ? [c.name, formatTime(c.creationTime), c.parent ?? ''] : [c.name, formatTime(c.creationTime)]));
    ctx.virshOut(formatTable(header, rows));
  },
};

/** The checkpoint NAME; `recorded`: the VM's name when it is not running (its recorded metadata was read). */
async function lookup(ctx: CliContext, args: ParsedArgs): Promise<{ vmId: string; cp: Checkpoint; recorded: string | undefined }> {
  const vmId = ctx.vmId({ recorded: true });
  const cp = await ctx.call('checkpoint:get', vmId, args.positionals[0]!);
  return { vmId, cp, recorded: await ctx.recordedName(vmId) };
}

const NAME_ARG = { name: 'NAME', required: true, help: 'checkpoint name' };

const parentDescription = 'Prints the name of the checkpoint\'s parent; a root has none, which is an error (as virsh).\n' + RECORDED_NOTE;

const info: Command = {
  name: 'checkpoint-info',
  summary: 'checkpoint information',
  description:
    'Name, domain, parent and the number of children and descendants, as virsh. Problems with the\n' +
    'checkpoint\'s bitmaps are printed as warnings on stderr, with what they mean (--json: "health",\n' +
    'null when the VM is not running).\n' + RECORDED_NOTE,
  positionals: [NAME_ARG],
  options: [JSON_OPTION],
  async run(ctx, args) {
    const { vmId, cp, recorded } = await lookup(ctx, args);
    const [domain, children, descendants, current, health] = await Promise.all([
      recorded ?? ctx.call('vm:info', vmId).then((vm) => vm.name ?? vm.id),
      ctx.call('checkpoint:list', vmId, { from: cp.name }),
      ctx.call('checkpoint:list', vmId, { from: cp.name, descendants: true }),
      ctx.call('checkpoint:current', vmId),
      recorded === undefined ? ctx.call('vm:health', vmId) : undefined,
    ]);
    const issues = health ? health.issues.filter((i) => i.checkpoint === cp.name) : null;
    ctx.noteRecorded(recorded);
    if (args.flags.has('json')) {
      return ctx.json({
        ...cp, domain, current: current?.name === cp.name,
        children: children.sort(byName).map((c) => c.name), descendants: descendants.sort(byName).map((c) => c.name), health: issues,
      });
    }
    if (issues) ctx.io.stderr(checkpointWarnings(issues));
    ctx.virshOut(formatInfo([
      ['Name', cp.name],
      ['Domain', domain],
      ['Parent', cp.parent ?? '-'],
      ['Children', children.length],
      ['Descendants', descendants.length],
    ]));
  },
};

const parent: Command = {
  name: 'checkpoint-parent',
  summary: 'Get the name of the parent of a checkpoint',
  description: parentDescription,
  positionals: [NAME_ARG],
  options: [],
  async run(ctx, args) {
    const { cp, recorded } = await lookup(ctx, args);
    if (cp.parent === undefined) throw new Error(`checkpoint '${cp.name}' has no parent`);
    ctx.noteRecorded(recorded);
    ctx.virshOut(cp.parent);
  },
};

const dumpxml: Command = {
  name: 'checkpoint-dumpxml',
  summary: 'Dump XML for a domain checkpoint',
  description:
    'Prints the checkpoint as libvirt\'s <domaincheckpoint> XML (checkpoint-create --redefine takes it back).\n' +
    '--size adds size=\'BYTES\' per disk: what a backup based on this checkpoint would copy (the dirty\n' +
    'bytes since it); omitted for a disk whose bitmap is missing or inconsistent, as libvirt.\n' +
    RECORDED_NOTE + ' (--size needs the running VM.)',
  positionals: [NAME_ARG],
  options: [
    { name: 'size', kind: 'flag', help: 'include backup size estimate in XML dump' },
    { name: 'no-domain', kind: 'flag', help: 'exclude <domain> from XML' },
  ],
  async run(ctx, args) {
    const vmId = ctx.vmId({ recorded: true });
    const opts = { ...(args.flags.has('size') ? { size: true } : {}), ...(args.flags.has('no-domain') ? { noDomain: true } : {}) };
    const xml = await ctx.call('checkpoint:dumpxml', vmId, args.positionals[0]!, opts);
    ctx.noteRecorded(await ctx.recordedName(vmId));
    ctx.virshOut(xml);
  },
};

const del: Command = {
  name: 'checkpoint-delete',
  summary: 'Delete a domain checkpoint',
  description:
    'Deletes the checkpoint and its bitmaps (one QMP transaction; on failure nothing changes). Its children\n' +
    'are re-parented to its parent, and if it was current its parent becomes current. In the chained\n' +
    'layout its bitmap is first merged into its predecessor, so older checkpoints keep every change.\n' +
    'A checkpoint whose bitmap is missing or inconsistent (e.g. after QEMU was killed) can be deleted.\n' +
    '--children deletes the whole subtree, --children-only only the subtree below NAME; --metadata\n' +
    'forgets the checkpoint but leaves its bitmaps, which then count as foreign (as virsh).\n' +
    'At most one of --children, --children-only and --metadata.',
  positionals: [NAME_ARG],
  options: [
    { name: 'children', kind: 'flag', help: 'delete checkpoint and all children' },
    { name: 'children-only', kind: 'flag', help: 'delete children but not checkpoint' },
    { name: 'metadata', kind: 'flag', help: 'delete only metadata, leaving the bitmaps behind (they keep recording)' },
    JSON_OPTION,
  ],
  async run(ctx, args) {
    exclusive(args, 'children', 'children-only', 'metadata');
    const mode: DeleteMode = args.flags.has('children') ? 'children' : args.flags.has('children-only') ? 'children-only' : args.flags.has('metadata') ? 'metadata' : 'plain';
    const name = args.positionals[0]!;
    const vmId = ctx.vmId();
    const result = await ctx.call('checkpoint:delete', vmId, name, mode);
    if (args.flags.has('json')) return ctx.json(result);
    ctx.virshOut(mode === 'children-only' ? `Domain checkpoint ${name} children deleted\n` : `Domain checkpoint ${name} deleted\n`);
  },
};

export const checkpointCommands: Command[] = [createAs, create, del, dumpxml, info, list, parent];
