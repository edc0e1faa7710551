/** A row of the jobs table as SQLite returns it, and the Job it stands for (JSON columns parsed). */
import type { Job, JobRequest, JobResult, JobStatus, JobType } from './types.js';

export interface JobRow {
  seq: number;
  id: string;
  type: string;
  status: string;
  request: string;
  client_ip: string;
  video_name: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
  result: string | null;
  error: string | null;
  error_code: string | null;
  progress: number;
  total_segments: number;
  downloaded_segments: number;
  downloaded_bytes: number;
  total_bytes: number | null;
  speed_bps: number;
  eta_seconds: number | null;
  recorded_seconds: number | null;
  attempts: number;
  owner: string | null;
}

export function fromRow(row: JobRow): Job {
  return {
    ...row,
    type: row.type as JobType,
    status: row.status as JobStatus,
    request: JSON.parse(row.request) as JobRequest,
    result: row.result === null ? null : (JSON.parse(row.result) as JobResult),
  };
}
