// Quiesce around a libvirt checkpoint create, against a fake connection that answers like virsh:
// the thaw runs on every path (create fails, thaw fails), and a failed freeze creates nothing.
import { describe, expect, it } from 'vitest';
import type { LibvirtConnection } from '../../libvirt/connection';
import { LibvirtError } from '../../libvirt/errors';
import { LibvirtCheckpoints } from './checkpoints';

const UUID = '0b5a3c8e-1f2d-4c3b-9a8e-7d6c5b4a3f21';
const DOMAIN_XML = `<domain type='qemu'><name>web1</name><uuid>${UUID}</uuid><devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/i/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>`;
const CP_XML = "<domaincheckpoint><name>q1</name><creationTime>1700000000</creationTime><disks><disk name='vda' checkpoint='bitmap' bitmap='q1'/></disks></domaincheckpoint>";

/** Answers the commands a create makes; `fail` makes one command fail with libvirt's words. */
function fakeConn(fail: Record<string, string> = {}): { conn: LibvirtConnection; calls: string[] } {
  const calls: string[] = [];
  const conn = {
    uri: { text: 'qemu:///system' },
    async command(argv: readonly string[]): Promise<string> {
      const name = argv[0]!;
      calls.push(name);
      if (fail[name]) throw new LibvirtError(name, fail[name]);
      switch (name) {
        case 'dumpxml': return DOMAIN_XML;
        case 'checkpoint-list': return calls.includes('checkpoint-create') ? 'q1\n' : '';
        case 'domfsfreeze': return 'Froze 1 filesystem(s)\n';
        case 'domfsthaw': return 'Thawed 1 filesystem(s)\n';
        case 'checkpoint-create': return 'Domain checkpoint q1 created\n';
        case 'checkpoint-dumpxml': return CP_XML;
        default: throw new Error(`unexpected virsh ${name}`);
      }
    },
  } as unknown as LibvirtConnection;
  return { conn, calls };
}
const ops = (conn: LibvirtConnection) => new LibvirtCheckpoints({ conn: async () => conn, uuid: UUID, name: () => 'web1', exclusive: (fn) => fn() });

describe('quiesce on a libvirt checkpoint create', () => {
  it('freezes, creates, thaws', async () => {
    const { conn, calls } = fakeConn();
    expect((await ops(conn).create({ name: 'q1', quiesce: {} })).name).toBe('q1');
    expect(calls.filter((c) => c.startsWith('domfs') || c === 'checkpoint-create')).toEqual(['domfsfreeze', 'checkpoint-create', 'domfsthaw']);
  });

  it('thaws when the create fails, and reports the create\'s error', async () => {
    const { conn, calls } = fakeConn({ 'checkpoint-create': 'error: operation failed: domain moment q1 already exists' });
    await expect(ops(conn).create({ name: 'q1', quiesce: {} })).rejects.toThrow('error: operation failed: domain moment q1 already exists');
    expect(calls.filter((c) => c.startsWith('domfs') || c === 'checkpoint-create')).toEqual(['domfsfreeze', 'checkpoint-create', 'domfsthaw']);
  });

  it('a failed thaw after a create says the checkpoint exists and how to thaw', async () => {
    const { conn } = fakeConn({ domfsthaw: 'error: Guest agent is not responding: QEMU guest agent is not connected' });
    await expect(ops(conn).create({ name: 'q1', quiesce: {} })).rejects.toThrow(
      'checkpoint q1 was created, but thawing the filesystems of domain web1 failed (Guest agent is not responding: QEMU guest agent is not connected); run virsh domfsthaw web1',
    );
  });

  it('a failed freeze creates nothing and needs no thaw', async () => {
    const { conn, calls } = fakeConn({ domfsfreeze: 'error: argument unsupported: QEMU guest agent is not configured' });
    await expect(ops(conn).create({ name: 'q1', quiesce: {} })).rejects.toThrow(
      'cannot quiesce domain web1: libvirt could not freeze its filesystems (argument unsupported: QEMU guest agent is not configured); no checkpoint q1 was created',
    );
    expect(calls).not.toContain('checkpoint-create');
    expect(calls).not.toContain('domfsthaw');
  });

  it('without quiesce nothing is frozen', async () => {
    const { conn, calls } = fakeConn();
    await ops(conn).create({ name: 'q1' });
    expect(calls.some((c) => c.startsWith('domfs'))).toBe(false);
  });
});
