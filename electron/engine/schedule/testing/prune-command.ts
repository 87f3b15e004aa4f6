// Test stand-in for `tidemark [--connect E] [--state-dir S] backup-prune [--repo R] --keep-… N …
// [--max-chain N]` (see tidemark-stub.cjs): the VM is the one behind --connect, as in the CLI.
// Exit status: 0 done, 75 refused because a backup or prune of the VM runs, 1 any other error.

import * as path from 'node:path';
import { QmpClient } from '../../../qmp/client';
import { BackupRepository } from '../../backup/repository';
import { CheckpointEngine } from '../../checkpoints/engine';
import { parseRetentionFlags } from '../../retention/policy-args';
import { formatRetentionTable } from '../../retention/preview';
import { applyRetention, RetentionBusyError } from '../../retention/retention';

function take(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const [value] = argv.splice(i, 2).slice(1);
  return value;
}

export async function main(argv: string[]): Promise<number> {
  const rest = [...argv];
  const connect = take(rest, '--connect');
  const stateDir = take(rest, '--state-dir');
  const repoDir = take(rest, '--repo');
  const { policy, maxChain } = parseRetentionFlags(rest);
  if (!connect || !stateDir) {
    process.stderr.write('backup-prune: --connect and --state-dir are required here\n');
    return 1;
  }
  const client = await QmpClient.connect(connect);
  try {
    const engine = await CheckpointEngine.open(client, { endpoint: connect, stateDir });
    const repo = BackupRepository.open(repoDir ?? path.join(stateDir, 'backups'));
    const out = await applyRetention({ repo, vmId: engine.vmId, policy, maxChain });
    for (const line of formatRetentionTable(out.preview)) process.stdout.write(`${line}\n`);
    await engine.close();
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    process.stderr.write(`backup-prune: ${msg}\n`);
    return e instanceof RetentionBusyError ? 75 : 1;
  } finally {
    await client.close();
  }
}
