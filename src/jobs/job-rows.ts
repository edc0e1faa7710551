/** A row of the jobs table as SQLite returns it, and the Job it stands for (JSON columns parsed). */
import type { Job, JobRequest, JobResult, JobStatus, JobType } from './types.js';

/** The jobs table's columns: a Job's fields, with the enums as plain text and request/result as JSON. */
export type JobRow = Omit<Job, 'type' | 'status' | 'request' | 'result'> & {
  type: string;
  status: string;
  request: string;
  result: string | null;
};

export function fromRow(row: JobRow): Job {
  return {
    ...row,
    type: row.type as JobType,
    status: row.status as JobStatus,
    request: JSON.parse(row.request) as JobRequest,
    result: row.result === null ? null : (JSON.parse(row.result) as JobResult),
  };
}
