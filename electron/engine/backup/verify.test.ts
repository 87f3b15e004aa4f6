// verifyLayer against real qcow2 files: layers recorded with BLAKE3 (version 2) and with SHA-256
// (version 1 manifests) both verify, and one changed byte fails either with the algorithm named.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checksumFields, checksumFile, type ChecksumAlgorithm } from './checksum';
import type { BackupManifest, BackupManifestDisk } from './manifest';
import { verifyLayer } from './verify';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-verify-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function layer(name: string): string {
  const f = path.join(dir, `${name}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '4M']);
  execFileSync('qemu-io', ['-c', 'write -P 0x5a 0 1M', f], { stdio: 'ignore' });
  return f;
}

async function entryFor(file: string, algorithm: ChecksumAlgorithm): Promise<{ m: BackupManifest; d: BackupManifestDisk }> {
  const sum = await checksumFile(file, algorithm);
  const d: BackupManifestDisk = {
    name: 'vda', kind: 'full', image: 'disks/vda/x.qcow2', virtualSize: 4 << 20, bytesCopied: 1 << 20, fileSize: sum.size,
    ...checksumFields(sum), sourceImage: '/img/vda.qcow2', sourceFormat: 'qcow2', checkpointBitmap: true,
  };
  const m: BackupManifest = {
    format: 'tidemark-backup', version: algorithm === 'sha256' ? 1 : 2, id: '20261205-000000-000-0001', vm: { id: 'vm' }, kind: 'full',
    startedAt: 0, completedAt: 0, qemuVersion: '7.2', tool: 't', disks: [d],
  };
  return { m, d };
}

describe('verifyLayer', () => {
  it.each(['blake3', 'sha256'] as const)('a %s layer verifies, and one flipped byte fails naming the algorithm', async (algorithm) => {
    const file = layer(algorithm);
    const { m, d } = await entryFor(file, algorithm);
    expect(d[algorithm]).toMatch(/^[0-9a-f]{64}$/);
    expect(await verifyLayer(file, m, d)).toMatchObject({ ok: true, problems: [] });
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 600_000);
    b[0]! ^= 0x01;
    fs.writeSync(fd, b, 0, 1, 600_000);
    fs.closeSync(fd);
    const r = await verifyLayer(file, m, d);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(new RegExp(`content changed: ${algorithm} is [0-9a-f]{64}, the manifest says ${d[algorithm]}`));
  });
});
