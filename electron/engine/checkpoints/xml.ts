// libvirt <domaincheckpoint> XML: a strict parser (as strict as libvirt's RNG schema, with DTDs
// refused so no entity is ever expanded) and a formatter that writes what libvirt 9.0 writes,
// byte for byte (see test/fixtures/libvirt-9.0 and libvirt-tests).

import { SaxesParser } from 'saxes';
import type { Checkpoint, CheckpointDisk } from '../../../shared/domain';
import { validateCheckpointName } from '../names';

export interface ParsedCheckpointXml {
  name?: string;
  description?: string;
  parent?: string;
  creationTime?: number;
  /** Disks as listed. A 'bitmap' disk without a bitmap= attribute gets the checkpoint name as its
   *  bitmap when the XML has a <name>; otherwise `bitmap` stays unset until a name is assigned. */
  disks?: CheckpointDisk[];
  /** The <domain> element verbatim, re-indented as libvirt formats it on its own (no outer indent). */
  domainXml?: string;
}

export const MAX_CHECKPOINT_XML_BYTES = 1024 * 1024;

/** A tiny element tree of the checkpoint part; <domain> is captured as raw text instead. */
interface El {
  name: string;
  attrs: Record<string, string>;
  children: El[];
  text: string;
  line: number;
  /** For <domain>: its source text and where it starts. */
  raw?: string;
  rawStart?: number;
}

class CheckpointXmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointXmlError';
  }
}

function fail(message: string): never {
  throw new CheckpointXmlError(message);
}

/** Parses the XML into elements, refusing DTDs and anything that is not well-formed. */
function parseTree(xml: string): { root: El; src: string } {
  const bytes = Buffer.byteLength(xml, 'utf8');
  if (bytes > MAX_CHECKPOINT_XML_BYTES) fail(`checkpoint XML is ${bytes} bytes; the limit is ${MAX_CHECKPOINT_XML_BYTES}`);
  const src = xml.startsWith('\uFEFF') ? xml.slice(1) : xml;
  const parser = new SaxesParser({ position: true });
  const stack: El[] = [];
  let root: El | undefined;
  // While inside <domain>, only its depth is tracked: its content is kept verbatim.
  let domainStart = -1;
  let domainDepth = 0;

  parser.on('doctype', () => fail('DTDs are not allowed in checkpoint XML'));
  parser.on('error', (e) => fail(`checkpoint XML is malformed: ${e.message}`));
  parser.on('opentagstart', (tag) => {
    if (domainDepth > 0) {
      domainDepth++;
      return;
    }
    const el: El = { name: tag.name, attrs: {}, children: [], text: '', line: parser.line };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else root = el;
    stack.push(el);
    if (tag.name === 'domain' && stack.length === 2) {
      domainStart = src.lastIndexOf('<domain', parser.position);
      domainDepth = 1;
    }
  });
  parser.on('attribute', (attr) => {
    if (domainDepth > 0) return;
    const el = stack[stack.length - 1]!;
    el.attrs[attr.name] = attr.value;
  });
  const onText = (text: string) => {
    if (domainDepth > 0) return;
    const el = stack[stack.length - 1];
    if (el) el.text += text;
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', () => {
    if (domainDepth > 1) {
      domainDepth--;
      return;
    }
    const el = stack.pop()!;
    if (domainDepth === 1) {
      domainDepth = 0;
      el.raw = src.slice(domainStart, parser.position);
      el.rawStart = domainStart;
    }
  });
  parser.write(src).close();
  if (!root) fail('checkpoint XML has no root element');
  return { root, src };
}

/** Re-indents a <domain> element taken from inside a checkpoint as libvirt formats it standalone. */
function normalizeDomain(raw: string, start: number, source: string): string {
  const lineStart = source.lastIndexOf('\n', start - 1) + 1;
  const prefix = source.slice(lineStart, start);
  const indent = /^ *$/.test(prefix) ? prefix.length : 0;
  const lines = raw.split('\n');
  return lines
    .map((line, i) => {
      if (i === 0) return line;
      const lead = /^ */.exec(line)![0].length;
      return line.slice(Math.min(lead, indent));
    })
    .join('\n');
}

