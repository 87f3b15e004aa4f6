// Health problems as the CLI shows them: in full (with what they mean) in domain-info and
// checkpoint-info, and as warnings on stderr where a listing would otherwise look fine.

import type { HealthIssue } from '../../shared/domain';
import { safeCell } from './format';

const RANK: Record<HealthIssue['severity'], number> = { error: 0, warning: 1, info: 2 };
const LABEL: Record<HealthIssue['severity'], string> = { error: 'error', warning: 'warning', info: 'note' };

function worstFirst(issues: HealthIssue[]): HealthIssue[] {
  return [...issues].sort((a, b) => RANK[a.severity] - RANK[b.severity]);
}

/** "ok", or "2 errors, 1 warning, 1 note" (the value of domain-info's Health: line). */
export function healthSummary(issues: HealthIssue[]): string {
  if (issues.length === 0) return 'ok';
  const parts: string[] = [];
  for (const sev of ['error', 'warning', 'info'] as const) {
    const n = issues.filter((i) => i.severity === sev).length;
    if (n > 0) parts.push(`${n} ${LABEL[sev]}${n === 1 ? '' : 's'}`);
  }
  return parts.join(', ');
}

/** Every issue, worst first: what is wrong, and under it what that means. */
export function formatHealth(issues: HealthIssue[]): string {
  const w = Math.max(...issues.map((i) => LABEL[i.severity].length));
  return worstFirst(issues)
    .map((i) => `  ${LABEL[i.severity].padEnd(w)}  ${safeCell(i.message)}\n  ${' '.repeat(w)}  ${safeCell(i.consequence)}\n`)
    .join('');
}

/**
 * stderr lines for the problems that matter (errors and warnings) under a listing: at most `max`
 * of them, then where the details are. Empty when all is well.
 */
export function healthWarnings(issues: HealthIssue[], max = 5): string {
  const bad = worstFirst(issues.filter((i) => i.severity !== 'info'));
  if (bad.length === 0) return '';
  let s = bad.slice(0, max).map((i) => `warning: ${safeCell(i.message)}\n`).join('');
  if (bad.length > max) s += `warning: … and ${bad.length - max} more\n`;
  s += "warning: see 'tidemark domain-info' for what this means for backups\n";
  return s;
}

/** stderr lines for one checkpoint's problems, each with its consequence (checkpoint-info). */
export function checkpointWarnings(issues: HealthIssue[]): string {
  return worstFirst(issues.filter((i) => i.severity !== 'info'))
    .map((i) => `warning: ${safeCell(i.message)}: ${safeCell(i.consequence)}\n`)
    .join('');
}
