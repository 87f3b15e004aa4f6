// Layer files for unit tests of the executor: each "qcow2" is a small JSON file {backing, data}
// whose commit and rebase do what qemu-img's do (chain-model.ts semantics), written cluster by
// cluster in place like qemu-img does, with an optional pause between clusters so a test can stop
// the run in the middle of a commit or rebase. Real qemu-img runs in the *.itest.ts files.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupManifest } from '../backup/manifest';
import type { BackupRepository } from '../backup/repository';
import type { ModelFiles, ModelLayer } from './chain-model';
import type { LayerOps } from './layer-ops';

interface FakeFile {
  backing?: string;
  data: [number, number][];
}

export function readFake(file: string): { backing?: string; data: Map<number, number> } {
  const f = JSON.parse(fs.readFileSync(file, 'utf8')) as FakeFile;
  return { ...(f.backing !== undefined ? { backing: f.backing } : {}), data: new Map(f.data) };
}

export function writeFake(file: string, l: { backing?: string; data: Map<number, number> }): void {
  const body: FakeFile = { ...(l.backing !== undefined ? { backing: l.backing } : {}), data: [...l.data].sort((a, b) => a[0] - b[0]) };
  fs.writeFileSync(file, JSON.stringify(body), { mode: 0o600 });
}

/** Value of cluster k seen through the chain starting at `file` (0 when unallocated everywhere). */
export function readThrough(file: string | undefined, k: number): number {
  for (let f = file; f !== undefined; ) {
    const l = readFake(f);
    const v = l.data.get(k);
    if (v !== undefined) return v;
    f = l.backing !== undefined ? path.join(path.dirname(f), l.backing) : undefined;
  }
  return 0;
}

function chainFiles(file: string | undefined): string[] {
  const out: string[] = [];
  for (let f = file; f !== undefined; ) {
    out.push(f);
    const b = readFake(f).backing;
    f = b !== undefined ? path.join(path.dirname(f), b) : undefined;
  }
  return out;
}

/** Content of the chain at `file` (cluster → value, zeros left out). */
export function restoreFake(file: string): Map<number, number> {
  const keys = new Set<number>();
  for (const f of chainFiles(file)) for (const k of readFake(f).data.keys()) keys.add(k);
  const out = new Map<number, number>();
  for (const k of [...keys].sort((a, b) => a - b)) {
    const v = readThrough(file, k);
    if (v !== 0) out.set(k, v);
  }
  return out;
}

export function fakeLayerOps(options: { betweenClusters?: () => Promise<void> } = {}): LayerOps {
  const pause = async () => options.betweenClusters?.();
  return {
    async backingOf(file) {
      return readFake(file).backing;
    },
    async commit(top, into, hooks) {
      hooks.onSpawn(process.pid);
      const chain = chainFiles(top);
      const stop = chain.indexOf(path.resolve(into));
      if (stop < 0) throw new Error(`${into} is not in the backing chain of ${top}`);
      const keys = new Set<number>();
      for (const f of chain.slice(0, stop)) for (const k of readFake(f).data.keys()) keys.add(k);
      for (const k of keys) {
        const l = readFake(into);
        l.data.set(k, readThrough(top, k));
        writeFake(into, l);
        await pause();
      }
    },
    async rebase(file, newBacking, hooks) {
      hooks.onSpawn(process.pid);
      const dir = path.dirname(file);
      const l = readFake(file);
      const oldTop = l.backing !== undefined ? path.join(dir, l.backing) : undefined;
      const newTop = newBacking !== undefined ? path.join(dir, newBacking) : undefined;
      const keys = new Set<number>();
      for (const f of [...chainFiles(oldTop), ...chainFiles(newTop)]) for (const k of readFake(f).data.keys()) keys.add(k);
      for (const k of keys) {
        if (l.data.has(k)) continue;
        const old = readThrough(oldTop, k);
        if (old !== readThrough(newTop, k)) {
          l.data.set(k, old);
          writeFake(file, l);
          await pause();
        }
      }
      writeFake(file, { ...(newBacking !== undefined ? { backing: newBacking } : {}), data: l.data });
    },
    copy(src, dst) {
      fs.copyFileSync(src, dst, fs.constants.COPYFILE_EXCL);
    },
    async checksum(file) {
      const buf = fs.readFileSync(file);
      return { algorithm: 'sha256', digest: createHash('sha256').update(buf).digest('hex'), size: buf.length };
    },
  };
}

/** Writes a model repository (manifests + fake layer files) into a real repository directory. */
export function materialize(repo: BackupRepository, manifests: BackupManifest[], files: ModelFiles): void {
  for (const m of manifests) {
    const disks = m.disks.map((d) => {
      const layer: ModelLayer = files.get(d.name)!.get(m.id)!;
      const file = repo.imagePath(m.vm.id, d.name, m.id);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      writeFake(file, { ...(layer.base !== undefined ? { backing: `${layer.base}.qcow2` } : {}), data: layer.data });
      const buf = fs.readFileSync(file);
      return { ...d, fileSize: buf.length, sha256: createHash('sha256').update(buf).digest('hex') };
    });
    repo.writeManifest({ ...m, disks });
  }
}
