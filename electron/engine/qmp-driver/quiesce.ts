// Quiesce for the QMP driver: the one transaction of a checkpoint or a backup runs inside a guest
// agent freeze (engine/quiesce: the agent found from the VM, or --agent unix:PATH). Only the
// transaction is frozen, never the copy that follows; the thaw is guaranteed by qga/freeze.ts.

import type { QuiesceOption } from '../../../shared/domain';
import type { AroundTransaction } from '../checkpoints/api';
import { openGuestAgent, quiesced } from '../quiesce/agent';
import type { QmpExecutor } from '../vm/discovery';

/** Refuses now, before a backup prepares anything, when no guest agent answers (the agent is opened and closed). */
export async function checkGuestAgent(client: QmpExecutor, q: QuiesceOption): Promise<void> {
  const agent = await openGuestAgent(client, q.agent !== undefined ? { agent: q.agent } : {});
  agent.close();
}

export function quiesceAround(client: QmpExecutor, q: QuiesceOption, log: (line: string) => void = () => undefined): AroundTransaction {
  return async <T>(transaction: () => Promise<T>): Promise<T> => {
    const r = await quiesced(client, () => transaction(), { ...(q.agent !== undefined ? { agent: q.agent } : {}), freeze: { log } });
    log(`quiesced: ${r.frozen} guest file system(s) frozen for ${r.frozenMs} ms around the transaction, ${r.thawed} thawed`);
    return r.value;
  };
}
