// checkpoint-create from XML: the request's rules, the disks of a new checkpoint, and what a
// redefinition records (libvirt's rules).
import { describe, expect, it } from 'vitest';
import type { BitmapInfo, Checkpoint, DiskInfo } from '../../../shared/domain';
import { assertDisksKnown, checkXmlRequest, disksFromXml, planRedefine, type RedefineInput } from './plan-redefine';
import { parseCheckpointXml } from './xml';

const bm = (name: string, o: Partial<BitmapInfo> = {}): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536, ...o });
const disk = (name: string, bitmaps: BitmapInfo[] = []): DiskInfo => ({
  name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1 << 30, imageFile: `/x/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps,
});
const cp = (name: string, parent?: string): Checkpoint => ({
  name, ...(parent !== undefined ? { parent } : {}), creationTime: 1_600_000_000, createdAtMs: 1_600_000_000_500, layout: 'independent',
  disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: name }, { name: 'vdb', checkpoint: 'no' }],
});
const xml = (body: string) => parseCheckpointXml(`<domaincheckpoint>${body}</domaincheckpoint>`);
const disksXml = '<disks><disk name="vda" checkpoint="bitmap"/><disk name="vdb" checkpoint="no"/></disks>';

describe('checkXmlRequest', () => {
  it('a new checkpoint names no parent and takes no validate', () => {
    expect(() => checkXmlRequest(xml('<name>c1</name>'), {})).not.toThrow();
    expect(() => checkXmlRequest(xml('<name>c1</name>'), { validate: true })).toThrow('"validate" only applies to a redefinition');
    expect(() => checkXmlRequest(xml('<name>c2</name><parent><name>c1</name></parent>'), {})).toThrow(
      'a new checkpoint cannot name its parent (it is always the current checkpoint); use redefine to record an existing one',
    );
  });
  it('a redefinition needs a name', () => {
    expect(() => checkXmlRequest(xml('<name>c1</name>'), { redefine: true, validate: true })).not.toThrow();
    expect(() => checkXmlRequest(xml('<description>x</description>'), { redefine: true })).toThrow('a redefined checkpoint needs a <name>');
  });
});

describe('disksFromXml', () => {
  const vm = [disk('vda'), disk('vdb'), disk('vdc')];
  it('listed disks as listed, unlisted ones "no" (as libvirt)', () => {
    expect(disksFromXml(xml(`<name>c1</name><disks><disk name="vdb"/></disks>`), vm, 'demo')).toEqual([
      { name: 'vda', checkpoint: 'no' }, { name: 'vdb', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' },
    ]);
  });
  it('without <disks>: undefined, so the create defaults apply', () => {
    expect(disksFromXml(xml('<name>c1</name>'), vm, 'demo')).toBeUndefined();
  });
  it('refuses a disk the VM does not have, naming its disks', () => {
    expect(() => disksFromXml(xml('<disks><disk name="sdz"/></disks>'), vm, 'demo (u1)')).toThrow('unknown disk sdz in checkpoint XML (VM demo (u1) has vda, vdb, vdc)');
    expect(() => assertDisksKnown(xml('<disks><disk name="a b"/></disks>'), [], 'demo')).toThrow('unknown disk "a b" in checkpoint XML (VM demo has no disks)');
  });
});

describe('planRedefine', () => {
  const input = (o: Partial<RedefineInput> & { body: string }): RedefineInput => {
    const parsed = xml(o.body);
    return {
      parsed: { ...parsed, name: parsed.name! }, checkpoints: new Map(), current: undefined, layout: 'independent',
      disks: [disk('vda', [bm('c1'), bm('c2')]), disk('vdb')], validate: false, nowMs: 1_700_000_000_999, vmLabel: 'demo', ...o,
    };
  };

  it('records a new checkpoint with its XML times, disks (bitmap named after it) and description; it becomes current', () => {
    const { checkpoint, current } = planRedefine(input({ body: `<name>c1</name><description>d</description><creationTime>1600000000</creationTime>${disksXml}` }));
    expect(checkpoint).toEqual({
      name: 'c1', description: 'd', creationTime: 1600000000, createdAtMs: 1600000000000, layout: 'independent',
      disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'no' }],
    });
    expect(current).toBe('c1');
  });
  it('without <creationTime>: now, in seconds; the VM\'s layout', () => {
    const { checkpoint } = planRedefine(input({ body: '<name>c1</name>', layout: 'chained' }));
    expect(checkpoint).toMatchObject({ creationTime: 1700000000, createdAtMs: 1700000000000, layout: 'chained', disks: [] });
  });
  it('becomes current when its parent is current or the current one has no metadata; otherwise current stays', () => {
    const cps = new Map([['c1', cp('c1')], ['c0', cp('c0')]]);
    expect(planRedefine(input({ body: '<name>c2</name><parent><name>c1</name></parent>', checkpoints: cps, current: 'c1' })).current).toBe('c2');
    expect(planRedefine(input({ body: '<name>c2</name><parent><name>c0</name></parent>', checkpoints: cps, current: 'c1' })).current).toBe('c1');
    expect(planRedefine(input({ body: '<name>c2</name><parent><name>c0</name></parent>', checkpoints: cps, current: 'gone' })).current).toBe('c2');
  });
  it('refuses a parent that does not exist and a disk the VM does not have', () => {
    expect(() => planRedefine(input({ body: '<name>c2</name><parent><name>c9</name></parent>' }))).toThrow('parent c9 for checkpoint c2 not found');
    expect(() => planRedefine(input({ body: '<name>c2</name><disks><disk name="vdz"/></disks>' }))).toThrow('unknown disk vdz in checkpoint XML (VM demo has vda, vdb)');
  });
  it('validate: every named bitmap present and usable, else the libvirt message', () => {
    expect(() => planRedefine(input({ body: `<name>c1</name>${disksXml}`, validate: true }))).not.toThrow();
    expect(() => planRedefine(input({ body: `<name>c3</name>${disksXml}`, validate: true }))).toThrow("checkpoint inconsistent: missing or broken bitmap 'c3' for disk 'vda'");
    const broken = [disk('vda', [bm('c1', { inconsistent: true })]), disk('vdb')];
    expect(() => planRedefine(input({ body: `<name>c1</name>${disksXml}`, validate: true, disks: broken }))).toThrow("missing or broken bitmap 'c1' for disk 'vda'");
    const disabled = [disk('vda', [bm('c1', { recording: false })]), disk('vdb')];
    expect(() => planRedefine(input({ body: `<name>c1</name>${disksXml}`, validate: true, disks: disabled }))).toThrow(/broken bitmap 'c1'/);
    expect(() => planRedefine(input({ body: `<name>c1</name>${disksXml}`, validate: true, disks: disabled, layout: 'chained' }))).not.toThrow();
  });
  it('an existing checkpoint: the same definition keeps its disks and times and leaves current alone; another is refused', () => {
    const cps = new Map([['c1', cp('c1')]]);
    const same = planRedefine(input({ body: `<name>c1</name><description>new text</description>${disksXml}`, checkpoints: cps, current: 'c1' }));
    expect(same.checkpoint).toMatchObject({ name: 'c1', description: 'new text', creationTime: 1600000000, createdAtMs: 1600000000500, disks: cp('c1').disks });
    expect(planRedefine(input({ body: `<name>c1</name>${disksXml}`, checkpoints: cps, current: undefined })).current).toBeUndefined();
    expect(() => planRedefine(input({ body: '<name>c1</name><disks><disk name="vda" checkpoint="no"/><disk name="vdb" checkpoint="no"/></disks>', checkpoints: cps }))).toThrow(
      'checkpoint c1 already exists with a different definition',
    );
  });
});
