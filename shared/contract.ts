// The one contract between the renderer (or any other caller: the CLI, the web host) and the
// engine: invoke channels with their argument tuples and results, pushed events, and runtime
// validation. Electron's preload bridge, the WebSocket host and the CLI all go through dispatch().
//
// Each area keeps its channels in shared/contract/<area>.ts: the argument schemas (valibot; they
// give both the check and the argument types) and a Results interface. This file only assembles
// them; import the contract from here.

import type * as v from 'valibot';
import { check, ValidationError, type Validator } from './schema';
import { backupArgs, type BackupResults } from './contract/backups';
import type { EventMap, EventName } from './contract/events';
import { inventoryArgs, type InventoryResults } from './contract/inventory';
import { labArgs, type LabResults } from './contract/lab';
import { pullArgs, type PullResults } from './contract/pull';
import { retentionArgs, type RetentionResults } from './contract/retention';
import { vmArgs, type VmResults } from './contract/vm';

export * from './contract/vm';
export * from './contract/lab';
export * from './contract/manifest';
export * from './contract/backups';
export * from './contract/inventory';
export * from './contract/pull';
export * from './contract/retention';
export * from './contract/events';
export { ValidationError, type Validator } from './schema';

const argSchemas = { ...vmArgs, ...labArgs, ...backupArgs, ...inventoryArgs, ...pullArgs, ...retentionArgs };
type ArgSchemas = typeof argSchemas;
interface Results extends VmResults, LabResults, BackupResults, InventoryResults, PullResults, RetentionResults {}

export type InvokeChannel = keyof ArgSchemas;
export type InvokeMap = {
  [C in InvokeChannel]: { args: v.InferOutput<ArgSchemas[C]>; result: C extends keyof Results ? Results[C] : never };
};
export type Args<C extends InvokeChannel> = InvokeMap[C]['args'];
export type Result<C extends InvokeChannel> = InvokeMap[C]['result'];

// Every channel has both an argument schema and a result: a channel missing on one side fails here.
type NoneMissing<T extends never> = T;
type _EveryChannelHasAResult = NoneMissing<Exclude<InvokeChannel, keyof Results>>;
type _EveryResultHasAChannel = NoneMissing<Exclude<keyof Results, InvokeChannel>>;

export type Handlers = { [C in InvokeChannel]: (...args: Args<C>) => Promise<Result<C>> };

/** What the renderer sees (window.api in Electron, a WebSocket client in a browser). */
export interface AppApi {
  invoke<C extends InvokeChannel>(channel: C, ...args: Args<C>): Promise<Result<C>>;
  on<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): () => void;
  readonly transport: 'electron' | 'websocket' | 'memory';
}

/** Per channel: checks an argument list and returns it typed (errors are named after the channel: `vm:info[0]: …`). */
export const argValidators = Object.fromEntries(
  Object.entries(argSchemas).map(([channel, schema]) => [channel, (value: unknown, path: string) => check(schema, value, path)]),
) as { [C in InvokeChannel]: Validator<Args<C>> };

export function isInvokeChannel(channel: unknown): channel is InvokeChannel {
  return typeof channel === 'string' && Object.prototype.hasOwnProperty.call(argSchemas, channel);
}

/** Validates channel and arguments, then calls the handler. Used by every transport. */
export async function dispatch(handlers: Handlers, channel: unknown, args: unknown): Promise<unknown> {
  if (!isInvokeChannel(channel)) throw new ValidationError(`unknown channel ${JSON.stringify(String(channel)).slice(0, 80)}`);
  const validated = argValidators[channel](args, channel) as unknown[];
  const handler = handlers[channel] as (...a: unknown[]) => Promise<unknown>;
  return handler(...validated);
}
