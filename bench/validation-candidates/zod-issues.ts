// zod's issue → the contract's one-line message (the zod candidates' equivalent of shared/schema.ts's describeIssue).
import type { core } from 'zod';
import { describeValue } from '../../shared/schema';

export function describeZodIssue(issue: core.$ZodIssue, root: string): string {
  let where = root;
  for (const key of issue.path) where += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  const got = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys': return `${where}: unexpected field ${JSON.stringify(issue.keys[0])}`;
    case 'invalid_type': return `${where}: expected ${issue.expected === 'int' ? 'an integer' : `a ${issue.expected}`}, got ${describeValue(got)}`;
    case 'invalid_value': return `${where}: expected one of ${issue.values.map((x) => JSON.stringify(x)).join(', ')}, got ${describeValue(got)}`;
    case 'too_small': return `${where}: ${issue.origin === 'number' ? `must be at least ${issue.minimum}` : `shorter than ${issue.minimum}`}`;
    case 'too_big': return `${where}: ${issue.origin === 'number' ? `must be at most ${issue.maximum}` : `longer than ${issue.maximum}`}`;
    default: return `${where}: ${issue.message}`;
  }
}
