// `virsh domjobinfo --rawstats` → a typed job record. --rawstats prints "Job type: N", a blank line,
// then libvirt's typed parameters as "key: value" (virDomainGetJobStats), which, unlike the human
// table, carry exact byte counts and the error message.

export type JobType = 'none' | 'bounded' | 'unbounded' | 'completed' | 'failed' | 'cancelled';

/** virDomainJobType, in order. */
const JOB_TYPES: JobType[] = ['none', 'bounded', 'unbounded', 'completed', 'failed', 'cancelled'];
/** virDomainJobOperation, in order (libvirt 9.0). */
const OPERATIONS = ['unknown', 'start', 'save', 'restore', 'migration-in', 'migration-out', 'snapshot', 'snapshot-revert', 'dump', 'backup', 'snapshot-delete'];

export interface JobInfo {
  type: JobType;
  /** 'backup' for backup jobs; 'unknown' or a number's name for others. */
  operation?: string;
  timeElapsedMs?: number;
  /** Bytes, summed over all disks of the job (push: virtual sizes for full backups, dirty bytes for incremental). */
  diskTotal?: number;
  diskProcessed?: number;
  diskRemaining?: number;
  /** Pull mode: scratch space used by copy-before-write so far, and its limit. */
  diskTempUsed?: number;
  diskTempTotal?: number;
  /** Completed jobs: did it succeed (a pull ended with domjobabort still counts as success: 1). */
  success?: boolean;
  errorMessage?: string;
  /** Every key as printed. */
  raw: Record<string, string>;
}

export class JobInfoFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobInfoFormatError';
  }
}

function count(raw: Record<string, string>, key: string): number | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v)) throw new JobInfoFormatError(`domjobinfo ${key} ${JSON.stringify(v.slice(0, 40))} is not a count`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new JobInfoFormatError(`domjobinfo ${key} ${v} is too large`);
  return n;
}

export function parseJobInfo(text: string): JobInfo {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const head = /^Job type:\s*(\d+)$/.exec(lines[0] ?? '');
  if (!head) throw new JobInfoFormatError(`domjobinfo --rawstats printed ${JSON.stringify((lines[0] ?? '').slice(0, 60))}; expected "Job type: N"`);
  const type = JOB_TYPES[Number(head[1])];
  if (!type) throw new JobInfoFormatError(`domjobinfo reports an unknown job type ${head[1]}`);
  const raw: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) throw new JobInfoFormatError(`domjobinfo --rawstats line ${JSON.stringify(line.slice(0, 60))} is not "key: value"`);
    raw[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  const info: JobInfo = { type, raw };
  const op = count(raw, 'operation');
  if (op !== undefined) info.operation = OPERATIONS[op] ?? `operation-${op}`;
  const set = (field: keyof JobInfo, key: string) => {
    const n = count(raw, key);
    if (n !== undefined) (info as unknown as Record<string, number>)[field] = n;
  };
  set('timeElapsedMs', 'time_elapsed');
  set('diskTotal', 'disk_total');
  set('diskProcessed', 'disk_processed');
  set('diskRemaining', 'disk_remaining');
  set('diskTempUsed', 'disk_temp_used');
  set('diskTempTotal', 'disk_temp_total');
  const success = count(raw, 'success');
  if (success !== undefined) info.success = success !== 0;
  if (raw.errmsg !== undefined) info.errorMessage = raw.errmsg;
  return info;
}
