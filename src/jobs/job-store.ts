/**
 * What every job store offers (SQLite in jobs/store.ts, Redis in jobs/redis-store.ts), so the API, the
 * runner and the cleanup work against either. SQLite answers synchronously, Redis with promises:
 * callers always `await`.
 */
import type { Config } from '../service/config.js';
import type { Job, JobProgress, JobRequest, JobResult, JobStatus, JobType } from './types.js';

export type Awaitable<T> = T | Promise<T>;

export interface NewJob {
  type: JobType;
  request: JobRequest;
  clientIp: string;
  videoName: string;
  /** Hash of the submitting API key, when keys are in use. */
  owner?: string | null;
}

export interface AdmissionLimits {
  maxQueueSize: number;
  /** 0 = unlimited. */
  maxJobsPerIp: number;
  /** 0 = unlimited; applies to jobs with an owner. */
  maxJobsPerOwner?: number;
}

/** The admission limits of config, the same for every queue. */
export function admissionLimits(config: Config): AdmissionLimits {
  return {
    maxQueueSize: config.max_queue_size,
    maxJobsPerIp: config.max_jobs_per_ip,
    maxJobsPerOwner: config.max_jobs_per_key,
  };
}

export interface ListOptions {
  status?: JobStatus | undefined;
  /** Only this API key's jobs (undefined = everyone's). */
  owner?: string | undefined;
  limit: number;
  offset: number;
}

export interface TransitionFields {
  result?: JobResult;
  error?: string;
  error_code?: string;
  /**
   * The run's attempt number (its `attempts` when it was claimed): the transition happens only while
   * the job is still in that attempt. In a cluster a worker that lost its hold on a job (its lock
   * expired while Redis was away) may still be running it after another worker took it over; this
   * fence keeps the stale run from recording anything.
   */
  attempt?: number;
}

export interface JobStore {
  /**
   * Inserts a PENDING job unless a limit says no (GABE_ERR_IP_LIMIT, KEY_LIMIT, QUEUE_FULL): counting
   * and inserting are one atomic step, so two submissions racing for the last place cannot both win.
   */
  admit(job: NewJob, limits: AdmissionLimits): Awaitable<Job>;
  get(id: string): Awaitable<Job | null>;
  /** Newest first (by submission order). */
  list(options: ListOptions): Awaitable<{ jobs: Job[]; total: number }>;
  /**
   * Moves a job to `to` if types.ts allows it from its current state; the job as stored afterwards, or
   * null when the job is gone or the transition was refused (someone else won).
   */
  transition(id: string, to: JobStatus, fields?: TransitionFields): Awaitable<Job | null>;
  /** Stores a running job's progress; ignored unless the job is PROCESSING (in `attempt`, when given). */
  updateProgress(id: string, p: JobProgress, attempt?: number): Awaitable<void>;
  delete(id: string): Awaitable<boolean>;
  /** Final jobs whose completion is older than the cutoff (ISO time), oldest first. */
  finishedBefore(cutoffIso: string, limit?: number): Awaitable<Job[]>;
  countByStatus(): Awaitable<Record<JobStatus, number>>;
  /** Throws unless the store accepts writes now (for /health), without touching any job. */
  checkWritable(): Awaitable<void>;
  close(): Awaitable<void>;
}
