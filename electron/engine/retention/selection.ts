// PURE: which points of one VM stay, from a keep policy, points pinned for a reason, and a
// maximum chain length (forever-forward: the oldest points of a chain that is too long are folded
// into the layer above them and disappear as points of their own).

import type { BackupManifest } from '../backup/manifest';
import { ancestors, buildForest, disksOf, preOrder } from './forest';
import { selectByPolicy, validatePolicy, type KeepPolicy } from './policy';

export interface SelectionOptions {
  /** Keep rules; absent or all zero: every point is kept by policy (merge only). */
  policy?: KeepPolicy;
  /** No disk's chain (full + layers above it) longer than this many layers after the plan. */
  maxChain?: number;
  /** Time zone for the keep rules' periods (default: the host's). */
  timeZone?: string;
  /** Points kept whatever the policy says, with why (max-chain may still fold them). */
  pinned?: Map<string, string>;
}

export interface Selection {
  /** Kept point → why (rule names such as "keep-daily", or a pin's reason). */
  kept: Map<string, string[]>;
  /** Removed point → why. */
  removed: Map<string, string>;
}

export function validateMaxChain(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 100_000) {
    throw new Error(`--max-chain must be a whole number of layers from 1 to 100000, got ${JSON.stringify(n)}`);
  }
  return n;
}

export function selectPoints(manifests: BackupManifest[], options: SelectionOptions): Selection {
  const policy = validatePolicy(options.policy ?? {});
  const byPolicy = selectByPolicy(manifests.map((m) => ({ id: m.id, time: m.startedAt })), policy, { timeZone: options.timeZone });
  const kept = new Map<string, string[]>();
  const removed = new Map<string, string>();
  for (const m of manifests) {
    const rules: string[] = byPolicy.keep.get(m.id) ?? [];
    const pin = options.pinned?.get(m.id);
    if (rules.length > 0 || pin !== undefined || Object.keys(policy).length === 0) kept.set(m.id, pin !== undefined ? [...rules, pin] : rules);
    else removed.set(m.id, 'no keep rule selects it');
  }
  if (options.maxChain !== undefined) {
    const n = validateMaxChain(options.maxChain);
    for (const disk of disksOf(manifests)) {
      const forest = buildForest(manifests, disk);
      for (const id of preOrder(forest)) {
        if (!kept.has(id)) continue;
        const keptAncestors = ancestors(forest, id).filter((a) => kept.has(a));
        const excess = keptAncestors.length + 1 - n;
        // The root-most `excess` kept ancestors go; every point that remains keeps its content.
        for (const a of keptAncestors.slice(keptAncestors.length - Math.max(0, excess))) {
          kept.delete(a);
          removed.set(a, `--max-chain ${n}: folded into the layers above it (the chain of ${disk} to ${id} was ${keptAncestors.length + 1} layers)`);
        }
      }
    }
  }
  return { kept, removed };
}
