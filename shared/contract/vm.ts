// The contract, VMs and checkpoints (issue 2): the channels' argument schemas and their results.

import * as v from 'valibot';
import {
  checkpointNameSchema, createCheckpointOptionsSchema, deleteModeSchema, listFilterSchema,
  type ChangesSince, type Checkpoint, type DeleteResult, type HealthReport, type VmInfo,
} from '../domain';
import { args, optionalArg, record, text } from '../schema';

/** A VM the host knows about (the demo VM, an endpoint the user added, a libvirt domain). */
export interface VmSummary {
  id: string;
  label: string;
  endpoint: string;
  kind: 'demo' | 'endpoint' | 'libvirt';
  connection: 'connected' | 'connecting' | 'disconnected';
  /** Why it is disconnected, when it is. */
  detail?: string;
  /** libvirt: the registry id of the connection (URI) the domain belongs to; a row whose id equals it
   *  is the connection itself, shown while it has no domain to list. */
  connectionId?: string;
  /** libvirt: the domain's state as libvirt reports it (running, shutoff, paused, …). */
  domainState?: string;
}

export const vmIdSchema = text({ min: 1, max: 512 });
const vmId = vmIdSchema;
const name = checkpointNameSchema;

export const vmArgs = {
  'vm:list': args(),
  'vm:add': args(text({ min: 1, max: 1024 }), optionalArg(text({ max: 200 }))),
  'vm:remove': args(vmId),
  'vm:info': args(vmId),
  'vm:health': args(vmId),
  'checkpoint:list': args(vmId, optionalArg(listFilterSchema)),
  'checkpoint:get': args(vmId, name),
  'checkpoint:current': args(vmId),
  'checkpoint:create': args(vmId, createCheckpointOptionsSchema),
  'checkpoint:delete': args(vmId, name, deleteModeSchema),
  'checkpoint:changes': args(vmId, name),
  'checkpoint:dumpxml': args(vmId, name, optionalArg(record({ size: optionalArg(v.boolean()), noDomain: optionalArg(v.boolean()) }))),
  'checkpoint:create-xml': args(vmId, text({ max: 1024 * 1024 }), optionalArg(record({ redefine: optionalArg(v.boolean()), validate: optionalArg(v.boolean()) }))),
};

export interface VmResults {
  'vm:list': VmSummary[];
  'vm:add': VmSummary;
  'vm:remove': void;
  'vm:info': VmInfo;
  'vm:health': HealthReport;
  'checkpoint:list': Checkpoint[];
  'checkpoint:get': Checkpoint;
  'checkpoint:current': Checkpoint | null;
  'checkpoint:create': Checkpoint;
  'checkpoint:delete': DeleteResult;
  'checkpoint:changes': ChangesSince;
  'checkpoint:dumpxml': string;
  'checkpoint:create-xml': Checkpoint;
}
