// PURE: the command-line vocabulary of retention options, both ways: schedules write these flags
// into the commands they install, and the CLI reads them back (--keep-last N … --max-chain N).

import { POLICY_FIELDS, policyFlag, validatePolicy, type KeepPolicy } from './policy';
import { validateMaxChain } from './selection';

export interface RetentionArgs {
  policy: KeepPolicy;
  maxChain?: number;
}

/** The flags for a policy and chain limit, in a fixed order (counts of 0 are left out). */
export function retentionFlags(r: RetentionArgs): string[] {
  const out: string[] = [];
  const p = validatePolicy(r.policy);
  for (const f of POLICY_FIELDS) if (p[f] !== undefined) out.push(policyFlag(f), String(p[f]));
  if (r.maxChain !== undefined) out.push('--max-chain', String(validateMaxChain(r.maxChain)));
  return out;
}

function count(flag: string, text: string | undefined): number {
  if (text === undefined) throw new Error(`${flag} needs a number`);
  if (!/^\d+$/.test(text)) throw new Error(`${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** Reads --keep-* and --max-chain (as "--flag N" or "--flag=N") out of argv; returns them and the other arguments. */
export function parseRetentionFlags(argv: string[]): RetentionArgs & { rest: string[] } {
  const policy: KeepPolicy = {};
  let maxChain: number | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const field = POLICY_FIELDS.find((f) => policyFlag(f) === name);
    if (field === undefined && name !== '--max-chain') {
      rest.push(arg);
      continue;
    }
    const value = count(name, eq >= 0 ? arg.slice(eq + 1) : argv[++i]);
    if (field !== undefined) policy[field] = value;
    else maxChain = validateMaxChain(value);
  }
  return { policy: validatePolicy(policy), ...(maxChain !== undefined ? { maxChain } : {}), rest };
}
