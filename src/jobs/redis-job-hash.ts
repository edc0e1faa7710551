/**
 * A job as the Redis store keeps it: one hash per job, a field per column of SQLite's jobs table. A
 * field that is absent is null (a hash cannot hold a null); numbers are their JavaScript string form,
 * which parses back to the same double, so floats and byte counts up to 2^53 round-trip exactly;
 * `request` and `result` are the JSON text SQLite would store, which the Lua scripts never decode
 * (cjson would turn `[]` into `{}` and large integers into floats).
 */
import type { Job, JobProgress, JobRequest, JobResult, JobStatus, JobType } from './types.js';

const NUMBERS = [
  'seq',
  'progress',
  'total_segments',
  'downloaded_segments',
  'downloaded_bytes',
  'speed_bps',
  'attempts',
] as const;
const NULLABLE_NUMBERS = ['total_bytes', 'eta_seconds', 'recorded_seconds'] as const;
const STRINGS = ['id', 'type', 'status', 'client_ip', 'video_name', 'created_at', 'updated_at'] as const;
const NULLABLE_STRINGS = ['started_at', 'completed_at', 'error', 'error_code', 'owner'] as const;

/** Field/value pairs as HGETALL returns them inside a Lua script's reply. */
export type FlatHash = string[];

export function fromHash(flat: FlatHash): Job {
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(flat[i]!, flat[i + 1]!);
  const job: Record<string, unknown> = {};
  for (const f of NUMBERS) job[f] = Number(h.get(f) ?? 0);
  for (const f of NULLABLE_NUMBERS) job[f] = h.has(f) ? Number(h.get(f)) : null;
  for (const f of STRINGS) job[f] = h.get(f) ?? '';
  for (const f of NULLABLE_STRINGS) job[f] = h.get(f) ?? null;
  const result = h.get('result');
  job['request'] = JSON.parse(h.get('request') ?? '{}') as JobRequest;
  job['result'] = result === undefined ? null : (JSON.parse(result) as JobResult);
  return job as unknown as Job & { type: JobType; status: JobStatus };
}

/**
 * A progress snapshot as [field, value, ...] to set and the fields to delete (its nulls), for the
 * progress script.
 */
export function progressFields(p: JobProgress): { set: string[]; unset: string[] } {
  const set: string[] = [];
  const unset: string[] = [];
  const put = (field: string, value: number | null | undefined) => {
    if (value === null || value === undefined) unset.push(field);
    else set.push(field, String(value));
  };
  put('progress', p.progress);
  put('total_segments', p.total_segments);
  put('downloaded_segments', p.downloaded_segments);
  put('downloaded_bytes', p.downloaded_bytes);
  put('total_bytes', p.total_bytes);
  put('speed_bps', p.speed_bps);
  put('eta_seconds', p.eta_seconds);
  put('recorded_seconds', p.recorded_seconds);
  return { set, unset };
}
