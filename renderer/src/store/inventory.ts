// The backups view and the fleet overview in the store (issue 12): a VM's inventory (backup:inventory),
// verifying and deleting backups, and the fleet (vm:info, checkpoint:list and vm:health of every
// connected VM, plus backup:fleet). Read when a view opens or asks; nothing here polls.

import type { StoreApi } from 'zustand/vanilla';
import type { AppApi } from '../../../shared/contract';
import type { AppState, FleetVmFacts, InventorySlice } from './types';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function createInventorySlice(api: AppApi, set: StoreApi<AppState>['setState'], get: StoreApi<AppState>['getState']): InventorySlice {
  const seq = new Map<string, number>();
  // Never an undefined trailing argument: JSON would turn it into null.
  const repo = () => get().repository;

  const facts = async (vmId: string): Promise<FleetVmFacts> => {
    try {
      const [info, checkpoints, health] = await Promise.all([
        api.invoke('vm:info', vmId),
        api.invoke('checkpoint:list', vmId),
        api.invoke('vm:health', vmId).catch(() => undefined),
      ]);
      return { status: info.status, checkpoints: checkpoints.length, ...(health ? { issues: health.issues } : {}) };
    } catch (e) {
      return { error: message(e) };
    }
  };

  return {
    inventory: {},
    verifying: {},
    fleet: { vms: {}, loading: false },

    async loadInventory(vmId) {
      const n = (seq.get(vmId) ?? 0) + 1;
      seq.set(vmId, n);
      set((s) => ({ inventory: { ...s.inventory, [vmId]: { ...s.inventory[vmId], loading: true } } }));
      try {
        const r = repo();
        const data = r === undefined ? await api.invoke('backup:inventory', vmId) : await api.invoke('backup:inventory', vmId, r);
        if (seq.get(vmId) !== n) return;
        set((s) => ({ inventory: { ...s.inventory, [vmId]: { data, loading: false } } }));
      } catch (e) {
        if (seq.get(vmId) !== n) return;
        set((s) => ({ inventory: { ...s.inventory, [vmId]: { ...s.inventory[vmId], loading: false, error: message(e) } } }));
      }
    },

    async verifyBackups(vmId, ids) {
      set((s) => ({ verifying: { ...s.verifying, ...Object.fromEntries(ids.map((id) => [id, true as const])) } }));
      try {
        const r = repo();
        const report = r === undefined ? await api.invoke('backup:verify', undefined, [...ids]) /* null over JSON: optionalArg reads it as not given */ : await api.invoke('backup:verify', r, [...ids]);
        const bad = report.backups.filter((b) => !b.ok).length;
        get().announce(bad === 0 ? `Verified ${ids.length === 1 ? `backup ${ids[0]}` : `${ids.length} backups`}: no problems` : `Verification found problems in ${bad} of ${report.backups.length} backups`);
        return report;
      } finally {
        set((s) => {
          const verifying = { ...s.verifying };
          for (const id of ids) delete verifying[id];
          return { verifying };
        });
        await get().loadInventory(vmId);
      }
    },

    async backupDetails(id) {
      const r = repo();
      return r === undefined ? api.invoke('backup:info', id) : api.invoke('backup:info', id, r);
    },

    async deleteBackup(vmId, id, withDependents) {
      const r = repo();
      const { deleted } = await api.invoke('backup:delete', id, { withDependents, ...(r !== undefined ? { repo: r } : {}) });
      get().announce(`Deleted backup${deleted.length > 1 ? 's' : ''} ${deleted.join(', ')}`);
      await Promise.all([get().loadInventory(vmId), get().loadBackups(vmId)]);
      return deleted;
    },

    async loadFleet() {
      set((s) => ({ fleet: { ...s.fleet, loading: true } }));
      try {
        const r = repo();
        const connected = get().vms.filter((v) => v.connection === 'connected');
        const [backups, ...each] = await Promise.all([
          r === undefined ? api.invoke('backup:fleet') : api.invoke('backup:fleet', r),
          ...connected.map((v) => facts(v.id)),
        ]);
        const vms = Object.fromEntries(connected.map((v, i) => [v.id, each[i]!]));
        set({ fleet: { backups, vms, loading: false, loadedAt: Date.now() } });
      } catch (e) {
        set((s) => ({ fleet: { ...s.fleet, loading: false, error: message(e) } }));
      }
    },
  };
}
