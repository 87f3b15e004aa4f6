// An in-place restore of a libvirt domain (RestoreHooks): the domain must be shut off (libvirt says
// so; the images' lock says it again), and libvirt's checkpoint metadata is brought in line with
// the restored images, through libvirt's API (checkpoint-create --redefine, checkpoint-delete
// --metadata): checkpoints lose the bitmaps of the restored disks (those are not in the restored
// images); checkpoints left with no bitmap below the restored point are deleted; and when every
// checkpointed disk was restored to checkpoint C, a fresh checkpoint under C is redefined over
// fresh bitmaps in the images, so the next incremental continues from C (a new branch).

import * as path from 'node:path';
import { buildCheckpointXml, type LibvirtCheckpoint } from '../../../libvirt/checkpoint-xml';
import { deleteCheckpoint, listCheckpoints, redefineCheckpoint } from '../../../libvirt/checkpoints';
import { describeDomain, domainState } from '../../../libvirt/domains';
import type { RestoreHooks } from '../../backup/restore';
import type { LibvirtDomainHandle } from './handle';
import { ensureConnected } from './link';

/** The image file of each disk, from the domain's (inactive) XML: what an in-place restore overwrites. */
export async function inPlaceTargets(h: LibvirtDomainHandle, disks: string[]): Promise<{ disk: string; image: string }[]> {
  if (!h.local) throw new Error(`domain ${h.name} runs on a remote host (${h.uri}): an in-place restore needs its images on this machine; restore --to a new file and copy it there`);
  const desc = await describeDomain(h.conn, h.uuid, { inactive: true });
  return disks.map((disk) => {
    const d = desc.disks.find((x) => x.target === disk);
    if (!d) throw new Error(`domain ${h.name} has no disk ${disk} (it has ${desc.disks.map((x) => x.target).join(', ')})`);
    if (d.type !== 'file' || !d.source) throw new Error(`disk ${disk} of domain ${h.name} is not a file image (type ${d.type}); in-place restore handles image files`);
    return { disk, image: d.source };
  });
}

/** XML for a redefine: name, description, parent, creation time and disks (libvirt's own fields). */
function redefineXml(c: LibvirtCheckpoint, disks: LibvirtCheckpoint['disks']): string {
  const base = buildCheckpointXml({ name: c.name, ...(c.description !== undefined ? { description: c.description } : {}), disks: disks.map((d) => ({ name: d.name, checkpoint: d.checkpoint })) });
  const extra = `${c.parent !== undefined ? `  <parent><name>${escape(c.parent)}</name></parent>\n` : ''}  <creationTime>${c.creationTime ?? Math.floor(Date.now() / 1000)}</creationTime>\n`;
  return base.replace('  <disks>', `${extra}  <disks>`);
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Ancestors of `name`, itself included. */
function lineage(all: LibvirtCheckpoint[], name: string | undefined): Set<string> {
  const out = new Set<string>();
  let c = all.find((x) => x.name === name);
  while (c && !out.has(c.name)) {
    out.add(c.name);
    c = all.find((x) => x.name === c!.parent);
  }
  return out;
}

export function libvirtRestoreHooks(h: LibvirtDomainHandle): RestoreHooks {
  return {
    async assertStopped(images) {
      await ensureConnected(h.conn, 10_000);
      // The images to overwrite must be the domain's own (its inactive XML): never some other file.
      if (!h.local) throw new Error(`domain ${h.name} runs on a remote host (${h.uri}): an in-place restore needs its images on this machine; restore --to a new file and copy it there`);
      const desc = await describeDomain(h.conn, h.uuid, { inactive: true });
      const own = new Map(desc.disks.filter((d) => d.source).map((d) => [path.resolve(d.source!), d.target]));
      for (const image of images) {
        if (!own.has(path.resolve(image))) {
          throw new Error(`${image} is not an image of domain ${h.name} (its disks: ${desc.disks.map((d) => `${d.target}=${d.source ?? '?'}`).join(', ')})`);
        }
      }
      const st = await domainState(h.conn, h.uuid);
      if (st.state !== 'shutoff') {
        throw new Error(`domain ${h.name} is ${st.state === 'running' ? 'running' : st.state}; an in-place restore needs it shut off (virsh shutdown ${h.name}), or restore --to a new file`);
      }
    },
    async recordInPlace(r) {
      await ensureConnected(h.conn, 10_000);
      const all = await listCheckpoints(h.conn, h.uuid);
      const b = r.branch;
      const keep = lineage(all, b?.parent);
      // libvirt keeps a checkpoint's parent by name and re-parents children when one is deleted, so
      // the tree is written again root first: each checkpoint's metadata deleted and redefined with
      // the bitmaps the images still hold, under its nearest surviving ancestor.
      let dropped = 0;
      if (all.some((c) => c.disks.some((d) => d.checkpoint === 'bitmap' && r.disks.includes(d.name)))) {
        const byName = new Map(all.map((c) => [c.name, c]));
        const surviving = new Set<string>();
        for (const c of all) {
          const lost = c.disks.some((d) => d.checkpoint === 'bitmap' && r.disks.includes(d.name));
          if (lost) dropped++;
          const disks = c.disks.map((d) => (r.disks.includes(d.name) ? { name: d.name, checkpoint: 'no' as const } : d));
          let parent = c.parent;
          while (parent !== undefined && !surviving.has(parent)) parent = byName.get(parent)?.parent;
          await deleteCheckpoint(h.conn, h.uuid, c.name, { metadataOnly: true });
          if (disks.some((d) => d.checkpoint === 'bitmap') || keep.has(c.name)) {
            const moved: LibvirtCheckpoint = { ...c };
            if (parent === undefined) delete moved.parent;
            else moved.parent = parent;
            await redefineCheckpoint(h.conn, h.uuid, redefineXml(moved, disks));
            surviving.add(c.name);
          }
        }
      }
      if (!b) return { dropped };
      if (!all.some((c) => c.name === b.parent)) return { dropped, noBranch: `checkpoint ${b.parent} is not in libvirt's metadata of ${h.name}` };
      if (all.some((c) => c.name === b.name)) throw new Error(`checkpoint ${b.name} already exists in libvirt's metadata of ${h.name}`);
      await b.addBitmaps();
      const parent = all.find((c) => c.name === b.parent)!;
      const disks = [...new Set([...parent.disks.map((d) => d.name), ...r.backup.disks.map((d) => d.name)])].map((name) => ({ name, checkpoint: (b.bitmapDisks.includes(name) ? 'bitmap' : 'no') as 'bitmap' | 'no' }));
      const xml = redefineXml({ name: b.name, description: `restored from backup ${r.backup.id} (the point of checkpoint ${b.parent}); new branch`, parent: b.parent, creationTime: Math.floor(Date.now() / 1000), disks, hasDomain: false }, disks);
      await redefineCheckpoint(h.conn, h.uuid, xml);
      return { dropped, branch: { checkpoint: b.name, parent: b.parent, layout: 'independent' } };
    },
  };
}