function where(el: El): string {
  return `<${el.name}> (line ${el.line})`;
}

function textOnly(el: El): string {
  if (el.children.length > 0) fail(`${where(el)} must contain only text, not <${el.children[0]!.name}>`);
  if (Object.keys(el.attrs).length > 0) fail(`unexpected attribute '${Object.keys(el.attrs)[0]}' on ${where(el)}`);
  return el.text;
}

function noStrayText(el: El): void {
  const t = el.text.trim();
  if (t !== '') fail(`unexpected text ${JSON.stringify(t.slice(0, 40))} in ${where(el)}`);
}

function noAttrs(el: El): void {
  const k = Object.keys(el.attrs)[0];
  if (k !== undefined) fail(`unexpected attribute '${k}' on ${where(el)}`);
}

/** XSD unsignedLong, as libvirt's schema types creationTime and size. */
function unsignedLong(text: string, what: string): number {
  const t = text.trim();
  if (!/^\+?[0-9]+$/.test(t)) fail(`${what} ${JSON.stringify(text.slice(0, 40))} is not a non-negative integer`);
  const n = Number(t);
  if (!Number.isSafeInteger(n)) fail(`${what} ${t} is too large`);
  return n;
}

/** The name rules of names.ts; `where` says which element held a bad one (the rule names the name). */
function checkName(name: string, where?: string): string {
  try {
    validateCheckpointName(name);
  } catch (e) {
    fail(where ? `${where}: ${(e as Error).message}` : (e as Error).message);
  }
  return name;
}

function parseDisk(el: El, checkpointName: string | undefined): CheckpointDisk {
  if (el.name !== 'disk') fail(`unknown element <${el.name}> in <disks> (line ${el.line}); only <disk> is allowed`);
  if (el.children.length > 0) fail(`<disk> (line ${el.line}) must be empty, not contain <${el.children[0]!.name}>`);
  noStrayText(el);
  for (const k of Object.keys(el.attrs)) {
    if (!['name', 'checkpoint', 'bitmap', 'size'].includes(k)) fail(`unexpected attribute '${k}' on <disk> (line ${el.line})`);
  }
  const name = el.attrs.name;
  if (name === undefined) fail(`<disk> (line ${el.line}) has no name='...' attribute`);
  // eslint-disable-next-line no-control-regex
  if (name === '' || /[\u0000-\u001f\u007f]/.test(name) || Buffer.byteLength(name) > 1024) {
    fail(`<disk> (line ${el.line}) has an invalid name ${JSON.stringify(name.slice(0, 40))}`);
  }
  const mode = el.attrs.checkpoint ?? 'bitmap';
  if (mode !== 'bitmap' && mode !== 'no') fail(`disk '${name}': checkpoint='${mode}' is not valid; use 'bitmap' or 'no'`);
  if (mode === 'no') {
    for (const k of ['bitmap', 'size']) {
      if (el.attrs[k] !== undefined) fail(`disk '${name}' has checkpoint='no', so it cannot have ${k}='${el.attrs[k]}'`);
    }
    return { name, checkpoint: 'no' };
  }
  const disk: CheckpointDisk = { name, checkpoint: 'bitmap' };
  const bitmap = el.attrs.bitmap;
  if (bitmap !== undefined) {
    // Tidemark and libvirt's QEMU driver both require bitmap name = checkpoint name.
    if (checkpointName === undefined) fail(`disk '${name}' sets bitmap='${bitmap}' but the checkpoint has no <name>; the bitmap must match the checkpoint name`);
    if (bitmap !== checkpointName) fail(`bitmap for disk '${name}' must match checkpoint name '${checkpointName}'`);
  }
  if (checkpointName !== undefined) disk.bitmap = checkpointName;
  if (el.attrs.size !== undefined) disk.size = unsignedLong(el.attrs.size, `disk '${name}': size`);
  return disk;
}

