// Which dirty maps the timeline shows: the disks where its baseline (the selected checkpoint, else
// the current one) has a bitmap. A pure function of the store's state, so the page can start the
// watch from the store's own update that brings the VM's data: the maps' first state then lands in
// the same render as the data, not in a render of its own after it.

import type { AppState, DirtyMapTarget } from './types';

export function dirtyMapTarget(s: Pick<AppState, 'selectedVmId' | 'byVm' | 'selected'>, cells: number): DirtyMapTarget | undefined {
  const vmId = s.selectedVmId;
  const v = vmId !== undefined ? s.byVm[vmId] : undefined;
  if (vmId === undefined || !v) return undefined;
  const baseline = v.checkpoints.find((c) => c.name === (s.selected ?? v.current));
  if (!baseline) return undefined;
  const disks = (v.info?.disks ?? [])
    .filter((d) => d.bitmapCapable && baseline.disks.some((x) => x.name === d.name && x.checkpoint === 'bitmap'))
    .map((d) => d.name);
  return disks.length > 0 ? { vmId, since: baseline.name, disks, cells } : undefined;
}
