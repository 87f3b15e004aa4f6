import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bitmapIncapableReason, defaultGranularity, deviceIdFromQdev, discoverVm, identityFrom, readLiveBitmaps, vmInfoFrom, type DiscoveryReplies, type QmpBlockDeviceInfo,
} from './discovery';

// Replies recorded from QEMU 7.2.22 on this machine: the lab VM (vda, vdb, vdc qcow2 v2) and a
// mixed VM (-drive + virtio, -blockdev + virtio, raw ide-hd, empty ide-cd, anonymous read-only
// device, qcow2 v2, and an unattached blockdev node), with a few bitmaps added.
const fixture = (f: string) => JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', f), 'utf8')) as DiscoveryReplies;
const lab = fixture('lab-qemu-7.2.json');
const mixed = fixture('mixed-qemu-7.2.json');
// The lab VM's vda while a blockdev-backup job runs: query-block then shows the copy-before-write
// filter as the inserted node.
const duringBackup = fixture('backup-job-qemu-7.2.json');
const KiB = 1024;

describe('identity', () => {
  it('uses the uuid when QEMU has a non-zero one', () => {
    expect(identityFrom(lab, 'unix:/x.sock')).toEqual({ id: 'a27953b2-6a26-4fb3-95b2-c89f971fc2e8', name: 'tidemark-demo', uuid: 'a27953b2-6a26-4fb3-95b2-c89f971fc2e8', endpoint: 'unix:/x.sock' });
  });
  it('ignores the all-zero uuid and falls back to the name, then the endpoint', () => {
    expect(identityFrom({ name: { name: 'web1' }, uuid: { UUID: '00000000-0000-0000-0000-000000000000' } }, 'tcp:h:1')).toEqual({ id: 'web1', name: 'web1', uuid: undefined, endpoint: 'tcp:h:1' });
    expect(identityFrom(mixed, 'unix:/run/q.sock')).toEqual({ id: 'unix:/run/q.sock', name: undefined, uuid: undefined, endpoint: 'unix:/run/q.sock' });
  });
  it('normalises the uuid to lower case', () => {
    expect(identityFrom({ uuid: { UUID: 'A27953B2-6A26-4FB3-95B2-C89F971FC2E8' } }, 'e').id).toBe('a27953b2-6a26-4fb3-95b2-c89f971fc2e8');
  });
});

