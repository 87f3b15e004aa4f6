// Watches the checkpoint metadata of connected VMs whose driver keeps it in Tidemark's state
// directory (STATE/vms/<key>/): the CLI or another app may change it while this host holds the
// VM. A change that was not announced here makes the driver re-read before its next answer and
// tells listeners ('checkpoints:changed').

import * as fs from 'node:fs';
import * as path from 'node:path';
import { mkdirPrivate } from '../os/atomic-file';
import type { VmDriver } from '../engine/driver';
import { MetadataStore } from '../engine/checkpoints/store';

interface Watched {
  dir: string;
  checkpoints: string;
  watchers: fs.FSWatcher[];
  timer?: NodeJS.Timeout;
  /** Fingerprint of the metadata files as last read or announced. */
  known: string;
}

/** Names, inodes, sizes and mtimes of vm.json and the checkpoint files: changes on every atomic write. */
export function metadataFingerprint(dir: string, checkpointsDir: string): string {
  const stat = (f: string) => {
    try {
      const st = fs.statSync(f, { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      return '-';
    }
  };
  let files: string[] = [];
  try {
    files = fs.readdirSync(checkpointsDir).filter((f) => f.endsWith('.json')).sort();
  } catch {
    // no checkpoints directory: no checkpoints
  }
  return [stat(path.join(dir, 'vm.json')), ...files.map((f) => `${f}=${stat(path.join(checkpointsDir, f))}`)].join('|');
}

export class MetadataWatcher {
  private readonly watched = new Map<string, Watched>();
  private closed = false;

  constructor(private readonly stateDir: string, private readonly onChanged: (vmId: string) => void) {}

  watch(vm: VmDriver): void {
    this.unwatch(vm.id);
    const key = vm.identity()?.key;
    if (this.closed || vm.capabilities.metadata !== 'tidemark' || key === undefined) return;
    const store = new MetadataStore(this.stateDir, key);
    const w: Watched = { dir: store.dir, checkpoints: store.checkpointsDir, watchers: [], known: metadataFingerprint(store.dir, store.checkpointsDir) };
    const onChange = (_event: string, file: string | Buffer | null) => {
      const name = String(file ?? '');
      if (name === 'lock' || name.startsWith('.tmp-')) return;
      if (w.timer) clearTimeout(w.timer);
      w.timer = setTimeout(() => {
        w.timer = undefined;
        const now = metadataFingerprint(w.dir, w.checkpoints);
        if (this.closed || now === w.known) return; // e.g. our own change, already announced
        w.known = now;
        vm.invalidate();
        this.onChanged(vm.id);
      }, 150);
    };
    this.watched.set(vm.id, w);
    try {
      mkdirPrivate(store.checkpointsDir);
      w.watchers = [fs.watch(store.dir, onChange), fs.watch(store.checkpointsDir, onChange)];
      for (const x of w.watchers) x.on('error', () => this.unwatch(vm.id));
    } catch {
      this.unwatch(vm.id); // without a watcher, changes by others show after the next refresh
    }
  }

  /** The metadata as it is now has been announced (by a change this host made). */
  announced(vmId: string): void {
    const w = this.watched.get(vmId);
    if (w) w.known = metadataFingerprint(w.dir, w.checkpoints);
  }

  unwatch(vmId: string): void {
    const w = this.watched.get(vmId);
    if (!w) return;
    for (const x of w.watchers) x.close();
    if (w.timer) clearTimeout(w.timer);
    this.watched.delete(vmId);
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }
}
