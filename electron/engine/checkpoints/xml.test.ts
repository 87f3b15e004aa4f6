import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../../shared/domain';
import { escapeXml, formatCheckpointXml, parseCheckpointXml, type ParsedCheckpointXml } from './xml';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures');
const lv = (f: string) => fs.readFileSync(path.join(FIXTURES, 'libvirt-9.0', f), 'utf8');
const lt = (dir: 'in' | 'out', f: string) => fs.readFileSync(path.join(FIXTURES, 'libvirt-tests', dir, f), 'utf8');
/** virsh prints one newline after every command; libvirt's own XML ends at the first. */
const stripVirshNewline = (s: string) => (s.endsWith('\n\n') ? s.slice(0, -1) : s);

function toCheckpoint(p: ParsedCheckpointXml, fill: Partial<Checkpoint> = {}): Checkpoint {
  return {
    name: p.name ?? '',
    description: p.description,
    parent: p.parent,
    creationTime: p.creationTime ?? 0,
    createdAtMs: 0,
    disks: p.disks ?? [],
    layout: 'independent',
    domainXml: p.domainXml,
    ...fill,
  };
}

describe('parse → format round trip of libvirt 9.0 output', () => {
  const files = fs.readdirSync(path.join(FIXTURES, 'libvirt-9.0')).filter((f) => f.endsWith('.xml') && f !== 'checkpoint-create-as-print-xml.xml' && !f.startsWith('backup-'));
  it('covers every captured checkpoint file', () => {
    expect(files.length).toBeGreaterThanOrEqual(9);
  });
  for (const file of files) {
    it(file, () => {
      const text = stripVirshNewline(lv(file));
      expect(formatCheckpointXml(toCheckpoint(parseCheckpointXml(text)))).toBe(text);
    });
  }

  it('--no-domain drops <domain> and gives the captured .no-domain file', () => {
    for (const n of ['cp1', 'cp2']) {
      const cp = toCheckpoint(parseCheckpointXml(lv(`checkpoint-${n}.xml`)));
      expect(cp.domainXml).toBeDefined();
      expect(formatCheckpointXml(cp, { noDomain: true })).toBe(stripVirshNewline(lv(`checkpoint-${n}.no-domain.xml`)));
    }
  });

  it('keeps <domain> verbatim at libvirt’s own indentation', () => {
    const p = parseCheckpointXml(lv('checkpoint-cp1.xml'));
    const lines = p.domainXml!.split('\n');
    expect(lines[0]).toBe("<domain type='qemu'>");
    expect(lines[1]).toBe('  <name>peerlab</name>');
    expect(lines[lines.length - 1]).toBe('</domain>');
    expect(p.domainXml).toContain("<source file='/var/lib/libvirt/images/vdb.qcow2'/>");
  });

  it('reads every field of a sized checkpoint', () => {
    const p = parseCheckpointXml(lv('checkpoint-cp2.size.no-domain.xml'));
    expect(p).toEqual({
      name: 'cp2',
      parent: 'cp1',
      creationTime: 1795398740,
      disks: [
        { name: 'vda', checkpoint: 'bitmap', bitmap: 'cp2', size: 3145728 },
        { name: 'vdb', checkpoint: 'bitmap', bitmap: 'cp2', size: 65536 },
      ],
    });
  });

  it('a minimal input has no creationTime, disks or domain', () => {
    expect(parseCheckpointXml(lv('checkpoint-input-minimal.xml'))).toEqual({ name: 'cp4', description: 'created from XML file' });
  });
});

