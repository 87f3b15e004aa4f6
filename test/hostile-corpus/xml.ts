// Hostile checkpoint XML through the engine's reader (electron/engine/checkpoints/xml.ts, what a
// user hands to checkpoint-create / redefine) and libvirt's readers (electron/libvirt/*-xml.ts, what
// libvirtd returns): DTDs and entities (billion laughs, external entities), huge documents and
// attributes, wrong roots, missing and hostile names. Each is refused with one line naming what.

import { describe, expect, it } from 'vitest';
import { parseCheckpointXml } from '../../electron/engine/checkpoints/xml';
import { parseBackupXml } from '../../electron/libvirt/backup-xml';
import { parseLibvirtCheckpointXml } from '../../electron/libvirt/checkpoint-xml';
import { parseDomainXml } from '../../electron/libvirt/domain-xml';
import { tally } from './tally';

const LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<domaincheckpoint><name>&lol3;</name></domaincheckpoint>`;
const EXTERNAL = '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><domaincheckpoint><name>&x;</name></domaincheckpoint>';
const UNDEFINED_ENTITY = '<domaincheckpoint><name>&x;</name></domaincheckpoint>';
const HUGE_ATTR = `<domaincheckpoint><name>c</name><disks><disk name='${'v'.repeat(5 * 1024 * 1024)}'/></disks></domaincheckpoint>`;
const cp = (inner: string) => `<domaincheckpoint>${inner}</domaincheckpoint>`;

function refused(parse: (x: string) => unknown, xml: string, reason: RegExp): void {
  let err: Error | undefined;
  try {
    parse(xml);
  } catch (e) {
    err = e as Error;
  }
  expect(err, 'accepted').toBeInstanceOf(Error);
  expect(err!.message.split('\n')).toHaveLength(1);
  expect(err!.message.length).toBeLessThan(400);
  expect(err!.message).toMatch(reason);
}

describe('checkpoint XML a user hands in (engine reader)', () => {
  const bad: [string, string, RegExp][] = [
    ['billion laughs', LAUGHS, /DTDs are not allowed in checkpoint XML/],
    ['external entity', EXTERNAL, /DTDs are not allowed in checkpoint XML/],
    ['undefined entity', UNDEFINED_ENTITY, /checkpoint XML is malformed: 1:\d+: undefined entity/],
    ['over 1 MiB', cp(`<description>${'d'.repeat(1024 * 1024 + 1)}</description>`), /checkpoint XML is 1048641 bytes; the limit is 1048576/],
    ['a 5 MiB attribute', HUGE_ATTR, /checkpoint XML is \d+ bytes; the limit is 1048576/],
    ['wrong root', '<domain><name>c</name></domain>', /root element is <domain>; expected <domaincheckpoint>/],
    ['two roots', '<domaincheckpoint/><domaincheckpoint/>', /documents may contain only one root/],
    ['not XML', '{"name":"c"}', /checkpoint XML is malformed: .*text data outside of root node/],
    ['empty', '', /document must contain a root element/],
    ['truncated', '<domaincheckpoint><name>c</na', /checkpoint XML is malformed: 1:\d+: unclosed tag: name/],
    ['unknown element', cp('<name>c</name><rm>/</rm>'), /unknown element <rm> in <domaincheckpoint>/],
    ['attribute on root', '<domaincheckpoint evil="1"><name>c</name></domaincheckpoint>', /unexpected attribute 'evil' on <domaincheckpoint>/],
    ['name with "/"', cp('<name>a/b</name>'), /checkpoint name "a\/b" contains "\/"/],
    ['name with U+202E', cp('<name>a\u202eb</name>'), /checkpoint name "a\\u202eb" contains a text-direction control character \(U\+202e\)/],
    ['name with a zero-width space', cp('<name>c1&#x200b;</name>'), /checkpoint name "c1\\u200b" contains an invisible character \(U\+200b\)/],
    ['name with a control character', cp('<name>a&#x1;b</name>'), /malformed character entity/],
    ['name too long', cp(`<name>${'n'.repeat(1024)}</name>`), /checkpoint name is 1024 bytes long; qcow2 allows at most 1023 bytes/],
    ['name twice', cp('<name>a</name><name>b</name>'), /<name> appears twice in <domaincheckpoint>/],
    ['disk without name', cp('<name>c</name><disks><disk checkpoint="bitmap"/></disks>'), /<disk> \(line 1\) has no name='...' attribute/],
    ['disk mode unknown', cp('<name>c</name><disks><disk name="vda" checkpoint="maybe"/></disks>'), /maybe/],
    ['bitmap not the name', cp('<name>c</name><disks><disk name="vda" bitmap="other"/></disks>'), /bitmap for disk 'vda' must match checkpoint name 'c'/],
    ['size not a number', cp('<name>c</name><disks><disk name="vda" size="-1"/></disks>'), /disk 'vda': size "-1" is not a non-negative integer/],
    ['creationTime not a number', cp('<name>c</name><creationTime>soon</creationTime>'), /creationTime "soon" is not a non-negative integer/],
  ];
  for (const [what, xml, reason] of bad) {
    it(what, () => {
      refused(parseCheckpointXml, xml, reason);
      tally('checkpoint XML');
    });
  }
});

describe('XML libvirtd returns (libvirt readers)', () => {
  const bad: [string, (x: string) => unknown, string, RegExp][] = [
    ['checkpoint: billion laughs', parseLibvirtCheckpointXml, LAUGHS, /checkpoint XML: DTDs are not allowed/],
    ['checkpoint: external entity', parseLibvirtCheckpointXml, EXTERNAL, /checkpoint XML: DTDs are not allowed/],
    ['checkpoint: undefined entity', parseLibvirtCheckpointXml, UNDEFINED_ENTITY, /checkpoint XML is malformed/],
    ['checkpoint: over 4 MiB', parseLibvirtCheckpointXml, HUGE_ATTR, /checkpoint XML is \d+ bytes; the limit is 4194304/],
    ['checkpoint: wrong root', parseLibvirtCheckpointXml, '<domain/>', /checkpoint XML has root element <domain>; expected <domaincheckpoint>/],
    ['checkpoint: no name', parseLibvirtCheckpointXml, cp('<description>x</description>'), /checkpoint XML has no <name>/],
    ['checkpoint: name with "/"', parseLibvirtCheckpointXml, cp('<name>../etc</name>'), /checkpoint name "\.\.\/etc" is not valid for libvirt/],
    ['checkpoint: name ".."', parseLibvirtCheckpointXml, cp('<name>..</name>'), /checkpoint name "\.\." is not valid/],
    ['checkpoint: parent with "/"', parseLibvirtCheckpointXml, cp('<name>c</name><parent><name>a/b</name></parent>'), /checkpoint name "a\/b" is not valid/],
    ['checkpoint: parent without name', parseLibvirtCheckpointXml, cp('<name>c</name><parent/>'), /checkpoint 'c': <parent> has no <name>/],
    ['checkpoint: disk without name', parseLibvirtCheckpointXml, cp('<name>c</name><disks><disk/></disks>'), /a <disk> \(line \d+\) has no name/],
    ['checkpoint: disk twice', parseLibvirtCheckpointXml, cp('<name>c</name><disks><disk name="vda"/><disk name="vda"/></disks>'), /lists disk 'vda' twice/],
    ['checkpoint: bad size', parseLibvirtCheckpointXml, cp('<name>c</name><disks><disk name="vda" size="lots"/></disks>'), /disk 'vda' size/],
    ['checkpoint: processing instruction', parseLibvirtCheckpointXml, '<?evil?><domaincheckpoint/>', /processing instruction <\?evil\?> is not allowed/],
    ['domain: DTD', parseDomainXml, '<!DOCTYPE domain [<!ENTITY a "b">]><domain/>', /domain XML: DTDs are not allowed/],
    ['domain: wrong root', parseDomainXml, '<domaincheckpoint/>', /domain XML has root element <domaincheckpoint>; expected <domain>/],
    ['domain: truncated', parseDomainXml, '<domain type="kvm"><name>v', /domain XML is malformed/],
    ['backup: DTD', parseBackupXml, LAUGHS, /DTDs are not allowed/],
    ['backup: wrong root', parseBackupXml, '<domain/>', /backup XML has root element <domain>; expected <domainbackup>/],
  ];
  for (const [what, parse, xml, reason] of bad) {
    it(what, () => {
      refused(parse, xml, reason);
      tally('libvirt XML');
    });
  }
});
