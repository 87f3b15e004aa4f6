// Real payloads for the validation bench: what the renderer sends for the busiest channels, a
// manifest of the demo VM's three disks (as backup-begin writes it) and a checkpoint metadata file.

const backupId = '20261123-030215-123-a1b2';
const disk = (name: string, kind: 'full' | 'incremental') => ({
  name, kind,
  ...(kind === 'incremental' ? { since: 'c1', base: '20261123-020000-000-0000', backingFile: '20261123-020000-000-0000.qcow2' } : {}),
  image: `disks/${name}/${backupId}.qcow2`, virtualSize: 1 << 30, bytesCopied: 65536 * 7, fileSize: 458752,
  sha256: 'ab'.repeat(32), sourceImage: `/var/lib/tidemark/lab/${name}.qcow2`, sourceFormat: 'qcow2', sourceCompat: '1.1',
  sourceClusterSize: 65536, checkpointBitmap: true,
});

export const manifest = {
  format: 'tidemark-backup', version: 1, id: backupId, vm: { id: '6f1c0f3e-8a51-4f4e-9a43-8a2f4c0b2d11', name: 'demo', uuid: '6f1c0f3e-8a51-4f4e-9a43-8a2f4c0b2d11' },
  kind: 'incremental', since: 'c1', checkpoint: backupId, layout: 'independent', startedAt: 1795402935123, completedAt: 1795402936000,
  qemuVersion: '7.2.22', tool: 'tidemark 0.1.0', disks: [disk('vda', 'incremental'), disk('vdb', 'incremental'), { ...disk('vdc', 'full'), fallbackReason: 'the disk cannot hold bitmaps', checkpointBitmap: false }],
};

export const checkpointFile = {
  name: 'before-upgrade', description: 'before the kernel upgrade', parent: 'c1', creationTime: 1795402935, createdAtMs: 1795402935123,
  disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'before-upgrade' }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'before-upgrade' }, { name: 'vdc', checkpoint: 'no' }],
  layout: 'independent',
};

/** [channel, args] as they arrive over the WebSocket (JSON: optional arguments may be null). */
export const calls: [string, unknown[]][] = [
  ['vm:info', ['6f1c0f3e-8a51-4f4e-9a43-8a2f4c0b2d11']],
  ['checkpoint:create', ['demo', { name: 'before-upgrade', description: 'before the kernel upgrade', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' }], layout: null }]],
  ['backup:begin', ['demo', { repo: '/srv/backups', since: 'c1', disks: ['vda', 'vdb'], speedMiBps: 200 }]],
  ['restore:run', [{ backup: backupId, to: { disk: 'vda', path: '/tmp/vda-restored.qcow2', format: 'qcow2' } }]],
  ['pull:export', ['demo', { full: true, tcp: { host: '127.0.0.1', port: 10809, tlsDir: '/etc/pki/qemu' } }]],
  ['dirtymap:get', ['demo', 'vda', 'c1', 64]],
];

/** A bad payload per kind, for the error path (and to compare the messages). */
export const bad = {
  call: ['checkpoint:create', ['demo', { name: 'x', disks: [{ name: 'vda', checkpoint: 'maybe' }] }]] as [string, unknown[]],
  manifest: { ...manifest, disks: [{ ...manifest.disks[0], sha256: 'xyz' }] },
};

/** What every candidate implements: the same schemas and the same error texts. */
export interface Candidate {
  name: string;
  parseArgs(channel: string, args: unknown): unknown;
  parseManifest(raw: unknown): unknown;
  parseCheckpoint(raw: unknown): unknown;
}