describe("libvirt's own xml2xml tests", () => {
  const fills: Record<string, Partial<Checkpoint>> = {
    'sample.xml': { name: '1525889631', parent: '1525111885', creationTime: 1525889631 },
    'disk-default.xml': { name: '1525889631', parent: '1525111885', creationTime: 1525889631 },
    'size.xml': { parent: '1525111885', creationTime: 1553648510, disks: [{ name: 'vda', checkpoint: 'bitmap', size: 1048576 }] },
  };
  for (const [file, fill] of Object.entries(fills)) {
    it(`${file}: in → out`, () => {
      const p = parseCheckpointXml(lt('in', file));
      expect(formatCheckpointXml(toCheckpoint(p, fill))).toBe(lt('out', file));
    });
  }

  it('a disk without checkpoint= defaults to bitmap, named after the checkpoint when the name is known', () => {
    expect(parseCheckpointXml(lt('in', 'disk-default.xml')).disks).toEqual([{ name: 'vda', checkpoint: 'bitmap' }]);
    expect(parseCheckpointXml("<domaincheckpoint><name>c9</name><disks><disk name='vda'/></disks></domaincheckpoint>").disks)
      .toEqual([{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c9' }]);
  });

  it('disk-invalid.xml (a disk without a name) is rejected', () => {
    expect(() => parseCheckpointXml(lt('in', 'disk-invalid.xml'))).toThrow(/<disk> \(line 6\) has no name='...' attribute/);
  });

  it('name-invalid.xml (../escape) is rejected by the checkpoint name rules', () => {
    expect(() => parseCheckpointXml(lt('in', 'name-invalid.xml'))).toThrow(/^checkpoint name "\.\.\/escape" contains "\/"$/);
  });
});

describe('hostile and malformed input', () => {
  it('refuses the billion laughs without expanding anything', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<domaincheckpoint><name>x</name><description>&lol9;</description></domaincheckpoint>`;
    expect(() => parseCheckpointXml(lol)).toThrow('DTDs are not allowed in checkpoint XML');
  });

  it('refuses an external entity', () => {
    const xxe = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><domaincheckpoint><name>x</name><description>&xxe;</description></domaincheckpoint>`;
    expect(() => parseCheckpointXml(xxe)).toThrow('DTDs are not allowed in checkpoint XML');
  });

  it('refuses an external DTD by public id too', () => {
    expect(() => parseCheckpointXml('<!DOCTYPE domaincheckpoint SYSTEM "http://example.invalid/x.dtd"><domaincheckpoint/>')).toThrow('DTDs are not allowed');
  });

  it('an undeclared entity is malformed XML, not silently dropped', () => {
    expect(() => parseCheckpointXml('<domaincheckpoint><name>x</name><description>&xxe;</description></domaincheckpoint>'))
      .toThrow(/checkpoint XML is malformed: .*undefined entity/);
  });

  it('refuses a 10 MB document before parsing it', () => {
    const big = '<domaincheckpoint><description>' + 'a'.repeat(10 * 1024 * 1024 - 64) + '</description></domaincheckpoint>';
    const bytes = Buffer.byteLength(big);
    expect(() => parseCheckpointXml(big)).toThrow(`checkpoint XML is ${bytes} bytes; the limit is 1048576`);
    // multi-byte characters count as bytes, not characters
    const wide = '<domaincheckpoint><description>' + 'é'.repeat(600 * 1024) + '</description></domaincheckpoint>';
    expect(() => parseCheckpointXml(wide)).toThrow(/is \d+ bytes; the limit is 1048576/);
  });

  it('exactly 10485760 bytes gives the documented message', () => {
    const head = '<domaincheckpoint><description>';
    const tail = '</description></domaincheckpoint>';
    const doc = head + 'a'.repeat(10485760 - head.length - tail.length) + tail;
    expect(() => parseCheckpointXml(doc)).toThrow('checkpoint XML is 10485760 bytes; the limit is 1048576');
  });

  it.each([
    ['unclosed element', '<domaincheckpoint><name>x</name>', /malformed/],
    ['mismatched tags', '<domaincheckpoint><name>x</description></domaincheckpoint>', /malformed/],
    ['two roots', '<domaincheckpoint/><domaincheckpoint/>', /malformed/],
    ['empty document', '', /malformed|no root/],
    ['not XML', 'hello', /malformed/],
    ['bad attribute quoting', '<domaincheckpoint><disks><disk name=vda/></disks></domaincheckpoint>', /malformed/],
  ])('malformed: %s', (_what, xml, re) => {
    expect(() => parseCheckpointXml(xml)).toThrow(re);
  });

  it('wrong root element', () => {
    expect(() => parseCheckpointXml("<domainsnapshot><name>s</name></domainsnapshot>"))
      .toThrow('checkpoint XML root element is <domainsnapshot>; expected <domaincheckpoint>');
    expect(() => parseCheckpointXml("<domain type='kvm'/>")).toThrow(/expected <domaincheckpoint>/);
  });

  it('duplicate disk names', () => {
    expect(() => parseCheckpointXml("<domaincheckpoint><name>c</name><disks><disk name='vda'/><disk name='vda' checkpoint='no'/></disks></domaincheckpoint>"))
      .toThrow("disk 'vda' specified twice");
  });

  it.each(['snapshot', 'BITMAP', '', 'yes'])('invalid checkpoint=%j', (value) => {
    expect(() => parseCheckpointXml(`<domaincheckpoint><disks><disk name='vda' checkpoint='${value}'/></disks></domaincheckpoint>`))
      .toThrow(`disk 'vda': checkpoint='${value}' is not valid; use 'bitmap' or 'no'`);
  });

  it('is as strict as libvirt’s schema about structure', () => {
    const bad: [string, RegExp | string][] = [
      ['<domaincheckpoint><snapshot/></domaincheckpoint>', 'unknown element <snapshot> in <domaincheckpoint> (line 1)'],
      ['<domaincheckpoint><name>a</name><name>b</name></domaincheckpoint>', /<name> appears twice/],
      ['<domaincheckpoint><disks/></domaincheckpoint>', /must list at least one <disk>/],
      ["<domaincheckpoint><disks><disk name='vda'><x/></disk></disks></domaincheckpoint>", /<disk> \(line 1\) must be empty/],
      ["<domaincheckpoint><disks><vol name='vda'/></disks></domaincheckpoint>", /unknown element <vol> in <disks>/],
      ["<domaincheckpoint><disks><disk name='vda' foo='1'/></disks></domaincheckpoint>", "unexpected attribute 'foo' on <disk> (line 1)"],
      ["<domaincheckpoint><disks><disk name='vda' checkpoint='no' bitmap='x'/></disks></domaincheckpoint>", /checkpoint='no', so it cannot have bitmap='x'/],
      ["<domaincheckpoint><name>c1</name><disks><disk name='vda' bitmap='other'/></disks></domaincheckpoint>", "bitmap for disk 'vda' must match checkpoint name 'c1'"],
      ["<domaincheckpoint><disks><disk name='vda' bitmap='b'/></disks></domaincheckpoint>", /the checkpoint has no <name>/],
      ["<domaincheckpoint><name>c1</name><disks><disk name='vda' size='-1'/></disks></domaincheckpoint>", /size "-1" is not a non-negative integer/],
      ['<domaincheckpoint><creationTime>soon</creationTime></domaincheckpoint>', 'creationTime "soon" is not a non-negative integer'],
      ['<domaincheckpoint><creationTime>99999999999999999999</creationTime></domaincheckpoint>', /creationTime 99999999999999999999 is too large/],
      ['<domaincheckpoint><name><b>x</b></name></domaincheckpoint>', /<name> \(line 1\) must contain only text/],
      ['<domaincheckpoint>stray<name>x</name></domaincheckpoint>', /unexpected text "stray"/],
      ['<domaincheckpoint><parent/></domaincheckpoint>', /<parent> \(line 1\) must contain a <name>/],
      ['<domaincheckpoint><parent><name>a</name><name>b</name></parent></domaincheckpoint>', /unexpected element <name> in <parent>/],
      ["<domaincheckpoint version='2'/>", "unexpected attribute 'version' on <domaincheckpoint> (line 1)"],
      ['<domaincheckpoint><name>a/b</name></domaincheckpoint>', /^checkpoint name "a\/b" contains "\/"$/],
      ['<domaincheckpoint><parent><name>../x</name></parent></domaincheckpoint>', /^<parent>: checkpoint name "\.\.\/x" contains "\/"$/],
      ["<domaincheckpoint><disks><disk name=''/></disks></domaincheckpoint>", /has an invalid name ""/],
    ];
    for (const [xml, msg] of bad) expect(() => parseCheckpointXml(xml), xml).toThrow(msg);
  });

  it('accepts an XML declaration, comments, CDATA and a BOM', () => {
    const p = parseCheckpointXml('\uFEFF<?xml version="1.0" encoding="UTF-8"?>\n<!-- c -->\n<domaincheckpoint>\n  <name>c1</name>\n  <description><![CDATA[a <b> & c]]></description>\n</domaincheckpoint>\n');
    expect(p).toEqual({ name: 'c1', description: 'a <b> & c' });
  });
});

describe('formatCheckpointXml', () => {
  const base: Checkpoint = { name: 'c1', creationTime: 0, createdAtMs: 0, disks: [], layout: 'independent' };

  it('escapes like libvirt and round-trips special characters', () => {
    const cp: Checkpoint = { ...base, description: `it's <1> & "two"\nline 2`, creationTime: 5 };
    const xml = formatCheckpointXml(cp);
    expect(xml).toContain('<description>it&apos;s &lt;1&gt; &amp; &quot;two&quot;\nline 2</description>');
    expect(parseCheckpointXml(xml).description).toBe(cp.description);
  });

  it('drops control characters XML cannot carry', () => {
    expect(escapeXml('a\u0001b\u001fc\td')).toBe('abc\td');
  });

  it('prints size only for bitmap disks and creationTime only when set', () => {
    const xml = formatCheckpointXml({ ...base, disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1', size: 0 }, { name: 'vdc', checkpoint: 'no', size: 7 }] });
    expect(xml).toBe("<domaincheckpoint>\n  <name>c1</name>\n  <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='c1' size='0'/>\n    <disk name='vdc' checkpoint='no'/>\n  </disks>\n</domaincheckpoint>\n");
  });

  it('re-emits a stored domain indented by two spaces', () => {
    const xml = formatCheckpointXml({ ...base, domainXml: "<domain type='qemu'>\n  <name>vm</name>\n</domain>" });
    expect(xml).toBe("<domaincheckpoint>\n  <name>c1</name>\n  <domain type='qemu'>\n    <name>vm</name>\n  </domain>\n</domaincheckpoint>\n");
    expect(formatCheckpointXml({ ...base, domainXml: '<domain/>' }, { noDomain: true })).not.toContain('domain/');
  });
});