/** Parses libvirt checkpoint XML; throws an error naming what is wrong. */
export function parseCheckpointXml(xml: string): ParsedCheckpointXml {
  if (typeof xml !== 'string') fail('checkpoint XML must be a string');
  const { root, src } = parseTree(xml);
  if (root.name !== 'domaincheckpoint') fail(`checkpoint XML root element is <${root.name}>; expected <domaincheckpoint>`);
  noAttrs(root);
  noStrayText(root);

  const seen = new Map<string, El>();
  for (const el of root.children) {
    if (!['name', 'description', 'creationTime', 'disks', 'domain', 'parent'].includes(el.name)) {
      fail(`unknown element <${el.name}> in <domaincheckpoint> (line ${el.line})`);
    }
    if (seen.has(el.name)) fail(`<${el.name}> appears twice in <domaincheckpoint> (line ${el.line})`);
    seen.set(el.name, el);
  }

  const out: ParsedCheckpointXml = {};
  const nameEl = seen.get('name');
  if (nameEl) out.name = checkName(textOnly(nameEl));
  const descEl = seen.get('description');
  if (descEl) {
    const d = textOnly(descEl);
    if (d !== '') out.description = d;
  }
  const timeEl = seen.get('creationTime');
  if (timeEl) out.creationTime = unsignedLong(textOnly(timeEl), 'creationTime');
  const parentEl = seen.get('parent');
  if (parentEl) {
    noAttrs(parentEl);
    noStrayText(parentEl);
    const [pn, extra] = parentEl.children;
    if (!pn || pn.name !== 'name') fail(`<parent> (line ${parentEl.line}) must contain a <name>`);
    if (extra) fail(`unexpected element <${extra.name}> in <parent> (line ${extra.line})`);
    out.parent = checkName(textOnly(pn), '<parent>');
  }
  const disksEl = seen.get('disks');
  if (disksEl) {
    noAttrs(disksEl);
    noStrayText(disksEl);
    if (disksEl.children.length === 0) fail(`<disks> (line ${disksEl.line}) must list at least one <disk>`);
    const disks = disksEl.children.map((el) => parseDisk(el, out.name));
    const names = new Set<string>();
    for (const d of disks) {
      if (names.has(d.name)) fail(`disk '${d.name}' specified twice`);
      names.add(d.name);
    }
    out.disks = disks;
  }
  const domainEl = seen.get('domain');
  if (domainEl?.raw !== undefined) out.domainXml = normalizeDomain(domainEl.raw, domainEl.rawStart!, src);
  return out;
}

/** libvirt's virBufferEscapeString: the five XML specials escaped, control characters dropped
 *  (libvirt drops most of them; we drop all that XML 1.0 forbids, keeping \t \n \r). */
export function escapeXml(s: string): string {
  return s
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '')
    .replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function formatDisk(d: CheckpointDisk, checkpointName: string): string {
  let s = `<disk name='${escapeXml(d.name)}' checkpoint='${d.checkpoint}'`;
  const bitmap = d.checkpoint === 'bitmap' ? (d.bitmap ?? checkpointName) : undefined;
  if (bitmap !== undefined) {
    s += ` bitmap='${escapeXml(bitmap)}'`;
    if (d.size !== undefined) s += ` size='${d.size}'`;
  }
  return s + '/>';
}

/** Formats a checkpoint exactly as libvirt's virDomainCheckpointDefFormat (size= printed when set). */
export function formatCheckpointXml(cp: Checkpoint, opts: { noDomain?: boolean } = {}): string {
  const lines: string[] = ['<domaincheckpoint>'];
  lines.push(`  <name>${escapeXml(cp.name)}</name>`);
  if (cp.description !== undefined) lines.push(`  <description>${escapeXml(cp.description)}</description>`);
  if (cp.parent !== undefined) lines.push('  <parent>', `    <name>${escapeXml(cp.parent)}</name>`, '  </parent>');
  if (cp.creationTime) lines.push(`  <creationTime>${cp.creationTime}</creationTime>`);
  if (cp.disks.length > 0) {
    lines.push('  <disks>');
    for (const d of cp.disks) lines.push(`    ${formatDisk(d, cp.name)}`);
    lines.push('  </disks>');
  }
  if (cp.domainXml !== undefined && !opts.noDomain) {
    for (const line of cp.domainXml.split('\n')) lines.push(line === '' ? '' : `  ${line}`);
  }
  lines.push('</domaincheckpoint>');
  return lines.join('\n') + '\n';
}