describe('device ids', () => {
  it.each([
    ['/machine/peripheral/vda/virtio-backend', 'vda'],
    ['/machine/peripheral/ide0', 'ide0'],
    ['ide0', 'ide0'],
    ['/machine/peripheral-anon/device[0]/virtio-backend', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%s → %s', (qdev, id) => expect(deviceIdFromQdev(qdev)).toBe(id));
});

describe('granularity', () => {
  it('is the cluster size clamped to [4 KiB, 64 KiB], 64 KiB without one (measured on 7.2)', () => {
    expect(defaultGranularity(512)).toBe(4 * KiB);
    expect(defaultGranularity(4 * KiB)).toBe(4 * KiB);
    expect(defaultGranularity(64 * KiB)).toBe(64 * KiB);
    expect(defaultGranularity(2048 * KiB)).toBe(64 * KiB);
    expect(defaultGranularity(undefined)).toBe(64 * KiB);
  });
});

describe('bitmap capability', () => {
  const node = (drv: string, compat: string | undefined, ro = false): QmpBlockDeviceInfo => ({
    'node-name': 'n', drv, ro, file: 'f', image: { filename: 'f', format: drv, 'virtual-size': 1, 'format-specific': compat ? { type: drv, data: { compat } } : undefined },
  });
  it('qcow2 v3 writable can; v2, read-only, raw and others cannot, with a plain reason', () => {
    expect(bitmapIncapableReason(node('qcow2', '1.1'))).toBeUndefined();
    expect(bitmapIncapableReason(node('qcow2', '0.10'))).toBe('qcow2 v2 (compat 0.10) cannot store persistent bitmaps');
    expect(bitmapIncapableReason(node('qcow2', '1.1', true))).toBe('read-only');
    expect(bitmapIncapableReason(node('raw', undefined))).toBe('raw images cannot store persistent bitmaps');
    expect(bitmapIncapableReason(node('vmdk', undefined))).toBe('vmdk images cannot store persistent bitmaps');
  });
});

describe('vmInfoFrom (lab VM)', () => {
  const vm = vmInfoFrom(lab, 'unix:/lab/qmp.sock');
  it('maps the three lab disks by guest device id', () => {
    expect(vm.disks.map((d) => [d.name, d.device, d.drive, d.nodeName, d.bitmapCapable])).toEqual([
      ['vda', 'vda', 'drive-vda', 'vda-fmt', true],
      ['vdb', 'vdb', 'drive-vdb', 'vdb-fmt', true],
      ['vdc', 'vdc', 'drive-vdc', 'vdc-fmt', false],
    ]);
    expect(vm.disks[2]!.bitmapIncapableReason).toBe('qcow2 v2 (compat 0.10) cannot store persistent bitmaps');
  });
  it('reports sizes, files, status, version and the bitmaps with counts', () => {
    const vda = vm.disks[0]!;
    expect(vda).toMatchObject({ format: 'qcow2', virtualSize: 1024 * 1024 * KiB, imageFile: '/lab/disks/vda.qcow2', clusterSize: 64 * KiB, granularity: 64 * KiB, readOnly: false, qdevPath: '/machine/peripheral/vda/virtio-backend' });
    expect(vda.bitmaps).toEqual([{ name: 'c1', recording: true, persistent: true, busy: false, inconsistent: false, count: 1024 * KiB, granularity: 64 * KiB }]);
    expect(vm.disks[1]!.bitmaps).toEqual([]);
    expect(vm.status).toBe('running');
    expect(vm.qemuVersion).toBe('7.2.22');
    expect(vm.id).toBe('a27953b2-6a26-4fb3-95b2-c89f971fc2e8');
  });
});

describe('vmInfoFrom (mixed VM)', () => {
  const vm = vmInfoFrom(mixed, 'unix:/run/q.sock');
  const byName = new Map(vm.disks.map((d) => [d.name, d]));
  it('names disks: device id, else drive id, else node name; skips the empty CD-ROM', () => {
    expect([...byName.keys()].sort()).toEqual(['drive-ro', 'ide0', 'old', 'orphan', 'vda', 'virtio-disk1']);
    expect(byName.has('cd0')).toBe(false);
  });
  it('maps a -blockdev disk (no drive id) to its device and format node', () => {
    expect(byName.get('virtio-disk1')).toMatchObject({ device: 'virtio-disk1', nodeName: 'libvirt-2-format', bitmapCapable: true });
    expect(byName.get('virtio-disk1')!.drive).toBeUndefined();
  });
  it('explains why raw, read-only and qcow2 v2 disks cannot hold bitmaps', () => {
    expect(byName.get('ide0')).toMatchObject({ format: 'raw', bitmapCapable: false, bitmapIncapableReason: 'raw images cannot store persistent bitmaps', qdevPath: 'ide0' });
    expect(byName.get('drive-ro')).toMatchObject({ readOnly: true, bitmapCapable: false, bitmapIncapableReason: 'read-only', granularity: 4 * KiB });
    expect(byName.get('drive-ro')!.device).toBeUndefined();
    expect(byName.get('old')).toMatchObject({ bitmapCapable: false, bitmapIncapableReason: 'qcow2 v2 (compat 0.10) cannot store persistent bitmaps' });
  });
  it('includes an unattached blockdev root with its bitmaps, but not child (file) nodes', () => {
    expect(byName.get('orphan')).toMatchObject({ nodeName: 'orphan', granularity: 64 * KiB, clusterSize: 2048 * KiB });
    expect(byName.get('orphan')!.bitmaps.map((b) => b.name)).toEqual(['o1']);
    expect(vm.disks.some((d) => d.format === 'file')).toBe(false);
  });
  it('reads disabled and temporary bitmaps as they are', () => {
    const vda = byName.get('vda')!;
    expect(vda.bitmaps.map((b) => [b.name, b.recording, b.persistent])).toEqual(expect.arrayContaining([['c1', true, true], ['off', false, true]]));
    expect(byName.get('virtio-disk1')!.bitmaps.map((b) => [b.name, b.persistent])).toEqual([['tidemark-tmp-x', false]]);
  });
  it('without the debug graph, unattached nodes are not guessed at', () => {
    const noGraph = vmInfoFrom({ ...mixed, graph: undefined }, 'e');
    expect(noGraph.disks.some((d) => d.name === 'orphan')).toBe(false);
  });
  it('never lists tidemark-* nodes (backup targets) as disks', () => {
    const g = structuredClone(mixed);
    g.graph!.nodes = g.graph!.nodes.map((n) => (n.name === 'orphan' ? { ...n, name: 'tidemark-target-1' } : n));
    g.namedNodes = g.namedNodes.map((n) => (n['node-name'] === 'orphan' ? { ...n, 'node-name': 'tidemark-target-1' } : n));
    expect(vmInfoFrom(g, 'e').disks.some((d) => d.nodeName === 'tidemark-target-1')).toBe(false);
  });
  it('keeps the inconsistent flag and anonymous bitmaps', () => {
    const g = structuredClone(lab);
    const vda = g.namedNodes.find((n) => n['node-name'] === 'vda-fmt')!;
    vda['dirty-bitmaps'] = [
      { name: 'c1', recording: false, persistent: true, busy: false, inconsistent: true, count: 0, granularity: 65536 },
      { recording: true, persistent: false, busy: true, count: 5, granularity: 65536 },
    ];
    const disk = vmInfoFrom(g, 'e').disks[0]!;
    expect(disk.bitmaps[0]).toMatchObject({ name: 'c1', inconsistent: true, recording: false });
    expect(disk.bitmaps[1]!.name).toBeUndefined();
    expect(disk.bitmaps[1]).toMatchObject({ busy: true, count: 5 });
  });
});

describe('vmInfoFrom (during a backup job)', () => {
  it('looks through the copy-before-write filter to the format node and its bitmaps', () => {
    expect(duringBackup.block[0]!.inserted!.drv).toBe('copy-before-write');
    const vm = vmInfoFrom(duringBackup, 'e');
    expect(vm.disks.map((d) => [d.name, d.nodeName, d.format, d.bitmapCapable])).toEqual([['vda', 'vda-fmt', 'qcow2', true]]);
    expect(vm.disks[0]!.bitmaps.map((b) => b.name)).toEqual([undefined, 'c1']);
  });
  it('the backup target (tidemark-*) is not a disk', () => {
    expect(vmInfoFrom(duringBackup, 'e').disks.some((d) => d.nodeName.startsWith('tidemark-'))).toBe(false);
  });
});

/** The recorded replies of `mixed`, by the command that gets each. */
function mixedReplies(): Record<string, unknown> {
  return {
    'query-name': mixed.name, 'query-uuid': mixed.uuid, 'query-status': mixed.status, 'query-version': mixed.version,
    'query-block': mixed.block, 'query-named-block-nodes': mixed.namedNodes, 'x-debug-query-block-graph': mixed.graph,
  };
}

describe('discoverVm', () => {
  it('issues the queries and maps the replies (recorded replies replayed)', async () => {
    const asked: string[] = [];
    const replies = mixedReplies();
    const client = {
      execute: async <T,>(cmd: string, args?: Record<string, unknown>): Promise<T> => {
        asked.push(cmd + (args ? JSON.stringify(args) : ''));
        if (!(cmd in replies)) throw new Error(`unexpected ${cmd}`);
        return replies[cmd] as T;
      },
    };
    const vm = await discoverVm(client, 'unix:/run/q.sock');
    expect(asked).toContain('query-named-block-nodes{"flat":true}');
    expect(vm.disks).toHaveLength(6);
    expect(vm.status).toBe('prelaunch');
  });
  it('asks name, uuid and version once per connection; what can change (status, disks, bitmaps) every time', async () => {
    const replies = mixedReplies();
    const connection = () => {
      const asked: string[] = [];
      return { asked, execute: async <T,>(cmd: string): Promise<T> => (asked.push(cmd), replies[cmd] as T) };
    };
    const a = connection();
    const first = await discoverVm(a, 'e');
    replies['query-status'] = { status: 'running' };
    a.asked.length = 0;
    const second = await discoverVm(a, 'e');
    expect(a.asked.sort()).toEqual(['query-block', 'query-named-block-nodes', 'query-status', 'x-debug-query-block-graph']);
    expect(second).toEqual({ ...first, status: 'running' });
    // Another connection (another QEMU process, perhaps restarted) asks everything again.
    const b = connection();
    await discoverVm(b, 'e');
    expect(b.asked).toHaveLength(7);
  });
});

describe('readLiveBitmaps', () => {
  it('reads every known disk\'s bitmaps with one query-named-block-nodes, as discovery maps them', async () => {
    const asked: string[] = [];
    const client = {
      execute: async <T,>(cmd: string, args?: Record<string, unknown>): Promise<T> => {
        asked.push(cmd + (args ? JSON.stringify(args) : ''));
        return lab.namedNodes as T;
      },
    };
    const vm = vmInfoFrom(lab, 'unix:/x');
    const nodes = new Map(vm.disks.map((d) => [d.name, d.nodeName]));
    nodes.set('gone', 'no-such-node');
    const live = await readLiveBitmaps(client, nodes);
    expect(asked).toEqual(['query-named-block-nodes{"flat":true}']);
    expect(live.slice(0, vm.disks.length)).toEqual(vm.disks.map((d) => ({ disk: d.name, bitmaps: d.bitmaps })));
    expect(live.at(-1)).toEqual({ disk: 'gone', bitmaps: [] });
  });
});
