// libvirt XML (domain, checkpoint, backup) read into a small element tree with saxes: DTDs are
// refused (so no entity is ever defined or expanded), only XML's five predefined entities and
// character references exist, and documents over a size limit are refused before parsing.

import { SaxesParser } from 'saxes';
import { LibvirtXmlError } from './errors';

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Text directly inside this element (CDATA included), untrimmed. */
  text: string;
  line: number;
}

/** Large enough for a domain with hundreds of devices; far below anything that could hurt. */
export const MAX_XML_BYTES = 4 * 1024 * 1024;

/** Parses `xml` (what = "domain XML", …, named in errors); the root must be `root` when given. */
export function parseXmlTree(xml: string, what: string, root?: string): XmlElement {
  if (typeof xml !== 'string') throw new LibvirtXmlError(`${what} must be a string`);
  const bytes = Buffer.byteLength(xml, 'utf8');
  if (bytes > MAX_XML_BYTES) throw new LibvirtXmlError(`${what} is ${bytes} bytes; the limit is ${MAX_XML_BYTES}`);
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let top: XmlElement | undefined;
  let failure: LibvirtXmlError | undefined;
  const fail = (message: string) => {
    failure ??= new LibvirtXmlError(message);
    throw failure;
  };
  parser.on('doctype', () => fail(`${what}: DTDs are not allowed`));
  parser.on('error', (e) => fail(`${what} is malformed: ${e.message}`));
  parser.on('processinginstruction', (pi) => fail(`${what}: processing instruction <?${pi.target}?> is not allowed`));
  parser.on('opentag', (tag) => {
    const el: XmlElement = { name: tag.name, attrs: {}, children: [], text: '', line: parser.line };
    for (const [k, v] of Object.entries(tag.attributes)) el.attrs[k] = typeof v === 'string' ? v : v.value;
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else if (top) fail(`${what} has more than one root element`);
    else top = el;
    if (!tag.isSelfClosing) stack.push(el);
  });
  const onText = (t: string) => {
    const el = stack[stack.length - 1];
    if (el) el.text += t;
    else if (t.trim() !== '') fail(`${what} has text outside its root element`);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', (tag) => {
    if (!tag.isSelfClosing) stack.pop();
  });
  try {
    parser.write(xml.startsWith('\uFEFF') ? xml.slice(1) : xml).close();
  } catch (e) {
    throw failure ?? new LibvirtXmlError(`${what} is malformed: ${(e as Error).message}`);
  }
  if (!top) throw new LibvirtXmlError(`${what} has no root element`);
  if (root !== undefined && top.name !== root) throw new LibvirtXmlError(`${what} has root element <${top.name}>; expected <${root}>`);
  return top;
}

export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** Trimmed text of a child element, or undefined when there is no such child. */
export function childText(el: XmlElement, name: string): string | undefined {
  const c = child(el, name);
  return c === undefined ? undefined : c.text.trim();
}

/** A non-negative integer attribute or text (libvirt's unsignedLong/unsignedInt), or undefined when absent. */
export function unsignedValue(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const t = value.trim();
  if (!/^[0-9]+$/.test(t)) throw new LibvirtXmlError(`${what} ${JSON.stringify(t.slice(0, 40))} is not a non-negative integer`);
  const n = Number(t);
  if (!Number.isSafeInteger(n)) throw new LibvirtXmlError(`${what} ${t} is too large`);
  return n;
}

/** libvirt's virBufferEscapeString: the five XML specials escaped; characters XML 1.0 forbids are refused. */
export function escapeXml(s: string, what: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(s)) throw new LibvirtXmlError(`${what} ${JSON.stringify(s.slice(0, 40))} contains a character XML cannot carry`);
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}
