// PURE: the retention simulator's form (text fields as typed) → the policy and chain limit the
// engine takes, or the first problem in the engine's own words; and the few figures the dialog
// shows from a preview (points removed, layers merged, bytes freed).

import type { KeepPolicy, RetentionPreview } from '../../../shared/contract';

export const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const satisfies readonly (keyof KeepPolicy)[];
export type PolicyForm = Record<(typeof RULES)[number] | 'maxChain', string>;

export const EMPTY_FORM: PolicyForm = { last: '', hourly: '', daily: '', weekly: '', monthly: '', yearly: '', maxChain: '' };

export type ParsedForm = { ok: true; policy?: KeepPolicy; maxChain?: number } | { ok: false; problem: string };

function whole(text: string): number | undefined | 'bad' {
  const t = text.trim();
  if (t === '') return undefined;
  if (!/^\d{1,7}$/.test(t)) return 'bad';
  return Number(t);
}

export function parsePolicyForm(f: PolicyForm): ParsedForm {
  const policy: KeepPolicy = {};
  for (const r of RULES) {
    const n = whole(f[r]);
    if (n === 'bad' || (typeof n === 'number' && n > 1_000_000)) return { ok: false, problem: `Keep ${r}: a whole number from 0 to 1000000.` };
    if (n !== undefined && n > 0) policy[r] = n;
  }
  const chain = whole(f.maxChain);
  if (chain === 'bad' || chain === 0 || (typeof chain === 'number' && chain > 10_000)) return { ok: false, problem: 'Max chain: a whole number of layers from 1 to 10000.' };
  const hasPolicy = Object.keys(policy).length > 0;
  if (!hasPolicy && chain === undefined) return { ok: false, problem: 'Choose at least one keep rule above 0, or a max chain length.' };
  return { ok: true, ...(hasPolicy ? { policy } : {}), ...(chain !== undefined ? { maxChain: chain } : {}) };
}

export interface PreviewFigures {
  kept: number;
  removed: number;
  /** Layers whose data moves into a later point's layer. */
  merged: number;
  deleted: number;
  bytesFreed: { atLeast: number; atMost: number };
}

export function previewFigures(p: RetentionPreview): PreviewFigures {
  const layers = p.rows.flatMap((r) => r.layers);
  return {
    kept: p.rows.filter((r) => r.keep).length,
    removed: p.rows.filter((r) => !r.keep).length,
    merged: layers.filter((l) => l.action === 'merge').length,
    deleted: layers.filter((l) => l.action === 'delete').length,
    bytesFreed: { atLeast: Math.max(0, p.bytesFreed.atLeast), atMost: Math.max(0, p.bytesFreed.atMost) },
  };
}
