/**
 * What the API needs from whatever runs jobs: the embedded Scheduler (SQLite, workers in this
 * process) or the cluster queue (BullMQ on Redis, workers anywhere).
 */
import type { EventEmitter } from 'node:events';
import type { NewJob } from './job-store.js';
import type { Job, JobProgress } from './types.js';

/** What job events carry (SSE, metrics, webhooks), checked at compile time. */
export type JobEvents = {
  /** A stored job after any state change. */
  job: [job: Job];
  /** A running job's progress, at most every 250 ms. */
  progress: [id: string, progress: JobProgress];
  /** A running job retries a request. */
  retry: [id: string];
};

export interface JobQueue {
  /**
   * Every job's changes this node can see: all of them, from whichever process made them (SSE and the
   * live progress overlay listen here).
   */
  readonly feed: EventEmitter<JobEvents>;
  /**
   * Only the changes this process made (its own workers' runs, its own cancellations): per-process
   * metrics and webhooks listen here, so a cluster sends each webhook once and counts each job once.
   */
  readonly local: EventEmitter<JobEvents>;
  readonly isAccepting: boolean;
  /** Admits a job (the limits of config) and queues it; GabeError when refused. */
  submit(job: NewJob): Promise<Job>;
  /**
   * Cancels a PENDING or PROCESSING job wherever it runs and resolves with it once it is final (a live
   * recording is stopped and COMPLETED with what it has); null for an unknown job, the job unchanged
   * for a finished one.
   */
  cancel(id: string): Promise<Job | null>;
  /** A running job's latest progress (fresher than the stored copy), or null. */
  liveProgress(id: string): JobProgress | null;
  /** Sum of this process's running jobs' speeds, bytes per second. */
  totalSpeed(): number;
  /** Jobs running in this process. */
  readonly runningCount: number;
}
