// When the app (desktop or web host) starts the demo VM by itself: only on a first run, so a
// user who added their own VMs never gets a QEMU process they did not ask for.

import type { LabInfo, VmSummary } from '../../shared/contract';

export function shouldStartDemo(vms: VmSummary[], lab: LabInfo): boolean {
  return !lab.running && !vms.some((vm) => vm.kind === 'endpoint');
}
