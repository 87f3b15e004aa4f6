// An in-place restore as Tidemark's own checkpoint metadata records it (QMP mode: STATE/vms/<key>/).
// The images' lock already proves the VM stopped (qemu-img takes QEMU's lock); the restored disks
// lose their bitmaps in every older checkpoint; a new branch's checkpoint becomes current.

import type { RestoreHooks } from '../backup/restore';
import { MetadataStore } from '../checkpoints/store';

export function metadataRestoreHooks(stateDir: string, vmKey: string): RestoreHooks {
  return {
    async assertStopped() {
      // restore.ts opened every image without sharing: QEMU holds a lock on the images of a running VM.
    },
    async recordInPlace(r) {
      const store = new MetadataStore(stateDir, vmKey);
      const m = r.backup;
      const release = await store.lock(`restore of backup ${m.id}`);
      try {
        const meta = store.load();
        // The restored images hold none of the old bitmaps: those checkpoints no longer track these disks.
        let dropped = 0;
        for (const cp of meta.checkpoints.values()) {
          let changed = false;
          for (const d of cp.disks) {
            if (d.checkpoint !== 'bitmap' || !r.disks.includes(d.name)) continue;
            d.checkpoint = 'no';
            delete d.bitmap;
            d.incomplete = `its bitmap was dropped when ${d.name} was restored in place from backup ${m.id} (${r.when})`;
            changed = true;
          }
          if (changed) {
            store.writeCheckpoint(cp);
            dropped++;
          }
        }
        const b = r.branch;
        if (!b) return { dropped };
        if (!meta.vm || !meta.checkpoints.has(b.parent)) return { dropped, noBranch: `checkpoint ${b.parent} is not in the metadata` };
        if (meta.checkpoints.has(b.name)) throw new Error(`checkpoint ${b.name} already exists`);
        const now = Date.now();
        await b.addBitmaps();
        const layout = meta.vm.layout ?? m.layout ?? 'independent';
        const known = new Set(meta.checkpoints.get(b.parent)!.disks.map((d) => d.name));
        for (const d of m.disks) known.add(d.name);
        store.writeCheckpoint({
          name: b.name,
          description: `restored from backup ${m.id} (the point of checkpoint ${b.parent}); new branch`,
          parent: b.parent,
          creationTime: Math.floor(now / 1000),
          createdAtMs: now,
          disks: [...known].map((disk) => (b.bitmapDisks.includes(disk) ? { name: disk, checkpoint: 'bitmap' as const, bitmap: b.name } : { name: disk, checkpoint: 'no' as const })),
          layout,
        });
        store.writeVm({ ...meta.vm, current: b.name, layout });
        return { dropped, branch: { checkpoint: b.name, parent: b.parent, layout } };
      } finally {
        release();
      }
    },
  };
}
