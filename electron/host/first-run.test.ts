import { describe, expect, it } from 'vitest';
import type { LabInfo, VmSummary } from '../../shared/contract';
import { shouldStartDemo } from './first-run';

const lab = (running: boolean): LabInfo => ({ running, qmp: 'unix:/s', qmpSecondary: 'unix:/s2', disks: [] });
const vm = (kind: VmSummary['kind']): VmSummary => ({ id: kind, label: kind, endpoint: 'unix:/x', kind, connection: 'connected' });

describe('shouldStartDemo', () => {
  it('starts the demo only when nothing else is configured and it is not running', () => {
    expect(shouldStartDemo([], lab(false))).toBe(true);
    expect(shouldStartDemo([vm('demo')], lab(false))).toBe(true);
    expect(shouldStartDemo([vm('demo')], lab(true))).toBe(false);
    expect(shouldStartDemo([vm('endpoint')], lab(false))).toBe(false);
  });
});
