// The contract, the demo VM and host jobs (issue 2): the channels' argument schemas and their results.

import * as v from 'valibot';
import { args, num, oneOf, optionalArg, record, text } from '../schema';
import { vmIdSchema as vmId } from './vm';

export interface LabInfo {
  running: boolean;
  vmId?: string;
  qmp: string;
  qmpSecondary: string;
  disks: { name: string; image: string; sizeBytes: number; legacy: boolean }[];
}

export const writePatternSchema = oneOf('random', 'sequential', 'hotspot');
export type WritePattern = v.InferOutput<typeof writePatternSchema>;

export const writeSimOptionsSchema = record({
  disk: text({ min: 1, max: 256 }),
  pattern: writePatternSchema,
  mib: num({ min: 1, max: 1024 * 1024, integer: true }),
  rateMibPerS: optionalArg(num({ min: 1, max: 100_000 })),
});
export type WriteSimOptions = v.InferOutput<typeof writeSimOptionsSchema>;

export interface JobInfo {
  id: string;
  kind: 'write-sim' | 'backup' | 'restore' | 'pull';
  vmId: string;
  state: 'running' | 'succeeded' | 'failed' | 'cancelled';
  title: string;
  startedAt: number;
  endedAt?: number;
  error?: string;
  /** Per disk: bytes done of bytes to do. */
  progress: { disk: string; done: number; total: number }[];
  log: string[];
}

export const labArgs = {
  'lab:status': args(),
  'lab:start': args(),
  'lab:stop': args(),
  'lab:write': args(vmId, writeSimOptionsSchema),
  'job:list': args(optionalArg(vmId)),
  'job:cancel': args(text({ min: 1, max: 200 })),
};

export interface LabResults {
  'lab:status': LabInfo;
  'lab:start': LabInfo;
  'lab:stop': LabInfo;
  'lab:write': JobInfo;
  'job:list': JobInfo[];
  'job:cancel': JobInfo;
}
