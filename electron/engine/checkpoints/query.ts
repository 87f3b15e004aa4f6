// Reading checkpoint metadata: the virsh list filters (PURE), and a read-only view of a VM's
// recorded metadata for when its QEMU is not running (virsh lists checkpoints of an inactive
// domain too). Nothing here talks to QEMU.

import type { Checkpoint, ListFilter } from '../../../shared/domain';
import { MetadataStore } from './store';
import { formatCheckpointXml } from './xml';

/** The checkpoints `filter` selects, with virsh's semantics (oldest first unless topological). */
export function listCheckpoints(checkpoints: ReadonlyMap<string, Checkpoint>, filter: ListFilter = {}): Checkpoint[] {
  const all = [...checkpoints.values()].sort((a, b) => a.createdAtMs - b.createdAtMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const children = new Map<string, Checkpoint[]>();
  for (const cp of all) {
    if (cp.parent !== undefined && checkpoints.has(cp.parent)) children.set(cp.parent, [...(children.get(cp.parent) ?? []), cp]);
  }
  const isRoot = (cp: Checkpoint) => cp.parent === undefined || !checkpoints.has(cp.parent);
  if (filter.roots && filter.from !== undefined) throw new Error('list: "roots" and "from" cannot be combined');
  if (filter.descendants && filter.from === undefined) throw new Error('list: "descendants" needs "from"');
  let out = all;
  if (filter.from !== undefined) {
    if (!checkpoints.has(filter.from)) throw new Error(`checkpoint ${filter.from} not found`);
    if (filter.descendants) {
      const below = new Set<string>();
      const walk = (n: string) => {
        for (const c of children.get(n) ?? []) {
          if (below.has(c.name)) continue;
          below.add(c.name);
          walk(c.name);
        }
      };
      walk(filter.from);
      out = out.filter((cp) => below.has(cp.name));
    } else {
      out = out.filter((cp) => cp.parent === filter.from);
    }
  }
  if (filter.roots) out = out.filter(isRoot);
  const leaf = (cp: Checkpoint) => !children.has(cp.name);
  if (filter.leaves && !filter.noLeaves) out = out.filter(leaf);
  if (filter.noLeaves && !filter.leaves) out = out.filter((cp) => !leaf(cp));
  if (filter.topological) {
    // Parents before children: depth-first from the roots, siblings by creation time.
    const keep = new Set(out.map((cp) => cp.name));
    const ordered: Checkpoint[] = [];
    const visit = (cp: Checkpoint) => {
      if (keep.has(cp.name)) ordered.push(cp);
      for (const c of children.get(cp.name) ?? []) visit(c);
    };
    for (const r of all.filter(isRoot)) visit(r);
    out = ordered;
  }
  return out;
}

/** What a caller can read about a VM's checkpoints: the live engine, or the recorded metadata. */
export interface CheckpointReader {
  list(filter?: ListFilter): Checkpoint[];
  get(name: string): Checkpoint;
  current(): Checkpoint | undefined;
  dumpXml(name: string, options?: { size?: boolean; noDomain?: boolean }): Promise<string>;
}

/** A VM's checkpoints as recorded under STATE/vms/<vm-key>/, read once; for a VM whose QEMU is not running. */
export class RecordedCheckpoints implements CheckpointReader {
  private readonly checkpoints: Map<string, Checkpoint>;
  private readonly currentName: string | undefined;

  /** `label` names the VM in errors ("tidemark-demo"). Throws, naming the file, on damaged metadata. */
  constructor(stateDir: string, vmId: string, private readonly label: string) {
    const { vm, checkpoints } = new MetadataStore(stateDir, vmId).load();
    this.checkpoints = checkpoints;
    this.currentName = vm?.current;
  }

  list(filter?: ListFilter): Checkpoint[] {
    return listCheckpoints(this.checkpoints, filter);
  }

  get(name: string): Checkpoint {
    const cp = this.checkpoints.get(name);
    if (!cp) throw new Error(`checkpoint ${name} not found`);
    return cp;
  }

  current(): Checkpoint | undefined {
    return this.currentName === undefined ? undefined : this.checkpoints.get(this.currentName);
  }

  async dumpXml(name: string, options: { size?: boolean; noDomain?: boolean } = {}): Promise<string> {
    const cp = this.get(name);
    if (options.size) throw new Error(`VM ${this.label} is not running: sizes are measured from its live bitmaps (dump without --size, or start the VM)`);
    return formatCheckpointXml(cp, { noDomain: options.noDomain });
  }
}
