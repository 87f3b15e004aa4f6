// Running planned actions on QEMU, and reading from it what plans need. Each operation is one QMP
// `transaction` for all disks (a refusal by QEMU means no disk changed), with a clear error
// beforehand when an action would touch a bitmap held by a job. Also: the live VM, re-discovered
// before every operation; the view of it that plans read; and measuring "changes since" with
// temporary bitmaps that are always removed afterwards.

import type { ChangesSince, Checkpoint, VmInfo } from '../../../shared/domain';
import { QmpConnectionError, QmpError } from '../../qmp/errors';
import { TEMP_BITMAP_PREFIX } from '../names';
import { discoverVm, type QmpExecutor } from '../vm/discovery';
import type { QmpAction } from './api';
import type { LiveBitmap, PlanLive, PlanState } from './plan';
import { changesSinceBitmaps, planTempBitmap } from './plan-changes';

/** The live VM again, with a clear error when its QEMU is gone or the endpoint now has another VM. */
export async function rediscoverVm(client: QmpExecutor, endpoint: string, vmId: string): Promise<VmInfo> {
  let vm: VmInfo;
  try {
    vm = await discoverVm(client, endpoint);
  } catch (e) {
    if (e instanceof QmpConnectionError) throw new Error(`QEMU at ${endpoint} is gone (${e.message}); nothing was changed`, { cause: e });
    throw e;
  }
  if (vm.id !== vmId) throw new Error(`the VM at ${endpoint} is now ${vm.id}, not ${vmId}; reopen the engine`);
  return vm;
}

/** What plans see of the VM: each disk's format node, and whether a bitmap is there and consistent. */
export function liveView(vm: VmInfo, vmLabel: string): PlanLive {
  const disks = new Map(vm.disks.map((d) => [d.name, d]));
  return {
    node: (disk) => {
      const d = disks.get(disk);
      if (!d) throw new Error(`disk ${disk} is not attached to VM ${vmLabel}`);
      return d.nodeName;
    },
    bitmap: (disk, name): LiveBitmap => {
      const b = disks.get(disk)?.bitmaps.find((x) => x.name === name);
      return !b ? 'missing' : b.inconsistent ? 'inconsistent' : 'ok';
    },
  };
}

/** Runs one QMP transaction; a refusal by QEMU means no disk changed. */
export async function runTransaction(client: QmpExecutor, actions: QmpAction[], what: string): Promise<void> {
  if (actions.length === 0) return;
  try {
    await client.execute('transaction', { actions });
  } catch (e) {
    if (e instanceof QmpError) throw new Error(`${what} failed; QEMU changed nothing: ${e.desc}`, { cause: e });
    throw new Error(`${what}: the outcome is unknown (${(e as Error).message}); check the VM's health`, { cause: e });
  }
}

/** A clear error instead of QEMU's when an action would touch a bitmap held by a job. */
export function assertNotBusy(actions: QmpAction[], vm: VmInfo): void {
  const byNode = new Map(vm.disks.map((d) => [d.nodeName, d]));
  for (const a of actions) {
    const disk = byNode.get(String(a.data.node));
    if (!disk) continue;
    const names = [a.data.name, a.data.target, ...((a.data.bitmaps as unknown[] | undefined) ?? [])].filter((n): n is string => typeof n === 'string');
    for (const n of names) {
      if (disk.bitmaps.find((b) => b.name === n)?.busy) throw new Error(`bitmap ${n} on ${disk.name} is in use by a running job; try again when it has finished`);
    }
  }
}

/**
 * Dirty bytes per disk since `cp`: one transaction fills a temporary bitmap per usable disk, their
 * counts are read, and the temporary bitmaps are removed whatever happens. A disk where the changes
 * cannot be known gets usable: false and the reason.
 */
export async function measureChanges(client: QmpExecutor, vm: VmInfo, state: PlanState, live: PlanLive, cp: Checkpoint, tag: string): Promise<ChangesSince> {
  const rows: ChangesSince['disks'] = [];
  const temps: { disk: string; node: string; tmp: string }[] = [];
  const actions: QmpAction[] = [];
  for (const d of vm.disks) {
    const row = { disk: d.name, bytes: 0, granularity: d.granularity, virtualSize: d.virtualSize, usable: false } as ChangesSince['disks'][number];
    rows.push(row);
    try {
      const bitmaps = changesSinceBitmaps(state, cp.name, d.name, live);
      row.granularity = d.bitmaps.find((b) => b.name === bitmaps[0])?.granularity ?? d.granularity;
      const tmp = `${TEMP_BITMAP_PREFIX}changes-${tag}-${temps.length}`;
      actions.push(...planTempBitmap(state, cp.name, d.name, tmp, live));
      temps.push({ disk: d.name, node: d.nodeName, tmp });
      row.usable = true;
    } catch (e) {
      row.reason = (e as Error).message;
    }
  }
  assertNotBusy(actions, vm);
  try {
    await runTransaction(client, actions, `measuring changes since ${cp.name}`);
    if (temps.length) {
      const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; count: number }[] }[]>('query-named-block-nodes', { flat: true });
      for (const t of temps) {
        const count = nodes.find((n) => n['node-name'] === t.node)?.['dirty-bitmaps']?.find((b) => b.name === t.tmp)?.count;
        const row = rows.find((r) => r.disk === t.disk)!;
        if (count === undefined) {
          row.usable = false;
          row.reason = `temporary bitmap ${t.tmp} vanished before it could be read`;
        } else row.bytes = count;
      }
    }
  } finally {
    await removeTemps(client, temps);
  }
  return { checkpoint: cp.name, disks: rows };
}

async function removeTemps(client: QmpExecutor, temps: { node: string; tmp: string }[]): Promise<void> {
  if (temps.length === 0) return;
  const actions = temps.map((t) => ({ type: 'block-dirty-bitmap-remove', data: { node: t.node, name: t.tmp } }));
  try {
    await client.execute('transaction', { actions });
  } catch {
    // Some were never added (the add failed): remove the others one by one.
    for (const a of actions) await client.execute('block-dirty-bitmap-remove', a.data).catch(() => undefined);
  }
}
